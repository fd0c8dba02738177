// Linear probe: multinomial logistic regression on standardised features
// (mean and std of the training folds) by L-BFGS (L2 1e-4 on the weights,
// at most 100 iterations); the score is the mean held-out accuracy of a
// seeded, stratified k-fold cross-validation, k = min(5, the smallest
// class's count) and at least 2. One seeded half split was the definition
// before; split-to-split noise dominated it (issue #9 measured model
// rankings of two half splits agreeing only at Spearman 0.36-0.81). No paper
// publishes code for this score; it is the common practice of the
// transferability literature (e.g. Kornblith et al. 2019's logistic probe).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <map>

#include "linalg.h"
#include "softmax_kernel.h"
#include "zoobench/random.h"
#include "zoobench/selector.h"

namespace zoobench {
namespace {
constexpr uint64_t kSeed = 0;
constexpr double kL2 = 1e-4;
constexpr int kMaxIter = 100;
constexpr size_t kMaxFolds = 5;

using Vec = std::vector<double>;

// L-BFGS's own loops (some 40 passes over the D x C parameters an iteration)
// had been 15 % of the probe (perf): a dot product was one chain of dependent
// additions, which the compiler may not reorder, on SSE2. Eight running sums
// instead, and clones for the wider vector units (ZB_VECTOR_CLONES).

ZB_VECTOR_CLONES double dot(const Vec& a, const Vec& b) {
  double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const size_t n = a.size(), whole = n - n % 8;
  for (size_t i = 0; i < whole; i += 8)
    for (size_t k = 0; k < 8; ++k) part[k] += a[i + k] * b[i + k];
  double s = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
  for (size_t i = whole; i < n; ++i) s += a[i] * b[i];
  return s;
}

// y += a x
ZB_VECTOR_CLONES void axpy(double a, const Vec& x, Vec& y) {
  for (size_t i = 0; i < y.size(); ++i) y[i] += a * x[i];
}

// Mean cross-entropy + kL2/2 ||W||^2 and its gradient; theta = [W; b] as a
// (D+1) x C row-major vector. The products with the N x (D+1) features are
// float32, in one fused pass over the rows (softmax_kernel.h): logits,
// softmax and the gradient's sum for a block of rows while it is in cache.
// Everything the optimiser sees is double: the softmax, the loss, the sums of
// the row blocks' gradients, the L2 term and L-BFGS itself. Against the
// all-double form the score moved by 0.001 (0.4468 -> 0.4458 on
// bench_selectors' cell at N = 5,000), the spread that stopping at 100
// iterations already leaves between any two implementations (scikit-learn's
// included). The row blocks are fixed, and summed in order, so the result does
// not depend on how many threads ran them.
struct Objective {
  static constexpr int64_t kTasks = 8;  // row blocks a fold's rows are cut into, whatever the thread count
  at::Tensor x;  // rows (padded to 4) x stride float32, standardised, column D ones, padding zero
  std::vector<int64_t> y;
  int64_t rows, cols, classes;
  int64_t stride = detail::round_up(cols, detail::kSoftmaxLanes);
  int64_t classes_padded = detail::round_up(classes, detail::kSoftmaxBlock);
  mutable std::vector<float> w, partial;  // the weights class by class; each row block's gradient
  mutable std::vector<double> losses;

  double operator()(const Vec& theta, Vec& grad) const {
    const size_t block = static_cast<size_t>(classes_padded * stride);
    const int64_t tasks = kTasks, per_task = detail::round_up((rows + kTasks - 1) / kTasks, detail::kSoftmaxBlock);
    w.assign(block, 0.0f);
    partial.assign(block * static_cast<size_t>(tasks), 0.0f);
    losses.assign(static_cast<size_t>(tasks), 0.0);
    for (int64_t d = 0; d < cols; ++d)
      for (int64_t c = 0; c < classes; ++c)
        w[static_cast<size_t>(c * stride + d)] = static_cast<float>(theta[static_cast<size_t>(d * classes + c)]);
    const detail::SoftmaxProblem problem{x.data_ptr<float>(), rows, stride, y.data(), classes, classes_padded};
    at::parallel_for(0, tasks, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t)
        losses[static_cast<size_t>(t)] =
            detail::softmax_rows(problem, w.data(), t * per_task, (t + 1) * per_task,
                                 partial.data() + static_cast<size_t>(t) * block);
    });
    double loss = 0;
    std::fill(grad.begin(), grad.end(), 0.0);
    for (int64_t t = 0; t < tasks; ++t) {
      loss += losses[static_cast<size_t>(t)];
      const float* g = partial.data() + static_cast<size_t>(t) * block;
      for (int64_t d = 0; d < cols; ++d)
        for (int64_t c = 0; c < classes; ++c) grad[static_cast<size_t>(d * classes + c)] += g[c * stride + d];
    }
    const double n = static_cast<double>(rows);
    double reg = 0;
    for (double& v : grad) v /= n;
    for (size_t i = 0; i < static_cast<size_t>((cols - 1) * classes); ++i) {  // the bias row is not penalised
      reg += theta[i] * theta[i];
      grad[i] += kL2 * theta[i];
    }
    return loss / n + 0.5 * kL2 * reg;
  }
};

