// Linear probe: multinomial logistic regression on standardised features
// (mean and std of the training half), trained on a seeded half of the
// samples by L-BFGS (L2 1e-4 on the weights, at most 100 iterations),
// accuracy on the other half. The halves are drawn in a canonical sample
// order and alternate within each class, so every class with two samples
// is on both sides and the split is invariant to sample order and class ids.
#include <ATen/ATen.h>

#include <cmath>
#include <deque>
#include <map>

#include "linalg.h"
#include "zoobench/random.h"
#include "zoobench/selector.h"

namespace zoobench {
namespace {
constexpr uint64_t kSeed = 0;
constexpr double kL2 = 1e-4;
constexpr int kMaxIter = 100;

// Mean cross-entropy + kL2/2 ||W||^2 and its gradient; theta = [W; b] ((D+1) x C).
double loss_and_grad(const at::Tensor& x1, const at::Tensor& y1h, const at::Tensor& theta, at::Tensor& grad) {
  const double n = static_cast<double>(x1.size(0));
  at::Tensor logits = at::mm(x1, theta);
  at::Tensor logp = at::log_softmax(logits, 1);
  at::Tensor w = theta.narrow(0, 0, theta.size(0) - 1);
  double loss = -(y1h * logp).sum().item<double>() / n + 0.5 * kL2 * w.pow(2).sum().item<double>();
  grad = at::mm(x1.t(), at::exp(logp) - y1h) / n;
  grad.narrow(0, 0, theta.size(0) - 1).add_(w, kL2);
  return loss;
}

// L-BFGS with history 10 and a backtracking Armijo line search.
at::Tensor lbfgs(const at::Tensor& x1, const at::Tensor& y1h) {
  at::Tensor theta = at::zeros({x1.size(1), y1h.size(1)}, at::kDouble), g;
  double f = loss_and_grad(x1, y1h, theta, g);
  std::deque<std::pair<at::Tensor, at::Tensor>> hist;  // (s, y)
  for (int it = 0; it < kMaxIter; ++it) {
    if (g.abs().max().item<double>() < 1e-8) break;
    at::Tensor q = g.clone();
    std::vector<double> alpha(hist.size());
    for (size_t i = hist.size(); i-- > 0;) {
      const auto& [s, y] = hist[i];
      alpha[i] = (s * q).sum().item<double>() / (y * s).sum().item<double>();
      q -= alpha[i] * y;
    }
    if (!hist.empty()) {
      const auto& [s, y] = hist.back();
      q *= (s * y).sum().item<double>() / (y * y).sum().item<double>();
    }
    for (size_t i = 0; i < hist.size(); ++i) {
      const auto& [s, y] = hist[i];
      const double beta = (y * q).sum().item<double>() / (y * s).sum().item<double>();
      q += (alpha[i] - beta) * s;
    }
    at::Tensor dir = -q;
    double slope = (g * dir).sum().item<double>();
    if (slope >= 0) dir = -g, slope = -(g * g).sum().item<double>(), hist.clear();
    double step = 1.0, fn = f;
    at::Tensor tn, gn;
    for (int ls = 0; ls < 40; ++ls, step *= 0.5) {
      tn = theta + step * dir;
      fn = loss_and_grad(x1, y1h, tn, gn);
      if (fn <= f + 1e-4 * step * slope) break;
    }
    if (!(fn < f)) break;  // no descent left at machine precision
    at::Tensor s = tn - theta, y = gn - g;
    if ((s * y).sum().item<double>() > 1e-12) {
      hist.emplace_back(s, y);
      if (hist.size() > 10) hist.pop_front();
    }
    const double rel = (f - fn) / std::max({std::abs(f), std::abs(fn), 1.0});
    theta = tn, g = gn, f = fn;
    if (rel < 1e-12) break;
  }
  return theta;
}

class LinearProbe : public Selector {
 public:
  std::string name() const override { return "linear_probe"; }
  std::string variant() const override { return "half-split-seed0-standardised-lbfgs-l2-1e-4-100it"; }
  unsigned needs() const override { return kNeedFeatures; }
  double score(const SelectorInputs& in) const override {
    std::vector<int64_t> order = detail::canonical_order(in.features);
    Rng rng(kSeed);
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
    auto la = in.labels.accessor<int64_t, 1>();
    std::map<int64_t, int64_t> seen;
    std::vector<int64_t> train, test;
    for (int64_t i : order) (seen[la[i]]++ % 2 == 0 ? train : test).push_back(i);
    if (test.empty()) return 0.0;
    at::Tensor f = in.features.to(at::kDouble);
    at::Tensor xtr = f.index_select(0, at::tensor(train)), xte = f.index_select(0, at::tensor(test));
    at::Tensor mean = xtr.mean(0, true), sd = xtr.std(0, /*unbiased=*/false, true);
    sd = at::where(sd > 0, sd, at::ones_like(sd));
    auto prep = [&](const at::Tensor& x) {
      return at::cat({(x - mean) / sd, at::ones({x.size(0), 1}, at::kDouble)}, 1);
    };
    at::Tensor ytr = in.labels.index_select(0, at::tensor(train)), yte = in.labels.index_select(0, at::tensor(test));
    at::Tensor theta = lbfgs(prep(xtr), at::one_hot(ytr, in.classes).to(at::kDouble));
    at::Tensor pred = at::mm(prep(xte), theta).argmax(1);
    return pred.eq(yte).to(at::kDouble).mean().item<double>();
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(LinearProbe)
}  // namespace zoobench
