// Shrinkage H-score (Ibrahim et al. 2022): Ledoit-Wolf shrinkage of the
// feature covariance (1/N, target tr(S)/D I, alpha clamped to [0, 1]);
// H = tr(pinv(Sigma_alpha) (1 - alpha) cov_g), cov_g with 1/(N-1).
#include <ATen/ATen.h>

#include <cmath>

#include "linalg.h"
#include "zoobench/selector.h"

namespace zoobench {
namespace {
class HScoreShrink : public Selector {
 public:
  std::string name() const override { return "hscore_shrink"; }
  std::string variant() const override { return "ledoit-wolf"; }
  unsigned needs() const override { return kNeedFeatures; }
  double score(const SelectorInputs& in) const override {
    at::Tensor x = in.features.to(at::kDouble);
    detail::Shrunk sh = detail::ledoit_wolf(x);
    const double alpha = sh.alpha;
    at::Tensor shrunk = sh.cov;
    at::Tensor bf = detail::class_scatter_factor(x, in.labels, in.classes, 1) * std::sqrt(1 - alpha);
    return detail::trace_pinv_product(shrunk, bf, 1e-15);
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(HScoreShrink)
}  // namespace zoobench
