// LFC, Label-Feature Correlation (Deshpande et al. 2021): Theta = F F^T,
// features not normalised. See correlation.cpp for the Gram-free form.
#include "correlation.h"
#include "zoobench/selector.h"

namespace zoobench {
namespace {
class Lfc : public Selector {
 public:
  std::string name() const override { return "lfc"; }
  std::string variant() const override { return "pearson-global-mean-gram-free"; }
  unsigned needs() const override { return kNeedFeatures; }
  double score(const SelectorInputs& in) const override {
    return detail::kernel_label_correlation(in.features, in.labels, in.classes);
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(Lfc)
}  // namespace zoobench
