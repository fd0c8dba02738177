// The experiment's durable state under results/<exp>/: the lock, the
// experiment's identity (resolved config + zoo weights), the plan, one shard
// file per finished unit, and the merge into results.h5.
//
//   results/<exp>/experiment.yaml      resolved config + the zoo's weights checksums
//   results/<exp>/plan.json            the units (ids, dependencies, estimated costs)
//   results/<exp>/lock                 host, pid, run id of the run that owns it
//   results/<exp>/shards/<kind>/<id>.h5   one per finished unit (written aside, fsynced, renamed)
//   results/<exp>/results.h5           merged when every unit is done
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "zoobench/h5.h"
#include "zoobench/plan.h"

namespace zoobench::store {
namespace fs = std::filesystem;

// Who computed a unit: stored on every shard and every merged row.
struct Provenance {
  std::string run_id;       // "<host>:<pid>:<started_utc>" of the run's rank 0, or the job's id
  std::string started_utc;  // when the run that computed the unit started
  std::string host;
  int rank = 0;   // world rank of the group's first rank
  int ranks = 1;  // ranks that computed it together
};

// A run owns an experiment through results/<exp>/lock, created exclusively.
// A lock whose owner is a dead process on this host is stale and taken over;
// a lock with the same run id is shared (cooperating writers of one job).
class Lock {
 public:
  Lock(fs::path file, std::string run_id);  // Error naming host, pid and since when otherwise
  ~Lock();
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

 private:
  fs::path file_;
  bool owner_ = false;
};

// Moves results/<exp> aside to results/<exp>.old-<utc>; returns the new path.
fs::path move_aside(const fs::path& exp_dir);

// Stores `identity` (YAML) on the first run; later runs must match it, or
// ConfigError listing the keys that differ (keys under execution and threads
// never count).
void check_identity(const fs::path& exp_dir, const std::string& identity_yaml);

fs::path shard_path(const fs::path& exp_dir, const Unit& u);
// done[i] = the shard of unit i is on disk.
std::vector<char> done_units(const fs::path& exp_dir, const Plan& plan);
// Claims (claims.h) whose holder can still finish: units in flight in independent workers.
size_t live_claims(const fs::path& exp_dir);
// Removes shard files left half-written by dead processes of this host.
size_t remove_stale_temporaries(const fs::path& exp_dir);
// Opens every shard that done marks: one that HDF5 cannot read, that was
// never committed (no 'seconds') or that holds another unit is moved to
// <exp>/broken-shards/ and unmarked, so its unit runs again. Returns one
// line per shard moved: which, why and where to.
std::vector<std::string> set_aside_broken_shards(const fs::path& exp_dir, const Plan& plan, std::vector<char>& done);

// The layout of a shard file; merge refuses shards of another.
inline constexpr int64_t kShardSchemaVersion = 1;

// One unit's shard: written under a temporary name beside its final one;
// commit() closes, fsyncs, renames and fsyncs the folder, so the shard is
// either complete on disk or absent. Dropping it uncommitted removes it.
class ShardWriter {
 public:
  ShardWriter(const fs::path& exp_dir, const Unit& u, const Provenance& who, double start_epoch_s);
  ~ShardWriter();
  h5::File& file() { return *file_; }
  void commit(double seconds);

 private:
  fs::path final_, tmp_;
  std::unique_ptr<h5::File> file_;
  bool committed_ = false;
};

// Root attributes that describe the run's software, copied into results.h5.
struct RunContext {
  std::string versions;  // "libtorch=..;mpi=..;nccl=.."
  std::string manifest;
  int threads = 0;
  std::string config_source;
};
void write_context(h5::File& f, const RunContext& ctx);

// A digest of the experiment's identity (its experiment.yaml: config and zoo
// weights), stored on every shard so that the merge refuses a shard written
// for another experiment; "" when the folder has no identity yet.
std::string identity_digest(const fs::path& exp_dir);

// Merges every shard of a complete experiment into results/<exp>/results.h5
// (atomic; running it twice gives the same tables). Error naming the first
// missing unit when the experiment is incomplete, unless `partial`: then the
// cells that are done are merged (a cell needs its score unit and every lr
// of its fine-tune; NCTI's min-max spans the task's merged models only) and
// /tasks counts each task's missing cells.
fs::path merge(const fs::path& exp_dir, bool partial = false);

}  // namespace zoobench::store
