// H-score (Bao et al. 2019): tr(pinv(cov_f) cov_g), covariances with 1/(N-1),
// g_i the mean feature of sample i's class, pinv cut at rcond 1e-15.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <string>

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
  // With the centred features of rank N - 1 (D >= N - 1 in general position),
  // pinv(cov_f) cov_f projects onto the whole centred sample space and the
  // trace is C - 1 for any features: the score says nothing about the model.
  std::string saturation(const SelectorInputs& in, double value) const override {
    const int64_t n = in.features.size(0), d = in.features.size(1);
    const double top = static_cast<double>(in.classes - 1);
    if (d < n - 1 || std::abs(value - top) > 1e-6 * std::max(1.0, top)) return {};
    return "D = " + std::to_string(d) + " features >= N - 1 = " + std::to_string(n - 1) +
           " samples: H-score = C - 1 for any model";
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(HScore)
}  // namespace zoobench
