// DDS (Dwivedi et al. 2020): z-score each feature, RDM = 1 - cosine
// similarity between samples, similarity = debiased CKA between the
// candidate's and the probe model's RDMs (the RDMs used as kernels; the
// unbiased HSIC estimator of Song et al. 2012, which needs N >= 4).
#include <ATen/ATen.h>

#include <cmath>
#include <vector>

#include "linalg.h"
#include "zoobench/error.h"
#include "zoobench/selector.h"

namespace zoobench {
namespace {

// 1 - cosine similarity of the z-scored rows; only the lower triangle is filled.
at::Tensor cosine_rdm_lower(const at::Tensor& f) {
  at::Tensor x = f.to(at::kDouble);
  at::Tensor sd = x.std(0, /*unbiased=*/false, true);
  x = (x - x.mean(0, true)) / at::where(sd > 0, sd, at::ones_like(sd));
  x = x / x.norm(2, 1, true).clamp_min(1e-300);  // an all-zero row is similar to nothing
  return detail::gram_rows_lower(x);                // the similarities; the RDM is 1 - them
}

// The three unbiased HSIC estimates (K with L, K with K, L with L) from one
// pass over the lower triangles. K, L have zero diagonals (an RDM's own).
struct Hsic {
  double kl, kk, ll;
};
Hsic hsic_unbiased(const at::Tensor& sim_k, const at::Tensor& sim_l) {
  const int64_t n = sim_k.size(0);
  const double* pk = sim_k.data_ptr<double>();
  const double* pl = sim_l.data_ptr<double>();
  std::vector<double> k1(static_cast<size_t>(n), 0.0), l1(static_cast<size_t>(n), 0.0);
  double skl = 0, skk = 0, sll = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j) {
      const double k = 1 - pk[i * n + j], l = 1 - pl[i * n + j];
      skl += k * l, skk += k * k, sll += l * l;
      k1[static_cast<size_t>(i)] += k, k1[static_cast<size_t>(j)] += k;
      l1[static_cast<size_t>(i)] += l, l1[static_cast<size_t>(j)] += l;
    }
  double sk = 0, sl = 0, ckl = 0, ckk = 0, cll = 0;
  for (size_t i = 0; i < k1.size(); ++i) {
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
    const Hsic h = hsic_unbiased(cosine_rdm_lower(in.features), cosine_rdm_lower(in.probe_features));
    if (h.kk <= 0 || h.ll <= 0) return 0.0;  // a constant RDM has no structure to compare
    return h.kl / std::sqrt(h.kk * h.ll);
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(Dds)
}  // namespace zoobench
