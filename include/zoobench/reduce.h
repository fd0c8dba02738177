// Judging selectors against the ground truth.
#pragma once
#include <vector>

namespace zoobench {

// Ranks from 1, ties get their average rank.
std::vector<double> average_ranks(const std::vector<double>& v);
// Spearman's rho (Pearson on average ranks); NaN when either side is constant or n < 2.
double spearman(const std::vector<double>& a, const std::vector<double>& b);
double pearson(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace zoobench
