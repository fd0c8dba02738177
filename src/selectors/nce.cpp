// NCE (Tran et al. 2019): -H(Y | Z) with Z the source model's argmax class.
#include <ATen/ATen.h>

#include "zoobench/selector.h"

namespace zoobench {
namespace {
class Nce : public Selector {
 public:
  std::string name() const override { return "nce"; }
  std::string variant() const override { return "argmax-conditional-entropy"; }
  unsigned needs() const override { return kNeedSourceProbs; }
  double score(const SelectorInputs& in) const override {
    at::Tensor z = in.source_probs.argmax(1);
    const int64_t cs = in.source_probs.size(1);
    at::Tensor joint = at::zeros({in.classes, cs}, at::kDouble);
    joint.index_put_({in.labels, z}, at::ones({in.labels.size(0)}, at::kDouble), /*accumulate=*/true);
    joint /= static_cast<double>(in.labels.size(0));
    at::Tensor pz = joint.sum(0, true);
    at::Tensor cond = joint / pz.clamp_min(1e-300);
    at::Tensor terms = at::where(joint > 0, joint * at::log(cond.clamp_min(1e-300)), at::zeros_like(joint));
    return terms.sum().item<double>();
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(Nce)
}  // namespace zoobench
