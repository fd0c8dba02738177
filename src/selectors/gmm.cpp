#include "gmm.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "zoobench/random.h"

namespace zoobench::detail {

namespace {

at::Tensor squared_distances(const at::Tensor& x, const at::Tensor& c) {
  at::Tensor d = (x * x).sum(1, true) + (c * c).sum(1).unsqueeze(0) - 2 * at::mm(x, c.t());
  return d.clamp_min(0);
}

// Greedy k-means++ (scikit-learn's: 2 + ln k candidate centres per step, the
// one that lowers the potential most wins).
at::Tensor seeds(const at::Tensor& x, int64_t k, Rng& rng) {
  const int64_t n = x.size(0);
  std::vector<int64_t> chosen{static_cast<int64_t>(rng.below(static_cast<uint64_t>(n)))};
  at::Tensor closest = squared_distances(x, x.index_select(0, at::tensor(chosen))).squeeze(1);
  const int trials = 2 + static_cast<int>(std::log(static_cast<double>(k)));
  for (int64_t c = 1; c < k; ++c) {
    at::Tensor cum = closest.cumsum(0);
    const double total = cum[n - 1].item<double>();
    std::vector<int64_t> cand;
    auto ca = cum.accessor<double, 1>();
    for (int t = 0; t < trials; ++t) {
      const double r = rng.uniform() * total;
      int64_t lo = 0, hi = n - 1;
      while (lo < hi) {  // first index with cum > r
        int64_t mid = (lo + hi) / 2;
        if (ca[mid] > r) hi = mid;
        else lo = mid + 1;
      }
      cand.push_back(lo);
    }
    at::Tensor dc = at::minimum(squared_distances(x, x.index_select(0, at::tensor(cand))).t(), closest.unsqueeze(0));
    const int64_t best = dc.sum(1).argmin().item<int64_t>();
    chosen.push_back(cand[static_cast<size_t>(best)]);
    closest = dc[best];
  }
  return x.index_select(0, at::tensor(chosen));
}

struct Params {
  at::Tensor weights, means;  // K; K x d
  at::Tensor precision;       // K x d^2: the inverse covariances, flattened
  at::Tensor log_det;         // K: log det of each covariance
};

// Rows a block of outer products x_i (x) x_i holds (B x d^2, about 256 MiB):
// all N at once would be N d^2 doubles, 55 GB at N = 50,000 and d = 370.
int64_t outer_rows(int64_t d) { return std::max<int64_t>(1, (int64_t{256} << 20) / 8 / std::max<int64_t>(1, d * d)); }
at::Tensor outer_products(const at::Tensor& x, int64_t lo, int64_t rows) {
  at::Tensor xb = x.narrow(0, lo, rows);
  return (xb.unsqueeze(2) * xb.unsqueeze(1)).reshape({rows, x.size(1) * x.size(1)});
}

// Every component's statistics with GEMMs over all components at once:
// sum_i r_ik x_i x_i^T = R^T [x_i (x) x_i] (a block of rows at a time), minus
// n_k mu_k mu_k^T (the PCA'd inputs are centred, so the subtraction loses little).
Params m_step(const at::Tensor& x, const at::Tensor& resp, double reg) {
  const int64_t n = x.size(0), d = x.size(1), k = resp.size(1), block = outer_rows(d);
  at::Tensor nk = resp.sum(0) + 10 * std::numeric_limits<double>::epsilon();  // K
  at::Tensor means = at::mm(resp.t(), x) / nk.unsqueeze(1);                    // K x d
  at::Tensor second;  // K x d^2
  for (int64_t b0 = 0; b0 < n; b0 += block) {
    const int64_t rows = std::min(block, n - b0);
    at::Tensor part = at::mm(resp.narrow(0, b0, rows).t(), outer_products(x, b0, rows));
    second = b0 == 0 ? part : second.add_(part);
  }
  at::Tensor cov = second.reshape({k, d, d}) / nk.view({-1, 1, 1});
  cov = cov - means.unsqueeze(2) * means.unsqueeze(1);
  cov = (cov + cov.transpose(1, 2)) / 2 + reg * at::eye(d, x.options());
  at::Tensor chol = at::linalg_cholesky(cov);
  at::Tensor precision = at::cholesky_inverse(chol).reshape({k, d * d});
  at::Tensor log_det = 2 * at::log(at::diagonal(chol, 0, 1, 2)).sum(1);
  return {nk / static_cast<double>(n), means, precision, log_det};
}

// log p(x_i, component k), N x K, without an N x K x d intermediate:
// (x - mu)^T P (x - mu) = <x x^T, P> - 2 x^T (P mu) + mu^T P mu.
at::Tensor weighted_log_prob(const at::Tensor& x, const Params& p) {
  const int64_t n = x.size(0), d = x.size(1), k = p.means.size(0), block = outer_rows(d);
  at::Tensor pm = at::bmm(p.precision.view({k, d, d}), p.means.unsqueeze(2)).squeeze(2);  // K x d: P_k mu_k
  at::Tensor quad = at::empty({n, k}, x.options());  // <x_i x_i^T, P_k>
  for (int64_t b0 = 0; b0 < n; b0 += block) {
    const int64_t rows = std::min(block, n - b0);
    quad.narrow(0, b0, rows).copy_(at::mm(outer_products(x, b0, rows), p.precision.t()));
  }
  at::Tensor maha = quad - 2 * at::mm(x, pm.t()) + (pm * p.means).sum(1).unsqueeze(0);
  maha = maha.clamp_min(0);
  return -0.5 * (static_cast<double>(d) * std::log(2 * M_PI) + maha + p.log_det) + at::log(p.weights);
}

}  // namespace

at::Tensor kmeans(const at::Tensor& x, int64_t k, uint64_t seed, int max_iter) {
  Rng rng(seed);
  at::Tensor centres = seeds(x, k, rng), labels;
  for (int it = 0; it < max_iter; ++it) {
    at::Tensor next = squared_distances(x, centres).argmin(1);
    if (labels.defined() && at::equal(next, labels)) break;
    labels = next;
    at::Tensor onehot = at::one_hot(labels, k).to(x.scalar_type());
    at::Tensor counts = onehot.sum(0).unsqueeze(1);
    at::Tensor sums = at::mm(onehot.t(), x);
    // An emptied cluster keeps its centre.
    centres = at::where(counts > 0, sums / counts.clamp_min(1), centres);
  }
  return labels;
}

at::Tensor gmm_posteriors(const at::Tensor& x, const GmmOptions& opt) {
  const int64_t k = std::min<int64_t>(opt.components, x.size(0));
  at::Tensor resp = at::one_hot(kmeans(x, k, opt.seed), k).to(x.scalar_type());
  Params p = m_step(x, resp, opt.reg_covar);
  double lower = -std::numeric_limits<double>::infinity();
  for (int it = 0; it < opt.max_iter; ++it) {
    at::Tensor wlp = weighted_log_prob(x, p);
    at::Tensor norm = at::logsumexp(wlp, 1, true);
    p = m_step(x, at::exp(wlp - norm), opt.reg_covar);
    const double next = norm.mean().item<double>();
    const bool done = std::abs(next - lower) < opt.tol;
    lower = next;
    if (done) break;
  }
  at::Tensor wlp = weighted_log_prob(x, p);
  return at::exp(wlp - at::logsumexp(wlp, 1, true));
}

}  // namespace zoobench::detail
