#include "zoobench/lr_grid.h"

#include <cmath>
#include <iterator>
#include <limits>
#include <map>
#include <set>

namespace zoobench {

EdgeCheck check_edges(const std::vector<GridRun>& runs) {
  EdgeCheck e;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::map<double, std::pair<double, double>> val;  // lr -> (sum, count)
  std::set<double> lrs;
  double top = 0, bottom = 0;
  for (const auto& r : runs) {
    lrs.insert(r.lr);
    val[r.lr].first += r.val_acc;
    val[r.lr].second += 1;
  }
  if (lrs.empty()) {
    e.share_top = e.share_bottom = e.rise_top = e.rise_bottom = nan;
    return e;
  }
  e.lo = *lrs.begin();
  e.hi = *lrs.rbegin();
  for (const auto& r : runs) {
    if (!r.chosen) continue;
    ++e.cells;
    top += lrs.size() > 1 && r.lr == e.hi;
    bottom += lrs.size() > 1 && r.lr == e.lo;
  }
  e.share_top = e.cells ? top / static_cast<double>(e.cells) : nan;
  e.share_bottom = e.cells ? bottom / static_cast<double>(e.cells) : nan;
  auto mean = [&](double lr) { return val[lr].first / val[lr].second; };
  e.rise_top = lrs.size() > 1 ? mean(e.hi) - mean(*std::next(lrs.rbegin())) : nan;
  e.rise_bottom = lrs.size() > 1 ? mean(e.lo) - mean(*std::next(lrs.begin())) : nan;
  return e;
}

bool edge_binds(double share, double rise) {
  // Accuracies are counts over a fixed set: a rise of exactly one point (0.56 - 0.55) must not
  // count as more than a point through rounding. Shares are exact ratios of small counts.
  return !std::isnan(share) && !std::isnan(rise) && share > kEdgeShare + 1e-9 && rise > kEdgeRise + 1e-9;
}

}  // namespace zoobench
