// kNN: leave-one-out 1-nearest-neighbour accuracy on the features, Euclidean
// distance, ties broken by the smallest label; a fraction in [0, 1].
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "linalg.h"
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
    at::Tensor sq_t = (x * x).sum(1).contiguous();
    const double* sq = sq_t.data_ptr<double>();
    const int64_t* lab = in.labels.contiguous().data_ptr<int64_t>();
    std::vector<int64_t> hit(static_cast<size_t>(n), 0);
    // The Gram matrix a block of rows at a time: at N = 50,000 the whole one
    // would be 20 GB. One pass per row: the nearest other sample, ties to the
    // smallest label.
    const int64_t block = std::min<int64_t>(512, detail::gram_block_rows(n));
    for (int64_t b0 = 0; b0 < n; b0 += block) {
      const int64_t b1 = std::min(n, b0 + block);
      at::Tensor g = detail::gram_block(x, b0, b1, n).contiguous();
      const double* gp = g.data_ptr<double>();
      at::parallel_for(b0, b1, 16, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) {
          const double* row = gp + (i - b0) * n;
          double best = std::numeric_limits<double>::infinity();
          int64_t label = std::numeric_limits<int64_t>::max();
          for (int64_t j = 0; j < n; ++j) {
            if (j == i) continue;
            const double dist = std::max(0.0, sq[i] + sq[j] - 2 * row[j]);
            if (dist < best) best = dist, label = lab[j];
            else if (dist == best && lab[j] < label) label = lab[j];
          }
          hit[static_cast<size_t>(i)] = label == lab[i];
        }
      });
    }
    int64_t correct = 0;
    for (int64_t h : hit) correct += h;
    return static_cast<double>(correct) / static_cast<double>(n);
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(Knn)
}  // namespace zoobench
