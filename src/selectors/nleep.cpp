// N-LEEP (Li et al. 2021): PCA keeping 80 % of the variance, a full-covariance
// Gaussian mixture with 5 C components (k-means++ start, EM up to 100 steps,
// tol 1e-3, reg_covar 1e-6); its posteriors play P in LEEP (with the log).
// The mixture is fitted in a canonical sample order with a fixed seed, so the
// score does not depend on the order of the samples. Components are capped at N.
#include <ATen/ATen.h>

#include "gmm.h"
#include "linalg.h"
#include "zoobench/selector.h"

namespace zoobench {
namespace {
constexpr uint64_t kSeed = 0;

class NLeep : public Selector {
 public:
  std::string name() const override { return "nleep"; }
  std::string variant() const override { return "pca80-gmm5c-full-kmeans++-seed0-log"; }
  unsigned needs() const override { return kNeedFeatures; }
  double score(const SelectorInputs& in) const override {
    at::Tensor order = at::tensor(detail::canonical_order(in.features));
    at::Tensor f = in.features.to(at::kDouble).index_select(0, order);
    at::Tensor labels = in.labels.index_select(0, order);
    at::Tensor x = detail::pca_variance(f, 0.8);
    if (x.size(1) == 0) x = at::zeros({f.size(0), 1}, at::kDouble);  // no variance at all: one flat dimension
    detail::GmmOptions opt;
    opt.components = 5 * in.classes;
    opt.seed = kSeed;
    at::Tensor p = detail::gmm_posteriors(x, opt);  // N x K, the "source" posteriors
    at::Tensor onehot = at::one_hot(labels, in.classes).to(at::kDouble);
    at::Tensor joint = at::mm(onehot.t(), p) / static_cast<double>(p.size(0));
    at::Tensor marg = joint.sum(0, true);
    at::Tensor cond = at::where(marg > 0, joint / marg.clamp_min(1e-300), at::zeros_like(joint));
    return at::log((p * cond.index_select(0, labels)).sum(1).clamp_min(1e-300)).mean().item<double>();
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(NLeep)
}  // namespace zoobench
