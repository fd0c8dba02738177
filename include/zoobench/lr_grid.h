// Where a learning-rate grid's edges still bind on one task. A grid whose
// best lr sits at its edge on many cells, while the mean validation accuracy
// is still rising there, cut the search short: the ground truth of those
// cells is not what fine-tuning reaches. `reduce` warns by this rule, and
// finetune.extend_edges widens the grid of a task by it during the run.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace zoobench {

// One fine-tune of the grid: which cell (model) it belongs to, its lr, its
// validation accuracy and whether it is the cell's chosen run.
struct GridRun {
  std::string cell;
  double lr = 0, val_acc = 0;
  bool chosen = false;
};

struct EdgeCheck {
  size_t cells = 0;                  // cells with a chosen run
  double lo = 0, hi = 0;             // the grid's edges (equal for a one-lr grid)
  double share_top = 0, share_bottom = 0;  // of the cells, those whose chosen lr is the edge
  // Mean validation accuracy over the cells at the edge lr minus at its
  // neighbour's (NaN for a one-lr grid): > 0 = still rising at the edge.
  double rise_top = 0, rise_bottom = 0;
};

// Every run of one task (all cells, every lr of the grid).
EdgeCheck check_edges(const std::vector<GridRun>& runs);

// The rule: more than 20 % of the cells choose the edge while the mean
// validation accuracy there is more than a point above its neighbour's.
constexpr double kEdgeShare = 0.2, kEdgeRise = 0.01;
bool edge_binds(double share, double rise);

// The lr one step beyond an edge: twice the top, half the bottom.
constexpr double kEdgeFactor = 2.0;

}  // namespace zoobench
