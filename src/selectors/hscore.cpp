// H-score (Bao et al. 2019): tr(pinv(cov_f) cov_g), covariances with 1/(N-1),
// g_i the mean feature of sample i's class, pinv cut at rcond 1e-15.
#include <ATen/ATen.h>

#include "linalg.h"
#include "zoobench/selector.h"

namespace zoobench {
namespace {
class HScore : public Selector {
 public:
  std::string name() const override { return "hscore"; }
  std::string variant() const override { return "pinv-rcond-1e-15-matrix-product"; }
  unsigned needs() const override { return kNeedFeatures; }
  double score(const SelectorInputs& in) const override {
    at::Tensor f = in.features.to(at::kDouble);
    at::Tensor cov_f = detail::covariance(f, 1);
    // cov_g has rank <= C: tr(pinv(cov_f) Bf^T Bf) without forming it.
    return detail::trace_pinv_product(cov_f, detail::class_scatter_factor(f, in.labels, in.classes, 1), 1e-15);
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(HScore)
}  // namespace zoobench
