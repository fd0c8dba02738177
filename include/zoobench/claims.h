// The grid's units shared by independent processes (a Slurm job array, or
// several `zoobench run --share` started by hand) through the experiment
// folder alone, with no MPI between them:
//
//   results/<exp>/claims/<unit>      who computes the unit now (created with O_EXCL)
//   results/<exp>/failed/<unit>.txt  the last error of a unit, until it is done
//
// A unit is done when its shard exists (store.h). A claim whose holder is gone
// (owner.h: dead pid, requeued job, job Slurm no longer knows) is taken over.
#pragma once
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "zoobench/owner.h"
#include "zoobench/plan.h"

namespace zoobench {

enum class Share {
  Claims,  // any worker takes the costliest ready unit nobody holds: balances itself
  Static,  // worker i of N takes units i, i+N, ... in plan order (SLURM_ARRAY_TASK_ID of COUNT), then the undone units they depend on
};
Share share_from(const std::string& name);  // "claims" | "static"

class ClaimQueue {
 public:
  static constexpr int64_t kFinished = -1;  // nothing this worker can still take
  static constexpr int64_t kWait = -2;      // a unit it may take waits for units in flight elsewhere

  ClaimQueue(const Plan& plan, std::filesystem::path exp_dir, store::Owner me, Share share, int worker = 0,
             int workers = 1, store::JobActive job_active = store::slurm_job_active);
  ~ClaimQueue();  // releases the claims still held (abandoned units)
  ClaimQueue(const ClaimQueue&) = delete;
  ClaimQueue& operator=(const ClaimQueue&) = delete;

  // A unit now claimed by this worker, or kWait (what is left is held by
  // other workers or waits for units they hold) or kFinished (every unit is
  // done, or failed this round, or depends on one that did).
  int64_t next();
  void complete(int64_t unit);       // its shard is on disk: drop the claim and any failure note
  // Writes failed/<unit>.txt and drops the claim; no worker of this round
  // (the same Slurm grid job, requeues included; outside Slurm: this
  // process) retries the unit nor those that depend on it; the next does.
  void fail(int64_t unit, const std::string& error);
  void release(int64_t unit);        // give it back undone (interrupted)

  size_t total() const { return plan_.units.size(); }
  size_t done() const;               // as of the last next()
  size_t held_elsewhere() const { return held_elsewhere_; }  // live claims of others, as of the last next()
  const std::string& round() const { return round_; }
  // "unit (holder)" of each stale claim taken over since the last call.
  std::vector<std::string> drain_taken_over() { return std::exchange(taken_over_, {}); }

  std::filesystem::path claim_path(size_t unit) const;
  std::filesystem::path failed_path(size_t unit) const;

 private:
  bool is_done(size_t u);
  void read_failures();  // failed/ once per next(): failures are few, units many
  bool failed_this_round(size_t u) const { return failed_[u] != 0; }
  bool try_claim(size_t u, bool& held);
  const Plan& plan_;
  std::filesystem::path exp_;
  store::Owner me_;
  store::JobActive active_;
  std::vector<size_t> order_;  // the units this worker may take, in the order it tries them
  std::vector<char> done_, failed_;  // failed_: failed in this round
  std::set<size_t> mine_;  // units this queue holds
  std::string round_;      // SLURM_ARRAY_JOB_ID or SLURM_JOB_ID of the grid; outside Slurm, host:pid
  size_t held_elsewhere_ = 0;
  std::vector<std::string> taken_over_;
};

}  // namespace zoobench
