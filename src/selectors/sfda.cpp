// SFDA (Shao et al. 2022), as the authors' code computes it (docs/selectors.md):
// a regularised Fisher discriminant, ConfMix on a copy of the features, a
// refit with the same lambda; the score is mean_i p(y_i | x_i), no log.
// With every eigenvector kept and normalised as V^T S_w' V = I, V V^T =
// S_w'^-1, so the eigenproblem becomes a Cholesky solve.
#include <ATen/ATen.h>

#include <cmath>
#include <string>

#include "zoobench/selector.h"

namespace zoobench {
namespace {

struct Fit {
  at::Tensor means, priors, sw;  // C x D, C, D x D
};

// (1) priors, class means and the prior-weighted within-class scatter (1/n covariances).
Fit fit_stats(const at::Tensor& x, const at::Tensor& labels, int64_t classes) {
  const int64_t d = x.size(1);
  Fit f{at::zeros({classes, d}, at::kDouble), at::zeros({classes}, at::kDouble), at::zeros({d, d}, at::kDouble)};
  const double n = static_cast<double>(x.size(0));
  for (int64_t c = 0; c < classes; ++c) {
    at::Tensor xc = x.index_select(0, (labels == c).nonzero().squeeze(1));
    const double nc = static_cast<double>(xc.size(0));
    f.priors[c] = nc / n;
    if (nc == 0) continue;
    at::Tensor mu = xc.mean(0);
    f.means[c] = mu;
    at::Tensor centred = xc - mu;
    f.sw += (nc / n) * at::mm(centred.t(), centred) / nc;
  }
  return f;
}

// (2) lambda from 3 double steps of power iteration started at the row sums.
double shrinkage(const at::Tensor& sw) {
  at::Tensor x = sw.sum(1), y;
  for (int it = 0; it < 3; ++it) {
    at::Tensor t = at::mv(sw, x);
    y = t / t.norm();
    t = at::mv(sw, y);
    x = t / t.norm();
  }
  const double lmax = x.dot(at::mv(sw, y)).item<double>();
  return std::max(std::exp(-5.0 * lmax), 1e-10);
}

// (3)-(4) the regularised scatter, coef = M S_w'^-1 and the class probabilities.
at::Tensor predict(const at::Tensor& x, const Fit& f, double lambda) {
  const int64_t d = x.size(1);
  const double dd = static_cast<double>(d);
  at::Tensor eye = at::eye(d, at::kDouble);
  at::Tensor sw = (1 - lambda) * f.sw + lambda * (at::trace(f.sw).item<double>() / dd) * eye;
  at::Tensor coef = at::linalg_solve(sw, f.means.t()).t();  // C x D
  at::Tensor intercept = -0.5 * (f.means * coef).sum(1) + at::log(f.priors.clamp_min(1e-300));
  return at::softmax(at::mm(x, coef.t()) + intercept, 1);
}

class Sfda : public Selector {
 public:
  std::string name() const override { return "sfda"; }
  std::string variant() const override { return "authors-code-confmix-cholesky"; }
  unsigned needs() const override { return kNeedFeatures; }
  double score(const SelectorInputs& in) const override {
    at::Tensor x = in.features.to(at::kDouble);
    const int64_t c = in.classes;
    Fit f = fit_stats(x, in.labels, c);
    const double lambda = shrinkage(f.sw);
    at::Tensor p = predict(x, f, lambda);
    // (5) ConfMix: soften p by a second softmax, pull each sample towards the
    // mean of the other classes' means by 1 - q(y_i).
    at::Tensor q = at::softmax(p, 1).gather(1, in.labels.unsqueeze(1));  // N x 1
    at::Tensor other = (f.means.sum(0, true) - f.means) / static_cast<double>(c - 1);  // C x D
    at::Tensor mixed = q * x + (1 - q) * other.index_select(0, in.labels);
    // (6) refit with the same lambda; mean probability of the true class.
    Fit g = fit_stats(mixed, in.labels, c);
    at::Tensor p2 = predict(mixed, g, lambda);
    return p2.gather(1, in.labels.unsqueeze(1)).mean().item<double>();
  }
  // With D >= N - C the within-class scatter is singular; when lambda is tiny
  // (features of large variance) the discriminant separates every training
  // sample and the score is 1 up to rounding, whatever the model.
  std::string saturation(const SelectorInputs& in, double value) const override {
    const int64_t n = in.features.size(0), d = in.features.size(1);
    if (d < n - in.classes || value < 1 - 1e-6) return {};
    return "D = " + std::to_string(d) + " features >= N - C = " + std::to_string(n - in.classes) +
           ": the within-class scatter is singular and SFDA = 1 for any model";
  }
};

}  // namespace
ZOOBENCH_REGISTER_SELECTOR(Sfda)
}  // namespace zoobench
