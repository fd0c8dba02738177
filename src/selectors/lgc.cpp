// LGC, Label-Gradient Correlation (Deshpande et al. 2021): LFC's formula on
// per-sample gradient sketches of the last convolution (see Model::grad_sketch).
#include "correlation.h"
#include "zoobench/selector.h"

namespace zoobench {
namespace {
class Lgc : public Selector {
 public:
  std::string name() const override { return "lgc"; }
  std::string variant() const override { return "ntk-trace-kronecker-sketch"; }
  unsigned needs() const override { return kNeedGradSketch; }
  double score(const SelectorInputs& in) const override {
    return detail::kernel_label_correlation(in.grad_sketch, in.labels, in.classes);
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(Lgc)
}  // namespace zoobench
