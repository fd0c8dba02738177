// The plan and the dispatch policy: units, dependencies, largest first,
// resume flags, round-robin, and the simulation's bounds.
#include <gtest/gtest.h>

#include <cmath>

#include "zoobench/error.h"
#include "zoobench/lr_grid.h"
#include "zoobench/plan.h"
#include "zoobench/scheduler.h"
#include "zoobench/selector.h"

using namespace zoobench;

namespace {
Plan small_plan(unsigned needs) {
  Config c;
  c.finetune.lrs = {0.1, 0.01};
  std::vector<PlanModel> models = {{"a", "builtin", "resnet8", 8, 1, 32, "expert"},
                                   {"big/x", "builtin", "resnet20", 16, 3, 32, "generic"}};
  std::vector<PlanTask> tasks = {{"t1", 10, 0, 80, 20, 200, 100, 10}, {"t2", 5, 1, 40, 10, 100, 50, 10}};
  return make_plan(c, models, tasks, {"lfc", "rsa"}, needs, 1);
}
}  // namespace

TEST(Plan, UnitsAndDependencies) {
  Plan p = small_plan(kNeedFeatures | kNeedProbeFeatures | kNeedSourceDomain);
  // 2 probe + 2 source + 4 score + 8 fine-tune units
  ASSERT_EQ(p.units.size(), 16u);
  EXPECT_EQ(p.units[0].id, "probe/t1");
  EXPECT_EQ(p.units[2].id, "source/a");
  int s = p.find("score/big/x/t2");
  ASSERT_GE(s, 0);
  EXPECT_EQ(p.units[static_cast<size_t>(s)].deps, (std::vector<int>{p.find("probe/t2"), p.find("source/big/x")}));
  EXPECT_GE(p.find("finetune/big/x/t1/0.01"), 0);
  // The larger network costs more for the same work.
  EXPECT_GT(p.units[static_cast<size_t>(p.find("finetune/big/x/t1/0.1"))].cost,
            p.units[static_cast<size_t>(p.find("finetune/a/t1/0.1"))].cost);
  Plan back = Plan::from_json(p.to_json(), "test");
  ASSERT_EQ(back.units.size(), p.units.size());
  EXPECT_EQ(back.units[static_cast<size_t>(s)].deps, p.units[static_cast<size_t>(s)].deps);
  EXPECT_EQ(back.models[1].kind, "generic");
  EXPECT_EQ(encode_id("big/x/t1"), "big%2Fx%2Ft1");
  // Without probe or source selectors there are no shared units.
  EXPECT_EQ(small_plan(kNeedFeatures).units.size(), 12u);
}

// finetune.extend_edges: per cell one fine-tune beyond each edge, depending on the whole task's grid.
TEST(Plan, EdgeUnitsDependOnTheirTasksWholeGrid) {
  Config c;
  c.finetune.lrs = {0.2, 0.1};
  c.finetune.extend_edges = true;
  std::vector<PlanModel> models = {{"a", "builtin", "resnet8", 8, 1, 32, "expert"},
                                   {"b", "builtin", "cnn", 8, 1, 32, "expert"}};
  std::vector<PlanTask> tasks = {{"t1", 10, 0, 80, 20, 200, 100, 10}, {"t2", 5, 1, 40, 10, 100, 50, 10, "t", 400}};
  Plan p = make_plan(c, models, tasks, {"lfc"}, kNeedFeatures, -1);
  EXPECT_EQ(p.edge_lrs, (std::vector<double>{0.4, 0.05}));
  ASSERT_EQ(p.units.size(), 4u + 8u + 8u);  // score, grid, edges
  const int up = p.find("finetune/b/t2/0.4"), down = p.find("finetune/a/t2/0.05");
  ASSERT_GE(up, 0);
  ASSERT_GE(down, 0);
  const Unit& u = p.units[static_cast<size_t>(up)];
  EXPECT_EQ(u.edge, 1);
  EXPECT_EQ(p.units[static_cast<size_t>(down)].edge, -1);
  EXPECT_DOUBLE_EQ(p.lr_of(u), 0.4);
  EXPECT_DOUBLE_EQ(p.lr_of(p.units[static_cast<size_t>(down)]), 0.05);
  std::vector<int> grid;
  for (const char* id : {"finetune/a/t2/0.2", "finetune/a/t2/0.1", "finetune/b/t2/0.2", "finetune/b/t2/0.1"})
    grid.push_back(p.find(id));
  EXPECT_EQ(u.deps, grid) << "every model's grid of the task, so every cell of a task gets the same grid";
  EXPECT_EQ(p.finetune_ids(1, 1), (std::vector<std::string>{"finetune/b/t2/0.2", "finetune/b/t2/0.1", "finetune/b/t2/0.4",
                                                            "finetune/b/t2/0.05"}));
  // t2's own step floor (400 steps of 2 batches: 200 epochs) makes its fine-tunes cost more than the epochs alone.
  Plan q = make_plan(c, models, {tasks[1]}, {"lfc"}, kNeedFeatures, -1);
  tasks[1].min_steps = -1;
  Plan r = make_plan(c, models, {tasks[1]}, {"lfc"}, kNeedFeatures, -1);
  EXPECT_GT(q.units[static_cast<size_t>(q.find("finetune/a/t2/0.2"))].cost,
            5 * r.units[static_cast<size_t>(r.find("finetune/a/t2/0.2"))].cost);
  Plan back = Plan::from_json(p.to_json(), "test");
  EXPECT_EQ(back.edge_lrs, p.edge_lrs);
  EXPECT_EQ(back.units[static_cast<size_t>(up)].edge, 1);
  EXPECT_EQ(back.tasks[1].min_steps, 400);
  // One lr is no grid to widen.
  c.finetune.lrs = {0.1};
  EXPECT_TRUE(make_plan(c, models, tasks, {"lfc"}, kNeedFeatures, -1).edge_lrs.empty());
}

