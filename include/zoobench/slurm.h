// A zoobench campaign on Slurm: prepare (data, zoo, plan) -> grid (a job
// array of independent workers, or one MPI job) -> reduce, chained with
// afterok dependencies. Scripts are rendered from the templates in slurm/
// (compiled in) and submitted with `sbatch --parsable`; sbatch, squeue and
// scontrol are run with argument vectors, never through a shell.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace zoobench::slurm {

// The templates by name: prepare, grid-array, grid-mpi, reduce. `dir` (when
// not empty) holds <name>.sbatch files that replace the built-in ones.
std::string load_template(const std::string& name, const std::filesystem::path& dir = {});
// Replaces every @KEY@ of `tmpl`; an @KEY@ left over (a template with a key
// that has no value) is an Error naming it.
std::string render(const std::string& tmpl, const std::map<std::string, std::string>& values, const std::string& what);

// Validation of what reaches a script or an sbatch option; UsageError naming
// the option and the value otherwise.
void check_name(const std::string& option, const std::string& value);      // [A-Za-z0-9._-]+, as experiment, partition, account names
void check_time(const std::string& option, const std::string& value);      // Slurm's forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S
void check_env_key(const std::string& option, const std::string& key);     // [A-Za-z_][A-Za-z0-9_]*

struct Resources {
  std::string mode = "array";   // array | mpi
  std::string share = "claims"; // array: claims | static
  std::string launcher = "srun";  // mpi: srun (--mpi=pmix) | mpirun
  int shards = 0;               // array tasks (0: as `zoobench plan` suggests)
  int nodes = 1, ntasks_per_node = 1, gpus_per_node = 0, cpus_per_task = 1;
  int signal_lead = 120;         // seconds before the time limit that Slurm sends USR1 (longer than a unit)
  std::string partition, account, time;
  std::vector<std::pair<std::string, std::string>> env;  // exported in every script
};

struct Job {
  std::string name;    // prepare | grid | reduce
  std::filesystem::path script;
  std::vector<std::string> sbatch_args;  // the options that are not in the script (paths, dependency)
  std::string id;      // after submission
};

// The #SBATCH lines of one job of the campaign.
std::string sbatch_lines(const std::string& job, const std::string& exp, const Resources& r);

// `sbatch --parsable [args] script`: the job id, or Error with sbatch's own message.
std::string submit(const Job& job, const std::string& dependency);
// `sbatch --test-only`: "" when Slurm would accept the job, else its message.
std::string test_only(const Job& job);
void cancel(const std::vector<std::string>& ids);

// The state of a job, or of each task of an array ("102_3" -> FAILED), as
// scontrol reports it; {} when Slurm no longer knows the job.
struct JobState {
  std::string id, state, exit_code, reason, node;
};
std::vector<JobState> job_states(const std::string& id);

}  // namespace zoobench::slurm
