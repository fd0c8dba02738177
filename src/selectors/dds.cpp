// DDS (Dwivedi et al. 2020): z-score each feature, RDM = 1 - cosine
// similarity between samples, similarity = debiased CKA between the
// candidate's and the probe model's RDMs (the RDMs used as kernels; the
// unbiased HSIC estimator of Song et al. 2012, which needs N >= 4).
#include <ATen/ATen.h>

#include <cmath>

#include "zoobench/error.h"
#include "zoobench/selector.h"

namespace zoobench {
namespace {

at::Tensor cosine_rdm(const at::Tensor& f) {
  at::Tensor x = f.to(at::kDouble);
  at::Tensor sd = x.std(0, /*unbiased=*/false, true);
  x = (x - x.mean(0, true)) / at::where(sd > 0, sd, at::ones_like(sd));
  x = x / x.norm(2, 1, true).clamp_min(1e-300);  // an all-zero row is similar to nothing
  return 1 - at::mm(x, x.t());
}

double hsic_unbiased(const at::Tensor& k_in, const at::Tensor& l_in) {
  at::Tensor k = k_in.clone(), l = l_in.clone();
  k.fill_diagonal_(0);
  l.fill_diagonal_(0);
  const double n = static_cast<double>(k.size(0));
  at::Tensor k1 = k.sum(1), l1 = l.sum(1);
  const double trace_kl = (k * l).sum().item<double>();  // tr(K L) for symmetric L
  const double sum_k = k1.sum().item<double>(), sum_l = l1.sum().item<double>();
  const double cross = k1.dot(l1).item<double>();  // 1^T K L 1
  return (trace_kl + sum_k * sum_l / ((n - 1) * (n - 2)) - 2.0 * cross / (n - 2)) / (n * (n - 3));
}

class Dds : public Selector {
 public:
  std::string name() const override { return "dds"; }
  std::string variant() const override { return "zscore-cosine-rdm-debiased-cka-vs-probe"; }
  unsigned needs() const override { return kNeedFeatures | kNeedProbeFeatures; }
  double score(const SelectorInputs& in) const override {
    if (in.features.size(0) < 4) throw DataError("DDS (debiased CKA) needs at least 4 samples, got " + std::to_string(in.features.size(0)));
    at::Tensor a = cosine_rdm(in.features), b = cosine_rdm(in.probe_features);
    const double ab = hsic_unbiased(a, b), aa = hsic_unbiased(a, a), bb = hsic_unbiased(b, b);
    if (aa <= 0 || bb <= 0) return 0.0;  // a constant RDM has no structure to compare
    return ab / std::sqrt(aa * bb);
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(Dds)
}  // namespace zoobench
