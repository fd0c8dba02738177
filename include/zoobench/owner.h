// Who holds an experiment's lock or a unit's claim, and whether it is gone.
// A holder is a process on a host, inside a Slurm job when there is one: on
// its own host a dead pid says it is gone; elsewhere only Slurm can say
// (a requeued job is the same job id with a higher restart count).
#pragma once
#include <sys/stat.h>

#include <filesystem>
#include <functional>
#include <map>
#include <string>

namespace zoobench::store {

std::string hostname();
// False for a pid that does not exist or is a zombie nobody reaped.
bool process_alive(long pid);
// "key=value" lines of a small text file (a lock, a claim); {} when unreadable.
std::map<std::string, std::string> read_keys(const std::filesystem::path& file);

struct Owner {
  std::string host;
  long pid = 0;
  std::string job;  // SLURM_JOB_ID (an array task has its own), "" outside Slurm
  int restart = 0;  // SLURM_RESTART_COUNT: how often the job was requeued
  std::string since;

  static Owner self();  // this process
  static Owner from_keys(const std::map<std::string, std::string>& kv);
  std::string to_text() const;  // key=value lines, the inverse of from_keys
  std::string describe() const;  // "host h, pid p, job j, since t"
};

// Whether Slurm still runs (or will rerun) a job; the default asks squeue.
using JobActive = std::function<bool(const std::string& job)>;
bool slurm_job_active(const std::string& job);

// True when `holder` can no longer finish: a dead process on this host, an
// earlier incarnation of this very job, or a job Slurm no longer knows.
// Without a job id on another host nothing can be told: false.
bool owner_gone(const Owner& holder, const Owner& me, const JobActive& active = slurm_job_active);

// Removes `file` (a lock or claim judged stale) only if it is still the file
// that was judged (`judged` is its inode, taken before reading it): another
// process may have taken it over and written a live one meanwhile. Renames
// it aside first, so two processes taking it over at once cannot both
// succeed; a live file moved by mistake is put back. True when removed.
bool remove_if_unchanged(const std::filesystem::path& file, const struct ::stat& judged);

}  // namespace zoobench::store
