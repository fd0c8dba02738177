// `zoobench run`: the whole pipeline of one experiment config, spread over
// the MPI ranks that started it, resumable after any kill.
#pragma once
#include <filesystem>
#include <functional>
#include <string>

#include "zoobench/config.h"
#include "zoobench/error.h"

namespace zoobench {

struct RunOptions {
  std::filesystem::path data_dir;
  bool quiet = false;
  int threads = 1;
  bool fresh = false;            // move an existing experiment aside and start over
  std::string device;            // overrides execution.device when set
  std::string schedule = "dynamic";  // dynamic | static (round-robin: the baseline of the benchmarks)
  std::string context_versions;  // "libtorch=..;mpi=..;nccl=..", stored as root attributes
  bool prepare = false;          // stop after data, zoo, plan and the experiment folder (a Slurm campaign's first job)
  std::string share;             // "": MPI ranks share a work queue; "claims" | "static": independent processes (claims.h)
  int worker = 0, workers = 1;   // --share static: this worker's index and their count
  bool allow_outside_zoo = false;  // load zoo files outside the manifest's folder (LoadRules)
};

// The exit status of a run that stopped early on request (SIGUSR1): every unit
// it finished is on disk, and rerunning (or requeueing) resumes.
constexpr int kExitInterrupted = 75;  // EX_TEMPFAIL
class Interrupted : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return kExitInterrupted; }
};

// SIGUSR1 asks a run to stop taking units: the units in flight finish and are
// stored, then it exits with kExitInterrupted. Slurm sends it ahead of a time
// limit or preemption (--signal=B:USR1@120, forwarded by the job script).
void install_stop_handler();
bool stop_requested();

// pack missing data -> train missing zoo entries -> sample tasks -> plan the
// units -> every rank takes units from the queue (probe, source, score,
// fine-tune), each written as a shard -> rank 0 merges the shards into
// results/<name>/results.h5 -> summary on stdout. Returns the results path
// (on every rank).
std::filesystem::path run_experiment(const Config& c, const RunOptions& opt);

// Runs f on every MPI rank; if it fails on any, every rank throws the same
// AgreedError (the message of the lowest failing rank), so no rank is left
// waiting in a collective and the error is printed once.
void agreed(const std::function<void()>& f);

// Prints the Spearman table and the zoo's gain from a merged results.h5.
void print_summary(const std::filesystem::path& results_h5);

}  // namespace zoobench
