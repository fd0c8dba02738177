// Who runs which unit: the dispatch policy (pure, so the same code serves the
// live run, its tests and the at-scale simulation) and the simulation itself.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "zoobench/plan.h"

namespace zoobench {

enum class Policy {
  Dynamic,     // any worker takes the costliest unit whose dependencies are done
  RoundRobin,  // unit i (in plan order) belongs to worker i mod W, run in order (the static baseline)
};
Policy policy_from(const std::string& name);  // "dynamic" | "static"

class Dispatcher {
 public:
  static constexpr int64_t kFinished = -1;  // nothing left for this worker
  static constexpr int64_t kWait = -2;      // units remain, none ready: ask again soon
  // done[i]: unit i is already done (resume) and is never handed out.
  Dispatcher(const Plan& plan, std::vector<char> done, int workers, Policy policy);
  int64_t next(int worker);  // the unit for this worker, now marked as in flight
  void complete(int64_t unit);
  size_t total() const { return done_.size(); }
  size_t done() const { return done_count_; }
  size_t todo_at_start() const { return todo_at_start_; }
  bool all_done() const { return done_count_ == done_.size(); }

 private:
  bool ready(size_t u) const;
  const Plan& plan_;
  Policy policy_;
  std::vector<char> done_, taken_;
  std::vector<size_t> order_;                    // Dynamic: by cost, largest first
  std::vector<std::vector<size_t>> lists_;       // RoundRobin: each worker's units in plan order
  std::vector<size_t> cursor_;                   // RoundRobin: next position in each list
  size_t done_count_ = 0, todo_at_start_ = 0;
};

// The longest chain of dependent units, in seconds (indexed like plan.units).
double longest_chain(const Plan& plan, const std::vector<double>& seconds);

struct Simulation {
  double makespan = 0;       // seconds until the last unit ends
  double utilisation = 0;    // busy seconds / (workers x makespan)
  double lower_bound = 0;    // max(total work / workers, longest unit, longest dependency chain)
  std::vector<double> busy;  // per worker
};
// Replays unit costs (seconds, indexed like plan.units) through the policy
// with W workers; dispatch itself is free. A worker told to wait idles until
// the next unit ends.
Simulation simulate(const Plan& plan, const std::vector<double>& seconds, int workers, Policy policy);

}  // namespace zoobench
