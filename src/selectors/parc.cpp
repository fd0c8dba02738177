// PARC (Bolya et al. 2021): PCA to 32 dimensions (scikit-learn's sign rule),
// each dimension standardised; 100 x Spearman between the upper triangles of
// 1 - corr(feature rows) and the exact label RDM (0 within a class, C/(C-1) across).
#include <ATen/ATen.h>

#include "linalg.h"
#include "zoobench/error.h"
#include "zoobench/process.h"
#include "zoobench/reduce.h"
#include "zoobench/selector.h"

namespace zoobench {
namespace {
class Parc : public Selector {
 public:
  std::string name() const override { return "parc"; }
  std::string variant() const override { return "pca32-sklearn-signs-exact-label-rdm"; }
  unsigned needs() const override { return kNeedFeatures; }
  double memory_bytes(int64_t n, int64_t d, int64_t) const override {
    return detail::rdm_spearman_bytes(n, 24.0 * static_cast<double>(d));  // copies of the features, in double
  }
  double score(const SelectorInputs& in) const override {
    at::Tensor p = detail::pca(in.features.to(at::kDouble), 32, /*drop_null=*/true);
    if (p.size(1) < 2)
      throw DataError("PARC correlates feature rows: it needs at least 2 feature dimensions with variance, got " +
                      std::to_string(p.size(1)));
    p = (p - p.mean(0, true)) / p.std(0, /*unbiased=*/false, true).clamp_min(1e-300);
    std::vector<double> a = detail::rdm_correlation(p);  // pairs i > j, row by row
    const int64_t n = p.size(0);
    const double across = static_cast<double>(in.classes) / static_cast<double>(in.classes - 1);
    auto la = in.labels.accessor<int64_t, 1>();
    std::vector<double> b;
    reserve_huge(b, a.size());
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < i; ++j) b.push_back(la[i] == la[j] ? 0.0 : across);
    return 100.0 * spearman(a, b);
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(Parc)
}  // namespace zoobench