// L-BFGS with history 10 and a backtracking Armijo line search.
Vec lbfgs(const Objective& obj) {
  const size_t dim = static_cast<size_t>(obj.cols * obj.classes);
  Vec theta(dim, 0.0), g(dim), q(dim), tn(dim), gn(dim);
  double f = obj(theta, g);
  std::deque<std::pair<Vec, Vec>> hist;  // (s, y)
  for (int it = 0; it < kMaxIter; ++it) {
    double gmax = 0;
    for (double v : g) gmax = std::max(gmax, std::abs(v));
    if (gmax < 1e-8) break;
    q = g;
    std::vector<double> alpha(hist.size());
    for (size_t i = hist.size(); i-- > 0;) {
      const auto& [s, y] = hist[i];
      alpha[i] = dot(s, q) / dot(y, s);
      axpy(-alpha[i], y, q);
    }
    if (!hist.empty()) {
      const auto& [s, y] = hist.back();
      const double h0 = dot(s, y) / dot(y, y);
      for (double& v : q) v *= h0;
    }
    for (size_t i = 0; i < hist.size(); ++i) {
      const auto& [s, y] = hist[i];
      const double beta = dot(y, q) / dot(y, s);
      axpy(alpha[i] - beta, s, q);
    }
    for (double& v : q) v = -v;  // the search direction
    double slope = dot(g, q);
    if (slope >= 0) {  // not a descent direction: restart from steepest descent
      for (size_t j = 0; j < dim; ++j) q[j] = -g[j];
      slope = -dot(g, g);
      hist.clear();
    }
    double step = 1.0, fn = f;
    for (int ls = 0; ls < 40; ++ls, step *= 0.5) {
      for (size_t j = 0; j < dim; ++j) tn[j] = theta[j] + step * q[j];
      fn = obj(tn, gn);
      if (fn <= f + 1e-4 * step * slope) break;
    }
    if (!(fn < f)) break;  // no descent left at machine precision
    Vec s(dim), y(dim);
    for (size_t j = 0; j < dim; ++j) s[j] = tn[j] - theta[j], y[j] = gn[j] - g[j];
    if (dot(s, y) > 1e-12) {
      hist.emplace_back(std::move(s), std::move(y));
      if (hist.size() > 10) hist.pop_front();
    }
    const double rel = (f - fn) / std::max({std::abs(f), std::abs(fn), 1.0});
    theta.swap(tn);
    g.swap(gn);
    f = fn;
    if (rel < 1e-12) break;
  }
  return theta;
}

