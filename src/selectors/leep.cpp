// LEEP (Nguyen et al. 2020), variant "log": mean_i log sum_z P_iz P(y_i | z),
// with P(c | z) = 0 for a source class z that no sample predicts.
#include <ATen/ATen.h>

#include <cmath>
#include <vector>

#include "zoobench/selector.h"

namespace zoobench {
namespace {
class Leep : public Selector {
 public:
  std::string name() const override { return "leep"; }
  std::string variant() const override { return "log"; }
  unsigned needs() const override { return kNeedSourceProbs; }
  // Two passes over the N x Cs probabilities in plain loops: as ten tensor
  // operations (one-hot, a product, divisions, a gather) the dispatch and the
  // temporaries cost more than the arithmetic, slower than numpy's form.
  double score(const SelectorInputs& in) const override {
    const at::Tensor p = in.source_probs.to(at::kDouble).contiguous();  // N x Cs
    const at::Tensor labels = in.labels.to(at::kLong).contiguous();
    const int64_t n = p.size(0), cs = p.size(1);
    const double* pp = p.data_ptr<double>();
    const int64_t* y = labels.data_ptr<int64_t>();
    std::vector<double> joint(static_cast<size_t>(in.classes * cs), 0.0), marg(static_cast<size_t>(cs), 0.0);
    for (int64_t i = 0; i < n; ++i) {  // n x P(y, z), the 1/n cancels in P(y | z)
      double* row = joint.data() + y[i] * cs;
      for (int64_t z = 0; z < cs; ++z) row[z] += pp[i * cs + z];
    }
    for (int64_t c = 0; c < in.classes; ++c)
      for (int64_t z = 0; z < cs; ++z) marg[static_cast<size_t>(z)] += joint[static_cast<size_t>(c * cs + z)];
    for (int64_t c = 0; c < in.classes; ++c)
      for (int64_t z = 0; z < cs; ++z) {
        double& v = joint[static_cast<size_t>(c * cs + z)];
        v = marg[static_cast<size_t>(z)] > 0 ? v / marg[static_cast<size_t>(z)] : 0.0;  // P(c | z)
      }
    double total = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double* cond = joint.data() + y[i] * cs;
      double eep = 0;  // sum_z P_iz P(y_i | z)
      for (int64_t z = 0; z < cs; ++z) eep += pp[i * cs + z] * cond[z];
      total += std::log(eep);
    }
    return total / static_cast<double>(n);
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(Leep)
}  // namespace zoobench
