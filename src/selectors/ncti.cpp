// NCTI (Wang et al. 2023), as the authors' code computes it. PCA to 64
// dimensions; the LDA's shrinkage s = max(exp(-sum of the 32 largest
// explained variances), 1e-10), and at that floor scikit-learn's SVD solver
// without shrinkage instead of the eigen solver with shrinkage s. Three terms:
// the nuclear norm of the centred LDA projection (fit_transform), the mean
// p(y_i | x_i) of predict_proba, and log sum_c of the nuclear norm of class
// c's predicted probabilities. Over the zoo each term is min-max normalised
// and NCTI = first + second - third; a lone model's score() is the
// unnormalised combination, and a term equal for every model contributes 0.
//
// One deliberate difference: PCA keeps only components with variance. With
// N <= 64 samples scikit-learn's PCA(64) refuses, and PCA(min(N, D)) leaves a
// last component of pure rounding noise that the SVD solver's per-column
// standardisation blows up to unit variance: perturbing the features by
// 1e-13 then moves the terms by up to 40 %. Without it the terms are stable.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "linalg.h"
#include "zoobench/selector.h"

namespace zoobench {
namespace {
constexpr double kShrinkageFloor = 1e-10;
constexpr double kSvdTol = 1e-4;  // scikit-learn's LinearDiscriminantAnalysis(tol=1e-4)

// What NCTI reads off a fitted LDA: the projection of the training samples and their class probabilities.
struct LdaFit {
  at::Tensor projection;  // N x min(C - 1, D)
  at::Tensor probs;       // N x C (present classes)
};

struct Classes {
  at::Tensor own;     // N: each sample's column among the present classes
  at::Tensor priors;  // C
  at::Tensor means;   // C x D
  int64_t count = 0;
};

Classes present_classes(const at::Tensor& x, const at::Tensor& labels, int64_t classes) {
  at::Tensor onehot = at::one_hot(labels, classes).to(at::kDouble);
  at::Tensor counts = onehot.sum(0);
  at::Tensor present = (counts > 0).nonzero().squeeze(1);
  Classes c;
  c.count = present.size(0);
  c.priors = counts.index_select(0, present) / static_cast<double>(x.size(0));
  c.means = (at::mm(onehot.t(), x) / counts.clamp_min(1).unsqueeze(1)).index_select(0, present);
  at::Tensor col = at::full({classes}, -1, at::kLong);
  col.index_put_({present}, at::arange(c.count, at::kLong));
  c.own = col.index_select(0, labels);
  return c;
}

at::Tensor rows_of(const at::Tensor& x, const at::Tensor& own, int64_t k) {
  return x.index_select(0, (own == k).nonzero().squeeze(1));
}

// scikit-learn's _cov(X, shrinkage=s) for a number s: the population
// covariance shrunk towards (tr / D) I, without standardising first.
at::Tensor shrunk_cov(const at::Tensor& x, double s) {
  at::Tensor emp = detail::covariance(x, 0);
  const int64_t d = emp.size(0);
  return (1 - s) * emp + (s * at::trace(emp).item<double>() / static_cast<double>(d)) * at::eye(d, at::kDouble);
}

// solver='eigen', shrinkage=s: S_b v = e S_w v with V^T S_w V = I (scipy's
// eigh convention), V sorted by e descending; coef = means V V^T.
LdaFit lda_eigen(const at::Tensor& x, const Classes& c, double s) {
  const int64_t d = x.size(1);
  at::Tensor sw = at::zeros({d, d}, at::kDouble);
  auto prior = c.priors.accessor<double, 1>();
  for (int64_t k = 0; k < c.count; ++k) sw += prior[k] * shrunk_cov(rows_of(x, c.own, k), s);
  at::Tensor sb = shrunk_cov(x, s) - sw;
  // Through the Cholesky factor of S_w, positive definite since shrinkage adds
  // s tr/D to its diagonal; a jitter only where every class is one point.
  auto [l, info] = at::linalg_cholesky_ex(sw);
  if (info.item<int64_t>() != 0)
    l = at::linalg_cholesky(sw + (1e-12 * at::trace(sw).item<double>() / static_cast<double>(d) + 1e-300) * at::eye(d, at::kDouble));
  at::Tensor li = at::linalg_solve_triangular(l, at::eye(d, at::kDouble), /*upper=*/false);
  at::Tensor u = std::get<1>(at::linalg_eigh(at::mm(at::mm(li, sb), li.t())));
  at::Tensor v = at::mm(li.t(), u).flip(1);
  const int64_t comps = std::min(c.count - 1, d);
  at::Tensor coef = at::mm(at::mm(c.means, v), v.t());
  at::Tensor intercept = -0.5 * (c.means * coef).sum(1) + at::log(c.priors);
  return {at::mm(x, v.narrow(1, 0, comps)), at::softmax(at::mm(x, coef.t()) + intercept, 1)};
}

// solver='svd' (no shrinkage): whiten by the SVD of the standardised
// within-class residuals, keep singular values above tol, then the SVD of
// the whitened, prior-weighted class means gives the discriminant axes.
LdaFit lda_svd(const at::Tensor& x, const Classes& c) {
  const int64_t n = x.size(0);
  at::Tensor xc = x - c.means.index_select(0, c.own);
  at::Tensor sd = xc.std(0, /*unbiased=*/false);
  sd = at::where(sd == 0, at::ones_like(sd), sd);
  // One sample per class leaves no residuals (and scikit-learn a 0/0): no axes then.
  const double scale = n > c.count ? std::sqrt(1.0 / static_cast<double>(n - c.count)) : 1.0;
  auto svd1 = at::linalg_svd(xc / sd * scale, false);
  at::Tensor s1 = std::get<1>(svd1);
  const int64_t rank1 = (s1 > kSvdTol).sum().item<int64_t>();
  at::Tensor scalings = (std::get<2>(svd1).narrow(0, 0, rank1) / sd).t() / s1.narrow(0, 0, rank1);
  at::Tensor xbar = at::mm(c.priors.unsqueeze(0), c.means);  // 1 x D
  const double fac = c.count == 1 ? 1.0 : 1.0 / static_cast<double>(c.count - 1);
  at::Tensor weighted = (c.means - xbar) * (static_cast<double>(n) * c.priors * fac).sqrt().unsqueeze(1);
  auto svd2 = at::linalg_svd(at::mm(weighted, scalings), false);
  at::Tensor s2 = std::get<1>(svd2);
  const int64_t rank2 = s2.numel() ? (s2 > kSvdTol * s2[0].item<double>()).sum().item<int64_t>() : 0;
  scalings = at::mm(scalings, std::get<2>(svd2).narrow(0, 0, rank2).t());
  at::Tensor coef = at::mm(c.means - xbar, scalings);
  at::Tensor intercept = -0.5 * coef.pow(2).sum(1) + at::log(c.priors);
  coef = at::mm(coef, scalings.t());
  intercept = intercept - at::mm(xbar, coef.t()).squeeze(0);
  const int64_t comps = std::min({c.count - 1, x.size(1), rank2});
  return {at::mm(x - xbar, scalings.narrow(1, 0, comps)), at::softmax(at::mm(x, coef.t()) + intercept, 1)};
}

class Ncti : public Selector {
 public:
  std::string name() const override { return "ncti"; }
  std::string variant() const override {
    return "pca64-nonnull;lda-shrinkage=max(exp(-top32-pca-var),1e-10),svd-solver-at-floor;zoo-minmax";
  }
  unsigned needs() const override { return kNeedFeatures; }