// Fits on `train`, returns the accuracy on `test`.
double fold_accuracy(const at::Tensor& f, const at::Tensor& labels, int64_t classes, const std::vector<int64_t>& train,
                     const std::vector<int64_t>& test) {
  at::Tensor xtr = f.index_select(0, at::tensor(train)), xte = f.index_select(0, at::tensor(test));
  at::Tensor mean = xtr.mean(0, true), sd = xtr.std(0, /*unbiased=*/false, true);
  sd = at::where(sd > 0, sd, at::ones_like(sd));
  auto prep = [&](const at::Tensor& x) { return at::cat({(x - mean) / sd, at::ones({x.size(0), 1}, at::kDouble)}, 1); };
  at::Tensor ytr = labels.index_select(0, at::tensor(train)), yte = labels.index_select(0, at::tensor(test));
  const auto rows = static_cast<int64_t>(train.size());
  Objective obj{at::Tensor(), {}, rows, f.size(1) + 1, classes};
  obj.x = at::zeros({detail::round_up(rows, detail::kSoftmaxBlock), obj.stride}, at::kFloat);
  obj.x.narrow(0, 0, rows).narrow(1, 0, obj.cols).copy_(prep(xtr));
  auto ya = ytr.accessor<int64_t, 1>();
  for (int64_t i = 0; i < rows; ++i) obj.y.push_back(ya[i]);
  Vec theta = lbfgs(obj);
  at::Tensor t = at::from_blob(theta.data(), {obj.cols, classes}, at::kDouble);
  return at::mm(prep(xte), t).argmax(1).eq(yte).to(at::kDouble).mean().item<double>();
}

class LinearProbe : public Selector {
 public:
  std::string name() const override { return "linear_probe"; }
  std::string variant() const override {
    return "stratified-kfold-cv,k=min(5,smallest-class)>=2,seed0;standardised;lbfgs-l2-1e-4-100it;fp32-gemm";
  }
  unsigned needs() const override { return kNeedFeatures; }
  double score(const SelectorInputs& in) const override {
    const std::vector<int> fold = folds(in);
    if (fold.empty()) return 0.0;
    const int k = *std::max_element(fold.begin(), fold.end()) + 1;
    at::Tensor f = in.features.to(at::kDouble);
    // The folds run side by side, one thread each: a fit is a chain of small
    // GEMMs (N x (D+1) by (D+1) x C), whose packing and the loops between
    // them a second thread barely speeds up, where a second fold doubles the
    // work done. Only whole rounds of one fold a thread, though: the folds
    // left over (5 on 2 threads: the fifth) run one at a time with every
    // thread in their GEMMs, where one thread would have run a round alone.
    // A fold's result does not depend on how it ran, and the sum is taken in
    // fold order, so the score does not depend on the thread count.
    std::vector<double> accuracy(static_cast<size_t>(k));
    auto run_fold = [&](int64_t held) {
      std::vector<int64_t> train, test;
      for (size_t i = 0; i < fold.size(); ++i) (fold[i] == held ? test : train).push_back(static_cast<int64_t>(i));
      accuracy[static_cast<size_t>(held)] = fold_accuracy(f, in.labels, in.classes, train, test);
    };
    const int threads = at::get_num_threads();
    const int alone = threads > 1 && k > threads ? k % threads : 0;
    at::parallel_for(0, k - alone, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t held = lo; held < hi; ++held) run_fold(held);
    });
    for (int64_t held = k - alone; held < k; ++held) run_fold(held);
    double total = 0;
    for (double a : accuracy) total += a;
    return total / k;
  }

 private:
  // Stratified folds, as scikit-learn's StratifiedKFold deals them: the
  // samples sorted by class, position p goes to fold p mod k, so every fold
  // gets each class's share to within one. Within a class the order is a
  // seeded shuffle of the canonical (value-sorted) order, so the folds do not
  // depend on the order the samples came in.
  static std::vector<int> folds(const SelectorInputs& in) {
    const int64_t n = in.features.size(0);
    if (n < 2) return {};
    auto la = in.labels.accessor<int64_t, 1>();
    const std::vector<int64_t> canonical = detail::canonical_order(in.features);
    std::map<int64_t, std::vector<std::pair<uint64_t, int64_t>>> members;  // class -> (shuffle key, sample)
    for (size_t rank = 0; rank < canonical.size(); ++rank)
      members[la[canonical[rank]]].emplace_back(splitmix64((kSeed << 32) + rank), canonical[rank]);
    size_t smallest = canonical.size();
    for (const auto& [c, m] : members) smallest = std::min(smallest, m.size());
    const int k = static_cast<int>(std::clamp<size_t>(smallest, 2, kMaxFolds));
    std::vector<int> fold(static_cast<size_t>(n));
    size_t position = 0;
    for (auto& [c, m] : members) {
      std::sort(m.begin(), m.end());
      for (const auto& [key, sample] : m) fold[static_cast<size_t>(sample)] = static_cast<int>(position++ % k);
    }
    return fold;
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(LinearProbe)
}  // namespace zoobench
