// Judging selectors against the ground truth.
#pragma once
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

namespace zoobench {

// A score row whose note explains a value other than -inf: the selector sits
// at a limit it reaches by construction (a finite value, docs/selectors.md) or
// could not score the model (NaN: no source data for Domain Similarity), so on
// that task it ranks nothing. A note on -inf is a degenerate model, ranked last.
inline bool ranked_last(double value) { return std::isinf(value) && value < 0; }
inline bool cannot_rank(const std::string& note, double value) { return !note.empty() && !ranked_last(value); }

// Ranks from 1, ties get their average rank.
std::vector<double> average_ranks(const std::vector<double>& v);
// Spearman's rho (Pearson on average ranks); NaN when either side is constant or n < 2.
double spearman(const std::vector<double>& a, const std::vector<double>& b);
double pearson(const std::vector<double>& a, const std::vector<double>& b);
// Kendall's tau-b, scipy.stats.kendalltau's default (NaN when a side is constant).
double kendall_tau_b(const std::vector<double>& x, const std::vector<double>& y);
// scipy.stats.weightedtau(x, y) with its defaults: hyperbolic additive weights,
// the average of the two lexicographic rankings.
double weighted_tau(const std::vector<double>& x, const std::vector<double>& y);

// What choosing by a selector's scores gains, on one zoo. Ties in the scores
// are broken uniformly at random and the expected value is reported.
struct Selection {
  static constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  double top1_acc = kNaN, top3_acc = kNaN;      // best test accuracy among the k highest-scored models
  double top1_gain = kNaN, top3_gain = kNaN;    // minus the generic model's accuracy
  double best_gain = kNaN, worst_gain = kNaN;   // best / worst model of the zoo minus the generic model's
  double regret_at_1 = kNaN, regret_at_3 = kNaN;  // (best - top-k) / best
  double relative_top1 = kNaN;                  // top-1 / best
  double selections_to_best = kNaN;             // models tried in score order until a best one (1 = first)
};
Selection selection(const std::vector<double>& scores, const std::vector<double>& acc, double generic_acc);

// Mean with a 95 % percentile bootstrap interval, resampling groups (tasks)
// with replacement and, within each drawn group, its values (seeds). NaNs are skipped.
struct Interval {
  double mean = std::numeric_limits<double>::quiet_NaN(), lo = mean, hi = mean;
};
Interval bootstrap_mean(const std::vector<std::vector<double>>& groups, int resamples, uint64_t seed);

struct ReduceOptions {
  int resamples = 2000;  // bootstrap resamples
  uint64_t seed = 0;
  bool print = false;    // the main table on stdout
  bool require_complete = false;  // an unfinished experiment is an error naming its first missing unit, not a partial merge
};
// Reads results.h5 (merging the experiment's shards first when given an
// experiment folder), writes /tables/* into it and CSV + Markdown copies under
// <dir>/tables/. Returns the warnings it printed (ground truth not converged, ...).
std::vector<std::string> reduce(const std::filesystem::path& target, const ReduceOptions& options);

}  // namespace zoobench
