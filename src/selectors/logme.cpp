// LogME (You et al. 2021), variant "fixed-point-full-rank": per class, the
// evidence of Bayesian linear regression of the indicator on F with alpha and
// beta from the fixed-point iteration; the log-determinant sums over all D
// eigenvalues of F^T F (zeros included), unlike the fast variant that drops
// them and overstates the evidence when D > N. Mean over classes.
#include <ATen/ATen.h>

#include <cmath>

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
    bool cols = true;
    auto [evals, evecs] = at::linalg_eigh(detail::small_gram(f, &cols));
    at::Tensor keep = (evals > 1e-10).nonzero().squeeze(1);
    at::Tensor sigma = evals.index_select(0, keep);
    // Left singular vectors of F for the kept eigenvalues: u = F v / sqrt(sigma), or F F^T's own.
    at::Tensor u = cols ? at::mm(f, evecs.index_select(1, keep)) / sigma.sqrt() : evecs.index_select(1, keep);
    const double zeros = d - static_cast<double>(sigma.size(0));
    double total = 0;
    for (int64_t c = 0; c < in.classes; ++c) {
      at::Tensor y = (in.labels == c).to(at::kDouble);
      at::Tensor x2 = at::mv(u.t(), y).pow(2);
      const double res_x2 = y.dot(y).item<double>() - x2.sum().item<double>();
      auto m2_of = [&](double t) { return (sigma * x2 / (sigma + t).pow(2)).sum().item<double>(); };
      auto res2_of = [&](double t) { return (x2 / (1 + sigma / t).pow(2)).sum().item<double>() + res_x2; };
      double alpha = 1.0, beta = 1.0;
      for (int it = 0; it < 11; ++it) {
        const double t = alpha / beta;
        const double gamma = (sigma / (sigma + t)).sum().item<double>();
        alpha = gamma / m2_of(t);
        beta = (n - gamma) / res2_of(t);
        if (std::abs(alpha / beta - t) / t <= 1e-3) break;
      }
      // The evidence at the final alpha and beta (m and the residual recomputed for them).
      const double t = alpha / beta, m2 = m2_of(t), res2 = res2_of(t);
      const double logdet = at::log(alpha + beta * sigma).sum().item<double>() + zeros * std::log(alpha);
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