// The rule `reduce` warns by and extend_edges widens by (ties in validation accuracy go to the first lr).
TEST(LrGrid, EdgesBindWhereManyCellsChooseThemAndTheAccuracyStillRises) {
  // Four cells on the grid {0.1, 0.2}: three choose 0.2, whose mean validation accuracy is 2.5 points higher.
  std::vector<GridRun> runs = {{"a", 0.2, 0.80, true},  {"a", 0.1, 0.70, false}, {"b", 0.2, 0.60, true},
                               {"b", 0.1, 0.55, false}, {"c", 0.2, 0.50, true},  {"c", 0.1, 0.50, false},
                               {"d", 0.2, 0.40, false}, {"d", 0.1, 0.45, true}};
  EdgeCheck e = check_edges(runs);
  EXPECT_EQ(e.cells, 4u);
  EXPECT_DOUBLE_EQ(e.hi, 0.2);
  EXPECT_DOUBLE_EQ(e.lo, 0.1);
  EXPECT_DOUBLE_EQ(e.share_top, 0.75);
  EXPECT_DOUBLE_EQ(e.share_bottom, 0.25);
  EXPECT_NEAR(e.rise_top, 0.025, 1e-12);
  EXPECT_NEAR(e.rise_bottom, -0.025, 1e-12);
  EXPECT_TRUE(edge_binds(e.share_top, e.rise_top));
  EXPECT_FALSE(edge_binds(e.share_bottom, e.rise_bottom)) << "chosen often enough, but the accuracy falls there";
  EXPECT_FALSE(edge_binds(0.2, 0.05)) << "20 % is not more than 20 %";
  EXPECT_FALSE(edge_binds(0.9, 0.01)) << "one point is not more than a point";
  // ...also when the point comes out of rounded means: 0.56 - 0.55 is 0.0100000000000000089 in doubles.
  e = check_edges({{"a", 0.2, 0.56, true}, {"a", 0.1, 0.55, false}});
  EXPECT_GT(e.rise_top, 0.01);
  EXPECT_FALSE(edge_binds(e.share_top, e.rise_top));
  // A three-lr grid: the middle lr is no edge; the rise compares each edge with its neighbour.
  runs = {{"a", 0.4, 0.6, false}, {"a", 0.2, 0.9, true}, {"a", 0.1, 0.7, false}};
  e = check_edges(runs);
  EXPECT_DOUBLE_EQ(e.share_top + e.share_bottom, 0.0);
  EXPECT_NEAR(e.rise_top, -0.3, 1e-12);
  EXPECT_NEAR(e.rise_bottom, -0.2, 1e-12);
  // One lr: no edge to speak of.
  e = check_edges({{"a", 0.1, 0.5, true}});
  EXPECT_TRUE(std::isnan(e.rise_top));
  EXPECT_FALSE(edge_binds(e.share_top, e.rise_top));
}

