// LEEP (Nguyen et al. 2020), variant "log": mean_i log sum_z P_iz P(y_i | z),
// with P(c | z) = 0 for a source class z that no sample predicts.
#include <ATen/ATen.h>

#include "zoobench/selector.h"

namespace zoobench {
namespace {
class Leep : public Selector {
 public:
  std::string name() const override { return "leep"; }
  std::string variant() const override { return "log"; }
  unsigned needs() const override { return kNeedSourceProbs; }
  double score(const SelectorInputs& in) const override {
    at::Tensor p = in.source_probs.to(at::kDouble);                      // N x Cs
    at::Tensor onehot = at::one_hot(in.labels, in.classes).to(at::kDouble);  // N x C
    const double n = static_cast<double>(p.size(0));
    at::Tensor joint = at::mm(onehot.t(), p) / n;  // C x Cs
    at::Tensor marg = joint.sum(0, true);          // 1 x Cs
    at::Tensor cond = at::where(marg > 0, joint / marg.clamp_min(1e-300), at::zeros_like(joint));
    at::Tensor eep = (p * cond.index_select(0, in.labels)).sum(1);  // sum_z P_iz P(y_i | z)
    return at::log(eep).mean().item<double>();
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(Leep)
}  // namespace zoobench
