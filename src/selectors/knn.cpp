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
    // Each row's nearest other sample so far, as (squared distance, label):
    // the smaller pair wins, so the order the blocks come in does not matter.
    std::vector<double> best(static_cast<size_t>(n), std::numeric_limits<double>::infinity());
    std::vector<int64_t> label(static_cast<size_t>(n), std::numeric_limits<int64_t>::max());
    auto offer = [&](int64_t i, int64_t j, double g) {
      const double dist = std::max(0.0, sq[i] + sq[j] - 2 * g);
      auto& b = best[static_cast<size_t>(i)];
      auto& l = label[static_cast<size_t>(i)];
      if (dist < b) b = dist, l = lab[j];
      else if (dist == b && lab[j] < l) l = lab[j];
    };
    // The Gram matrix a pair of row blocks at a time (at N = 50,000 the whole
    // one would be 20 GB), and only the pairs on or below the diagonal: the
    // block of rows I against J serves J's rows too, read down its columns,
    // so the products cost half (numpy's f @ f.T is a syrk for the same reason).
    const int64_t block = std::min<int64_t>(512, detail::gram_block_rows(n));
    for (int64_t i0 = 0; i0 < n; i0 += block) {
      const int64_t i1 = std::min(n, i0 + block);
      for (int64_t j0 = 0; j0 <= i0; j0 += block) {
        const int64_t j1 = std::min(n, j0 + block), cols = j1 - j0;
        at::Tensor g = at::mm(x.narrow(0, i0, i1 - i0), x.narrow(0, j0, cols).t()).contiguous();
        const double* gp = g.data_ptr<double>();
        at::parallel_for(i0, i1, 16, [&](int64_t lo, int64_t hi) {
          for (int64_t i = lo; i < hi; ++i)
            for (int64_t j = j0; j < j1; ++j)
              if (j != i) offer(i, j, gp[(i - i0) * cols + (j - j0)]);
        });
        if (j0 == i0) continue;  // a diagonal block holds both sides of its pairs
        at::parallel_for(j0, j1, 16, [&](int64_t lo, int64_t hi) {  // along the rows, for the cache
          for (int64_t i = i0; i < i1; ++i)
            for (int64_t j = lo; j < hi; ++j) offer(j, i, gp[(i - i0) * cols + (j - j0)]);
        });
      }
    }
    int64_t correct = 0;
    for (int64_t i = 0; i < n; ++i) correct += label[static_cast<size_t>(i)] == lab[i];
    return static_cast<double>(correct) / static_cast<double>(n);
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(Knn)
}  // namespace zoobench
