// NCTI (Wang et al. 2023), as the authors' code computes it: PCA to 64
// dimensions; shrinkage LDA (scikit-learn's solver='eigen', shrinkage='auto':
// Ledoit-Wolf on standardised features, per class for the within scatter);
// three terms: the nuclear norm of the centred projection on the first C - 1
// discriminant directions, the mean p(y_i | x_i), and log sum_c of the
// nuclear norm of class c's predicted probabilities. Over the zoo each term
// is min-max normalised and NCTI = first + second - third; a lone model's
// score (score()) is the unnormalised combination, and a term that is equal
// for every model contributes 0.
#include <ATen/ATen.h>

#include <algorithm>

#include "linalg.h"
#include "zoobench/selector.h"

namespace zoobench {
namespace {

// scikit-learn's _cov(X, shrinkage='auto'): Ledoit-Wolf on standardised columns, scaled back.
at::Tensor shrunk_cov(const at::Tensor& x) {
  at::Tensor sd = x.std(0, /*unbiased=*/false);
  sd = at::where(sd > 0, sd, at::ones_like(sd));
  at::Tensor s = detail::ledoit_wolf((x - x.mean(0, true)) / sd).cov;
  return sd.unsqueeze(1) * s * sd.unsqueeze(0);
}

class Ncti : public Selector {
 public:
  std::string name() const override { return "ncti"; }
  std::string variant() const override { return "pca64-lda-eigen-ledoit-wolf-zoo-minmax"; }
  unsigned needs() const override { return kNeedFeatures; }

  std::vector<double> terms(const SelectorInputs& in) const override {
    at::Tensor x = detail::pca(in.features.to(at::kDouble), 64, /*drop_null=*/true);
    if (x.size(1) == 0) x = at::zeros({in.features.size(0), 1}, at::kDouble);
    const int64_t n = x.size(0), d = x.size(1), classes = in.classes;
    at::Tensor onehot = at::one_hot(in.labels, classes).to(at::kDouble);
    at::Tensor counts = onehot.sum(0);
    at::Tensor present = (counts > 0).nonzero().squeeze(1);
    at::Tensor priors = counts.index_select(0, present) / static_cast<double>(n);
    at::Tensor means = (at::mm(onehot.t(), x) / counts.clamp_min(1).unsqueeze(1)).index_select(0, present);
    at::Tensor sw = at::zeros({d, d}, at::kDouble);
    auto pa = present.accessor<int64_t, 1>();
    for (int64_t k = 0; k < present.size(0); ++k)
      sw += priors[k] * shrunk_cov(x.index_select(0, (in.labels == pa[k]).nonzero().squeeze(1)));
    at::Tensor sb = shrunk_cov(x) - sw;
    // Generalised eigenproblem S_b v = e S_w v through the Cholesky factor of S_w.
    const double jitter = 1e-12 * at::trace(sw).item<double>() / static_cast<double>(d) + 1e-300;
    at::Tensor l = at::linalg_cholesky(sw + jitter * at::eye(d, at::kDouble));
    at::Tensor li = at::linalg_solve_triangular(l, at::eye(d, at::kDouble), /*upper=*/false);
    auto [e, u] = at::linalg_eigh(at::mm(at::mm(li, sb), li.t()));
    at::Tensor v = at::mm(li.t(), u).flip(1);  // eigenvalues descending
    const int64_t comps = std::min<int64_t>(present.size(0) - 1, d);
    at::Tensor low = at::mm(x, v.narrow(1, 0, std::max<int64_t>(comps, 1)));
    low = low - low.mean(0, true);
    const double nuc_all = at::linalg_svdvals(low).sum().item<double>();
    at::Tensor coef = at::mm(at::mm(means, v), v.t());  // = means S_w^-1
    at::Tensor intercept = -0.5 * (means * coef).sum(1) + at::log(priors);
    at::Tensor prob = at::softmax(at::mm(x, coef.t()) + intercept, 1);  // N x present classes
    // Column of each sample's own class among the present classes.
    at::Tensor col = at::full({classes}, -1, at::kLong);
    col.index_put_({present}, at::arange(present.size(0), at::kLong));
    at::Tensor own = col.index_select(0, in.labels);
    const double seli = prob.gather(1, own.unsqueeze(1)).mean().item<double>();
    double class_nuc = 0;
    for (int64_t k = 0; k < present.size(0); ++k)
      class_nuc += at::linalg_svdvals(prob.index_select(0, (own == k).nonzero().squeeze(1))).sum().item<double>();
    return {nuc_all, seli, std::log(class_nuc)};
  }

  double score(const SelectorInputs& in) const override {
    std::vector<double> t = terms(in);
    return t[0] + t[1] - t[2];
  }

  std::vector<double> combine(const std::vector<std::vector<double>>& per_model) const override {
    std::vector<double> out(per_model.size(), 0.0);
    for (size_t term = 0; term < 3; ++term) {
      double lo = per_model.empty() ? 0 : per_model[0][term], hi = lo;
      for (const auto& t : per_model) lo = std::min(lo, t[term]), hi = std::max(hi, t[term]);
      for (size_t m = 0; m < per_model.size(); ++m) {
        const double norm = hi > lo ? (per_model[m][term] - lo) / (hi - lo) : 0.0;
        out[m] += term == 2 ? -norm : norm;
      }
    }
    return out;
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(Ncti)
}  // namespace zoobench
