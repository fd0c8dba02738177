// kNN: leave-one-out 1-nearest-neighbour accuracy on the features, Euclidean
// distance, ties broken by the smallest label; a fraction in [0, 1].
#include <ATen/ATen.h>

#include <limits>

#include "zoobench/selector.h"

namespace zoobench {
namespace {
class Knn : public Selector {
 public:
  std::string name() const override { return "knn"; }
  std::string variant() const override { return "loo-1nn-euclidean-smallest-label"; }
  unsigned needs() const override { return kNeedFeatures; }
  double score(const SelectorInputs& in) const override {
    at::Tensor x = in.features.to(at::kDouble);
    const int64_t n = x.size(0);
    if (n < 2) return 0.0;
    at::Tensor sq = (x * x).sum(1);
    at::Tensor d = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2 * at::mm(x, x.t())).clamp_min(0);
    d.fill_diagonal_(std::numeric_limits<double>::infinity());
    auto da = d.accessor<double, 2>();
    auto la = in.labels.accessor<int64_t, 1>();
    int64_t correct = 0;
    for (int64_t i = 0; i < n; ++i) {
      double best = std::numeric_limits<double>::infinity();
      int64_t label = std::numeric_limits<int64_t>::max();
      for (int64_t j = 0; j < n; ++j) {
        if (da[i][j] < best) best = da[i][j], label = la[j];
        else if (da[i][j] == best && la[j] < label) label = la[j];
      }
      correct += label == la[i];
    }
    return static_cast<double>(correct) / static_cast<double>(n);
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(Knn)
}  // namespace zoobench
