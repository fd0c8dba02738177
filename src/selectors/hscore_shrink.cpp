// Shrinkage H-score (Ibrahim et al. 2022): Ledoit-Wolf shrinkage of the
// feature covariance (1/N, target tr(S)/D I, alpha clamped to [0, 1]);
// H = tr(pinv(Sigma_alpha) (1 - alpha) cov_g), cov_g with 1/(N-1).
#include <ATen/ATen.h>

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
    x = x - x.mean(0, true);
    const double n = static_cast<double>(x.size(0)), d = static_cast<double>(x.size(1));
    at::Tensor s = at::mm(x.t(), x) / n;
    // Ledoit-Wolf shrinkage intensity, as scikit-learn computes it.
    at::Tensor x2 = x * x;
    at::Tensor trace_terms = x2.sum(0) / n;
    double mu = trace_terms.sum().item<double>() / d;
    double beta_ = at::mm(x2.t(), x2).sum().item<double>();
    double delta_ = at::mm(x.t(), x).pow(2).sum().item<double>() / (n * n);
    double beta = (beta_ / n - delta_) / (d * n);
    double delta = (delta_ - 2 * mu * trace_terms.sum().item<double>() + d * mu * mu) / d;
    beta = std::min(beta, delta);
    double alpha = beta == 0 ? 0.0 : std::clamp(beta / delta, 0.0, 1.0);
    at::Tensor shrunk = (1 - alpha) * s + alpha * mu * at::eye(x.size(1), at::kDouble);
    at::Tensor cov_g = detail::covariance(detail::class_means_per_row(x, in.labels, in.classes), 1);
    return at::trace(at::mm(detail::pinv(shrunk, 1e-15), (1 - alpha) * cov_g)).item<double>();
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(HScoreShrink)
}  // namespace zoobench
