// How well one selector's scores rank one zoo on one (task, shot, seed):
// the rank correlations as scipy.stats computes them, and the selection
// measures, where ties in the scores are broken uniformly at random and the
// expectation is reported (a tie is not a choice the selector made).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "zoobench/random.h"
#include "zoobench/reduce.h"

namespace zoobench {
namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

int sign(double v) { return (v > 0) - (v < 0); }

// scipy's _weightedrankedtau with additive hyperbolic weights 1/(r + 1): the
// rank r of an element is its position in decreasing lexicographic (x, y)
// order (exact ties: the later index first, as a reversed stable sort has it).
double weighted_tau_ranked(const std::vector<double>& x, const std::vector<double>& y) {
  const size_t n = x.size();
  std::vector<size_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](size_t a, size_t b) { return x[a] != x[b] ? x[a] < x[b] : y[a] < y[b]; });
  std::vector<double> w(n);
  for (size_t pos = 0; pos < n; ++pos) w[perm[n - 1 - pos]] = 1.0 / (1.0 + static_cast<double>(pos));
  double tot = 0, tied_x = 0, tied_y = 0, tied_both = 0, discordant = 0;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i + 1; j < n; ++j) {
      const double wij = w[i] + w[j];
      tot += wij;
      const bool tx = x[i] == x[j], ty = y[i] == y[j];
      tied_x += tx ? wij : 0;
      tied_y += ty ? wij : 0;
      tied_both += tx && ty ? wij : 0;
      if (!tx && !ty && sign(x[i] - x[j]) != sign(y[i] - y[j])) discordant += wij;
    }
  if (tot - tied_x <= 0 || tot - tied_y <= 0) return kNaN;  // a constant side
  const double tau = (tot - (tied_y + tied_x - tied_both) - 2 * discordant) / std::sqrt(tot - tied_x) / std::sqrt(tot - tied_y);
  return std::clamp(tau, -1.0, 1.0);
}

// E[max(floor, the largest of r values drawn without replacement from pool)].
double expected_max(double floor, std::vector<double> pool, size_t r) {
  if (r == 0 || pool.empty()) return floor;
  std::sort(pool.begin(), pool.end());
  const size_t g = pool.size();
  // P(the maximum is the i-th smallest, 1-based) = C(i - 1, r - 1) / C(g, r), by log-gamma.
  auto log_choose = [](double a, double b) { return std::lgamma(a + 1) - std::lgamma(b + 1) - std::lgamma(a - b + 1); };
  double e = 0;
  for (size_t i = r; i <= g; ++i)
    e += std::exp(log_choose(double(i - 1), double(r - 1)) - log_choose(double(g), double(r))) * std::max(floor, pool[i - 1]);
  return e;
}
}  // namespace

double kendall_tau_b(const std::vector<double>& x, const std::vector<double>& y) {
  const size_t n = x.size();
  if (n < 2 || y.size() != n) return kNaN;
  double concordant = 0, discordant = 0, tx = 0, ty = 0, pairs = 0;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i + 1; j < n; ++j) {
      ++pairs;
      const int s = sign(x[i] - x[j]) * sign(y[i] - y[j]);
      concordant += s > 0, discordant += s < 0;
      tx += x[i] == x[j], ty += y[i] == y[j];
    }
  const double denom = std::sqrt((pairs - tx) * (pairs - ty));
  return denom > 0 ? (concordant - discordant) / denom : kNaN;
}

double weighted_tau(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() < 2 || y.size() != x.size()) return kNaN;
  return (weighted_tau_ranked(x, y) + weighted_tau_ranked(y, x)) / 2;  // scipy's rank=True
}

Selection selection(const std::vector<double>& scores, const std::vector<double>& acc, double generic_acc) {
  Selection s;
  const size_t n = scores.size();
  if (n == 0 || acc.size() != n) return s;
  const double best = *std::max_element(acc.begin(), acc.end());
  // Expected best accuracy among the top k, ties in the score at the boundary drawn at random.
  auto top = [&](size_t k) {
    k = std::min(k, n);
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
    const double cut = scores[order[k - 1]];
    double sure = -std::numeric_limits<double>::infinity();
    size_t taken = 0;
    std::vector<double> tied;
    for (size_t i : order)
      if (scores[i] > cut) sure = std::max(sure, acc[i]), ++taken;
      else if (scores[i] == cut) tied.push_back(acc[i]);
    return expected_max(sure, tied, k - taken);
  };
  s.top1_acc = top(1);
  s.top3_acc = top(3);
  s.top1_gain = s.top1_acc - generic_acc;
  s.top3_gain = s.top3_acc - generic_acc;
  s.best_gain = best - generic_acc;
  s.worst_gain = *std::min_element(acc.begin(), acc.end()) - generic_acc;
  s.regret_at_1 = best > 0 ? (best - s.top1_acc) / best : kNaN;
  s.regret_at_3 = best > 0 ? (best - s.top3_acc) / best : kNaN;
  s.relative_top1 = best > 0 ? s.top1_acc / best : kNaN;
  // Selections to best: models tried in score order until a best-accuracy one;
  // among the g models tied at the best one's score, j of them best, the
  // first best comes after (g - j) / (j + 1) others on average.
  double top_score = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < n; ++i)
    if (acc[i] == best) top_score = std::max(top_score, scores[i]);
  double ahead = 0, g = 0, j = 0;
  for (size_t i = 0; i < n; ++i) {
    ahead += scores[i] > top_score;
    if (scores[i] == top_score) ++g, j += acc[i] == best;
  }
  s.selections_to_best = 1 + ahead + (g - j) / (j + 1);
  return s;
}

Interval bootstrap_mean(const std::vector<std::vector<double>>& groups, int resamples, uint64_t seed) {
  Interval out;
  std::vector<double> all;
  for (const auto& g : groups)
    for (double v : g)
      if (std::isfinite(v)) all.push_back(v);
  if (all.empty()) return out;
  out.mean = std::accumulate(all.begin(), all.end(), 0.0) / static_cast<double>(all.size());
  if (groups.size() < 2 && all.size() < 2) return out;
  Rng rng(seed);
  std::vector<double> means;
  for (int r = 0; r < resamples; ++r) {
    double sum = 0, count = 0;
    for (size_t t = 0; t < groups.size(); ++t) {  // tasks with replacement, then seeds within each
      const auto& g = groups[rng.below(groups.size())];
      for (size_t k = 0; k < g.size(); ++k) {
        const double v = g[rng.below(g.size())];
        if (std::isfinite(v)) sum += v, ++count;
      }
    }
    if (count > 0) means.push_back(sum / count);
  }
  if (means.empty()) return out;
  std::sort(means.begin(), means.end());
  auto quantile = [&](double q) {  // linear interpolation, numpy's default
    const double pos = q * static_cast<double>(means.size() - 1);
    const size_t lo = static_cast<size_t>(pos);
    const size_t hi = std::min(lo + 1, means.size() - 1);
    return means[lo] + (pos - static_cast<double>(lo)) * (means[hi] - means[lo]);
  };
  out.lo = quantile(0.025);
  out.hi = quantile(0.975);
  return out;
}

}  // namespace zoobench
