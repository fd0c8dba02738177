// RSA (Dwivedi & Roig 2019): every feature is centred over the samples, as
// the authors' code does (raw features give an RDM dominated by the mean
// activation profile, which all samples share); RDM = 1 - Pearson
// correlation between samples' centred features; the score is the Spearman correlation between the upper
// triangles of the candidate's RDM and the probe model's RDM (the probe: the
// zoo's generic model after a short fine-tune on the target, see extract.probe).
#include <ATen/ATen.h>

#include <cmath>

#include "linalg.h"
#include "zoobench/reduce.h"
#include "zoobench/error.h"
#include "zoobench/selector.h"

namespace zoobench {
namespace {
class Rsa : public Selector {
 public:
  std::string name() const override { return "rsa"; }
  std::string variant() const override { return "centred-features-pearson-rdm-spearman-vs-probe"; }
  unsigned needs() const override { return kNeedFeatures | kNeedProbeFeatures; }
  double memory_bytes(int64_t n, int64_t d, int64_t dp) const override {
    return detail::rdm_spearman_bytes(n, 24.0 * static_cast<double>(d + dp));
  }
  double score(const SelectorInputs& in) const override {
    if (in.features.size(0) < 3) throw DataError("RSA correlates pairs of pairs: it needs at least 3 samples, got " + std::to_string(in.features.size(0)));
    for (const at::Tensor* f : {&in.features, &in.probe_features})
      if (f->size(1) < 2)
        throw DataError("RSA correlates feature rows: it needs at least 2 feature dimensions, got " + std::to_string(f->size(1)));
    auto rdm = [](const at::Tensor& f) { return detail::rdm_correlation(f - f.mean(0, true)); };
    const double rho = spearman(rdm(in.features), rdm(in.probe_features));
    return std::isnan(rho) ? 0.0 : rho;  // a constant RDM carries no ranking: no correlation
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(Rsa)
}  // namespace zoobench
