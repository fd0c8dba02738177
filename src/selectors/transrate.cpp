// TransRate (Huang et al. 2022): R(F) - (1/C) sum_c R(F_c) with
// R(Z) = 1/2 logdet(I + Z^T Z / (n eps)), eps = 1e-4, F centred once.
#include <ATen/ATen.h>

#include "linalg.h"
#include "zoobench/selector.h"

namespace zoobench {
namespace {
double coding_rate(const at::Tensor& z, double eps) {
  // det(I_D + Z^T Z / a) = det(I_n + Z Z^T / a) (Sylvester): the smaller Gram, by Cholesky.
  const double n = static_cast<double>(z.size(0));
  at::Tensor g = detail::small_gram(z);
  return 0.5 * detail::logdet_spd(at::eye(g.size(0), at::kDouble) + g / (n * eps));
}
class TransRate : public Selector {
 public:
  std::string name() const override { return "transrate"; }
  std::string variant() const override { return "eps-1e-4-classes-not-recentred"; }
  unsigned needs() const override { return kNeedFeatures; }
  double score(const SelectorInputs& in) const override {
    const double eps = 1e-4;
    at::Tensor f = in.features.to(at::kDouble);
    f = f - f.mean(0, true);
    double r = coding_rate(f, eps), rc = 0;
    for (int64_t c = 0; c < in.classes; ++c) {
      at::Tensor idx = (in.labels == c).nonzero().squeeze(1);
      if (idx.numel() > 0) rc += coding_rate(f.index_select(0, idx), eps);
    }
    return r - rc / static_cast<double>(in.classes);
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(TransRate)
}  // namespace zoobench
