// GBC (Pandy et al. 2022): PCA to 64 dimensions (min(64, N, D) components),
// a spherical Gaussian per class whose variance is the mean of the
// per-dimension population variances, each floored at 1e-4 first as the
// authors' code does (a dead dimension would otherwise pull the variance
// towards 0 and the distances up); GBC = -sum over ordered class pairs of
// exp(-Bhattacharyya distance).
#include <ATen/ATen.h>

#include <cmath>

#include "linalg.h"
#include "zoobench/selector.h"

namespace zoobench {
namespace {
constexpr double kVarianceFloor = 1e-4;

class Gbc : public Selector {
 public:
  std::string name() const override { return "gbc"; }
  std::string variant() const override { return "pca64-spherical-dimvar-floor-1e-4"; }
  unsigned needs() const override { return kNeedFeatures; }
  double score(const SelectorInputs& in) const override {
    at::Tensor p = detail::pca(in.features.to(at::kDouble), 64);
    std::vector<at::Tensor> mu;
    std::vector<double> var;
    for (int64_t c = 0; c < in.classes; ++c) {
      at::Tensor x = p.index_select(0, (in.labels == c).nonzero().squeeze(1));
      mu.push_back(x.mean(0));
      var.push_back(x.var(0, /*unbiased=*/false).clamp_min(kVarianceFloor).mean().item<double>());
    }
    double total = 0;
    for (int64_t a = 0; a < in.classes; ++a)
      for (int64_t b = 0; b < in.classes; ++b) {
        if (a == b) continue;
        double s = (var[a] + var[b]) / 2;
        // The log term compares the scalar variances (no factor d), as the
        // reference implementation and Pandy et al.'s spherical code do.
        double db = (mu[a] - mu[b]).pow(2).sum().item<double>() / (8 * s) + 0.5 * std::log(s / std::sqrt(var[a] * var[b]));
        total += std::exp(-db);
      }
    return -total;
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(Gbc)
}  // namespace zoobench
