// LogME (You et al. 2021), variant "fixed-point-full-rank": per class, the
// evidence of Bayesian linear regression of the indicator on F with alpha and
// beta from the fixed-point iteration; the log-determinant sums over all D
// eigenvalues of F^T F (zeros included), unlike the fast variant that drops
// them and overstates the evidence when D > N. Mean over classes.
#include <ATen/ATen.h>

#include <cmath>
#include <vector>

#include "linalg.h"
#include "zoobench/selector.h"

namespace zoobench {
namespace {
class LogMe : public Selector {
 public:
  std::string name() const override { return "logme"; }
  std::string variant() const override { return "fixed-point-full-rank"; }
  unsigned needs() const override { return kNeedFeatures; }
  double score(const SelectorInputs& in) const override {
    at::Tensor f = in.features.to(at::kDouble);
    const int64_t n_i = f.size(0), d_i = f.size(1);
    const double n = static_cast<double>(n_i), d = static_cast<double>(d_i);
    // The non-zero eigenvalues of F^T F and F F^T agree: decompose the smaller.
    // What each class needs of the decomposition is its projections on the
    // left singular vectors u of the kept eigenvalues, u^T y: F^T y is the
    // class's sum of feature rows, so u^T y = v^T (F^T y) / sqrt(sigma); when
    // F F^T is decomposed, u is its eigenvectors and y the class's indicator.
    // eigh_project gives those without the eigenvectors themselves.
    bool cols = true;
    const at::Tensor gram = detail::small_gram(f, &cols);
    const at::Tensor onehot = at::one_hot(in.labels, in.classes).to(at::kDouble).t();
    const at::Tensor rows = cols ? at::mm(onehot, f) : onehot;
    auto [evals, projected] = detail::eigh_project(gram, rows);
    at::Tensor keep = (evals > 1e-10).nonzero().squeeze(1);
    at::Tensor sigma_t = evals.index_select(0, keep), proj = projected.index_select(1, keep);
    if (cols) proj = proj / sigma_t.sqrt();
    proj = proj.contiguous();
    const std::vector<double> sigma(sigma_t.data_ptr<double>(), sigma_t.data_ptr<double>() + sigma_t.numel());
    const at::Tensor counts = at::bincount(in.labels, {}, in.classes).to(at::kDouble);
    const double zeros = d - static_cast<double>(sigma.size());
    // The fixed point on r numbers a class: plain loops, where an ATen call
    // per sum (some 80 a class) costs more than the sum.
    auto sum_over = [&](auto term) {
      double s = 0;
      for (size_t j = 0; j < sigma.size(); ++j) s += term(j);
      return s;
    };
    double total = 0;
    std::vector<double> x2(sigma.size());
    for (int64_t c = 0; c < in.classes; ++c) {
      const double* p = proj.data_ptr<double>() + c * proj.size(1);
      for (size_t j = 0; j < x2.size(); ++j) x2[j] = p[j] * p[j];
      const double res_x2 = counts[c].item<double>() - sum_over([&](size_t j) { return x2[j]; });  // y.y = n_c
      auto m2_of = [&](double t) {
        return sum_over([&](size_t j) { return sigma[j] * x2[j] / ((sigma[j] + t) * (sigma[j] + t)); });
      };
      auto res2_of = [&](double t) {
        return sum_over([&](size_t j) { return x2[j] / ((1 + sigma[j] / t) * (1 + sigma[j] / t)); }) + res_x2;
      };
      double alpha = 1.0, beta = 1.0;
      for (int it = 0; it < 11; ++it) {
        const double t = alpha / beta;
        const double gamma = sum_over([&](size_t j) { return sigma[j] / (sigma[j] + t); });
        alpha = gamma / m2_of(t);
        beta = (n - gamma) / res2_of(t);
        if (std::abs(alpha / beta - t) / t <= 1e-3) break;
      }
      // The evidence at the final alpha and beta (m and the residual recomputed for them).
      const double t = alpha / beta, m2 = m2_of(t), res2 = res2_of(t);
      const double logdet =
          sum_over([&](size_t j) { return std::log(alpha + beta * sigma[j]); }) + zeros * std::log(alpha);
      const double evidence = (d / 2 * std::log(alpha) + n / 2 * std::log(beta) - 0.5 * logdet - beta / 2 * res2 -
                               alpha / 2 * m2 - n / 2 * std::log(2 * M_PI)) / n;
      total += evidence;
    }
    return total / static_cast<double>(in.classes);
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(LogMe)
}  // namespace zoobench