TEST(Dispatcher, LargestReadyFirstAndDependenciesRespected) {
  Plan p = small_plan(kNeedFeatures | kNeedProbeFeatures | kNeedSourceDomain);
  Dispatcher d(p, std::vector<char>(p.units.size(), 0), 2, Policy::Dynamic);
  std::vector<char> done(p.units.size(), 0);
  double last_cost = 1e300;
  size_t handed = 0;
  while (!d.all_done()) {
    int64_t u = d.next(0);
    if (u == Dispatcher::kWait) {  // only while dependencies are in flight: none are here
      FAIL() << "wait with nothing in flight";
    }
    ASSERT_GE(u, 0);
    for (int dep : p.units[static_cast<size_t>(u)].deps) EXPECT_TRUE(done[static_cast<size_t>(dep)]) << p.units[u].id;
    if (p.units[static_cast<size_t>(u)].deps.empty()) {
      EXPECT_LE(p.units[static_cast<size_t>(u)].cost, last_cost + 1e-12);  // ready-at-start units: largest first
      last_cost = p.units[static_cast<size_t>(u)].cost;
    }
    d.complete(u);
    done[static_cast<size_t>(u)] = 1;
    ++handed;
  }
  EXPECT_EQ(handed, p.units.size());
  EXPECT_EQ(d.next(1), Dispatcher::kFinished);
}

TEST(Dispatcher, WaitsForDependenciesInFlightAndSkipsDoneUnits) {
  Plan p = small_plan(kNeedFeatures | kNeedProbeFeatures);
  std::vector<char> done(p.units.size(), 0);
  for (size_t u = 0; u < p.units.size(); ++u)
    if (p.units[u].kind == UnitKind::Finetune) done[u] = 1;  // a resumed run
  Dispatcher d(p, done, 3, Policy::Dynamic);
  EXPECT_EQ(d.todo_at_start(), 2u + 4u);
  int64_t a = d.next(0), b = d.next(1);  // the two probes
  EXPECT_EQ(p.units[static_cast<size_t>(a)].kind, UnitKind::Probe);
  EXPECT_EQ(p.units[static_cast<size_t>(b)].kind, UnitKind::Probe);
  EXPECT_EQ(d.next(2), Dispatcher::kWait);
  d.complete(a);
  int64_t c = d.next(2);
  ASSERT_GE(c, 0);
  EXPECT_EQ(p.units[static_cast<size_t>(c)].deps.at(0), a);
}

TEST(Dispatcher, RoundRobinGivesEachWorkerItsOwnUnitsInOrder) {
  Plan p = small_plan(kNeedFeatures);
  Dispatcher d(p, std::vector<char>(p.units.size(), 0), 3, Policy::RoundRobin);
  EXPECT_EQ(d.next(0), 0);
  EXPECT_EQ(d.next(1), 1);
  EXPECT_EQ(d.next(2), 2);
  EXPECT_EQ(d.next(0), 3);
  EXPECT_THROW(policy_from("fifo"), Error);
}

TEST(Simulate, DynamicBeatsRoundRobinAndRespectsTheBounds) {
  Plan p = small_plan(kNeedFeatures | kNeedProbeFeatures | kNeedSourceDomain);
  std::vector<double> sec;
  for (size_t u = 0; u < p.units.size(); ++u) sec.push_back(u % 5 == 0 ? 10.0 : 1.0);  // heterogeneous
  for (int w : {1, 2, 3, 8}) {
    Simulation dyn = simulate(p, sec, w, Policy::Dynamic), rr = simulate(p, sec, w, Policy::RoundRobin);
    EXPECT_GE(dyn.makespan, dyn.lower_bound - 1e-9);
    EXPECT_LE(dyn.makespan, rr.makespan + 1e-9) << w << " workers";
    EXPECT_NEAR(dyn.utilisation * w * dyn.makespan, 4 * 10.0 + 12 * 1.0, 1e-9);
  }
  EXPECT_NEAR(simulate(p, sec, 1, Policy::Dynamic).utilisation, 1.0, 1e-12);
}