  std::vector<double> terms(const SelectorInputs& in) const override {
    at::Tensor x = detail::pca(in.features.to(at::kDouble), 64, /*drop_null=*/true);
    if (x.size(1) == 0) x = at::zeros({in.features.size(0), 1}, at::kDouble);
    const Classes c = present_classes(x, in.labels, in.classes);
    const double top32 = x.narrow(1, 0, std::min<int64_t>(32, x.size(1))).var(0, /*unbiased=*/true).sum().item<double>();
    const double s = std::max(std::exp(-top32), kShrinkageFloor);
    const LdaFit fit = s <= kShrinkageFloor ? lda_svd(x, c) : lda_eigen(x, c, s);
    at::Tensor low = fit.projection - fit.projection.mean(0, true);
    const double nuc_all = low.size(1) ? at::linalg_svdvals(low).sum().item<double>() : 0.0;
    const double seli = fit.probs.gather(1, c.own.unsqueeze(1)).mean().item<double>();
    double class_nuc = 0;
    for (int64_t k = 0; k < c.count; ++k) class_nuc += at::linalg_svdvals(rows_of(fit.probs, c.own, k)).sum().item<double>();
    return {nuc_all, seli, std::log(class_nuc)};
  }

  double score(const SelectorInputs& in) const override {
    std::vector<double> t = terms(in);
    return t[0] + t[1] - t[2];
  }

  std::vector<double> combine(const std::vector<std::vector<double>>& per_model) const override {
    std::vector<double> out(per_model.size(), 0.0);
    for (size_t term = 0; term < 3; ++term) {
      double lo = per_model.empty() ? 0 : per_model[0][term], hi = lo;
      for (const auto& t : per_model) lo = std::min(lo, t[term]), hi = std::max(hi, t[term]);
      for (size_t m = 0; m < per_model.size(); ++m) {
        const double norm = hi > lo ? (per_model[m][term] - lo) / (hi - lo) : 0.0;
        out[m] += term == 2 ? -norm : norm;
      }
    }
    return out;
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(Ncti)
}  // namespace zoobench
