// DDS (Dwivedi et al. 2020): z-score each feature, RDM = 1 - cosine
// similarity between samples, similarity = debiased CKA between the
// candidate's and the probe model's RDMs (the RDMs used as kernels; the
// unbiased HSIC estimator of Song et al. 2012, which needs N >= 4).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "linalg.h"
#include "zoobench/error.h"
#include "zoobench/selector.h"

namespace zoobench {
namespace {

// The rows z-scored per feature, then scaled to unit length: their dot
// products are the cosine similarities (the RDM is 1 - them).
at::Tensor cosine_rows(const at::Tensor& f) {
  at::Tensor x = f.to(at::kDouble);
  at::Tensor sd = x.std(0, /*unbiased=*/false, true);
  x = (x - x.mean(0, true)) / at::where(sd > 0, sd, at::ones_like(sd));
  return (x / x.norm(2, 1, true).clamp_min(1e-300)).contiguous();  // an all-zero row is similar to nothing
}

// The three unbiased HSIC estimates (K with L, K with K, L with L), where
// K = 1 - S with a zero diagonal (an RDM's own) and S the cosine
// similarities of the unit rows z. Row sums need no S: row i of K sums to
// (N - 1) - (z_i . sum_j z_j - z_i . z_i). The traces need every pair: S a
// block of rows at a time, the pairs j < i (at N = 50,000 the two whole
// matrices would be 40 GB), rows in parallel, summed in row order (the same
// value for any thread count).
struct Hsic {
  double kl, kk, ll;
};
Hsic hsic_unbiased(const at::Tensor& zk, const at::Tensor& zl) {
  const int64_t n = zk.size(0);
  auto row_sums = [n](const at::Tensor& z) {
    at::Tensor r = (static_cast<double>(n - 1) - (at::mv(z, z.sum(0)) - (z * z).sum(1))).contiguous();
    return std::vector<double>(r.data_ptr<double>(), r.data_ptr<double>() + n);
  };
  const std::vector<double> k1 = row_sums(zk), l1 = row_sums(zl);
  std::vector<double> row_kl(static_cast<size_t>(n)), row_kk(static_cast<size_t>(n)), row_ll(static_cast<size_t>(n));
  // Blocks of at most 512 rows: each reads only the columns left of its last
  // row, so the products skip about half of S, and a block stays in cache.
  const int64_t block = std::min<int64_t>(512, detail::gram_block_rows(n));
  for (int64_t b0 = 0; b0 < n; b0 += block) {
    const int64_t b1 = std::min(n, b0 + block);
    const at::Tensor gk = detail::gram_block(zk, b0, b1, b1).contiguous(), gl = detail::gram_block(zl, b0, b1, b1).contiguous();
    const double* pk = gk.data_ptr<double>();
    const double* pl = gl.data_ptr<double>();
    at::parallel_for(b0, b1, 16, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const double* rk = pk + (i - b0) * b1;
        const double* rl = pl + (i - b0) * b1;
        double kl = 0, kk = 0, ll = 0;
        for (int64_t j = 0; j < i; ++j) {
          const double k = 1 - rk[j], l = 1 - rl[j];
          kl += k * l, kk += k * k, ll += l * l;
        }
        row_kl[static_cast<size_t>(i)] = kl, row_kk[static_cast<size_t>(i)] = kk, row_ll[static_cast<size_t>(i)] = ll;
      }
    });
  }
  double skl = 0, skk = 0, sll = 0, sk = 0, sl = 0, ckl = 0, ckk = 0, cll = 0;
  for (size_t i = 0; i < k1.size(); ++i) {
    skl += row_kl[i], skk += row_kk[i], sll += row_ll[i];
    sk += k1[i], sl += l1[i];
    ckl += k1[i] * l1[i], ckk += k1[i] * k1[i], cll += l1[i] * l1[i];
  }
  const double nn = static_cast<double>(n);
  auto h = [&](double trace, double sa, double sb, double cross) {
    return (trace + sa * sb / ((nn - 1) * (nn - 2)) - 2.0 * cross / (nn - 2)) / (nn * (nn - 3));
  };
  return {h(2 * skl, sk, sl, ckl), h(2 * skk, sk, sk, ckk), h(2 * sll, sl, sl, cll)};
}

class Dds : public Selector {
 public:
  std::string name() const override { return "dds"; }
  std::string variant() const override { return "zscore-cosine-rdm-debiased-cka-vs-probe"; }
  unsigned needs() const override { return kNeedFeatures | kNeedProbeFeatures; }
  double score(const SelectorInputs& in) const override {
    if (in.features.size(0) < 4) throw DataError("DDS (debiased CKA) needs at least 4 samples, got " + std::to_string(in.features.size(0)));
    const Hsic h = hsic_unbiased(cosine_rows(in.features), cosine_rows(in.probe_features));
    if (h.kk <= 0 || h.ll <= 0) return 0.0;  // a constant RDM has no structure to compare
    return h.kl / std::sqrt(h.kk * h.ll);
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(Dds)
}  // namespace zoobench
