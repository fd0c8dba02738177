#include "zoobench/owner.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>

#include "zoobench/io.h"
#include "zoobench/subprocess.h"

namespace zoobench::store {

std::string hostname() {
  char buf[256] = {0};
  return gethostname(buf, sizeof buf - 1) == 0 ? buf : "unknown";
}

// A killed process stays a zombie until its parent reaps it, and inside a
// container nobody may: kill(pid, 0) still succeeds then. Its /proc state says.
bool process_alive(long pid) {
  if (pid <= 0 || (::kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM)) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  auto paren = text.rfind(')');
  if (paren == std::string::npos || paren + 2 >= text.size()) return true;
  const char state = text[paren + 2];
  return state != 'Z' && state != 'X';
}

std::map<std::string, std::string> read_keys(const std::filesystem::path& file) {
  std::map<std::string, std::string> kv;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    auto eq = line.find('=');
    if (eq != std::string::npos) kv[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return kv;
}

Owner Owner::self() {
  Owner o;
  o.host = hostname();
  o.pid = static_cast<long>(::getpid());
  if (const char* j = std::getenv("SLURM_JOB_ID")) o.job = j;
  if (const char* r = std::getenv("SLURM_RESTART_COUNT")) o.restart = std::atoi(r);
  o.since = utc_now();
  return o;
}

Owner Owner::from_keys(const std::map<std::string, std::string>& kv) {
  auto get = [&](const char* k) {
    auto it = kv.find(k);
    return it == kv.end() ? std::string() : it->second;
  };
  Owner o;
  o.host = get("host");
  o.pid = std::atol(get("pid").c_str());
  o.job = get("job");
  o.restart = std::atoi(get("restart").c_str());
  o.since = get("since");
  return o;
}

std::string Owner::to_text() const {
  return "host=" + host + "\npid=" + std::to_string(pid) + "\njob=" + job + "\nrestart=" + std::to_string(restart) +
         "\nsince=" + since + "\n";
}

std::string Owner::describe() const {
  std::string s = "host " + host + ", pid " + std::to_string(pid);
  if (!job.empty()) s += ", Slurm job " + job + (restart ? " (restart " + std::to_string(restart) + ")" : "");
  return s + ", since " + since;
}

bool slurm_job_active(const std::string& job) {
  // One squeue call per job and half-minute: a worker polls claims in a loop.
  static std::mutex mu;
  static std::map<std::string, std::pair<std::chrono::steady_clock::time_point, bool>> cache;
  std::lock_guard<std::mutex> g(mu);
  const auto now = std::chrono::steady_clock::now();
  auto it = cache.find(job);
  if (it != cache.end() && now - it->second.first < std::chrono::seconds(30)) return it->second.second;
  // --jobs=<id> of an array's first task lists the whole array: match the
  // task's own id (%A) exactly.
  ProcessResult r = run_process({"squeue", "--noheader", "--jobs=" + job, "--format=%A %T"}, 20.0);
  bool active = true;  // cannot tell (no squeue, controller down): assume it runs
  if (r.started && !r.timed_out) {
    if (r.code == 0) {
      active = false;  // listed (pending, running, requeued, ...) or gone
      std::istringstream lines(r.out);
      for (std::string id, state; lines >> id >> state;) active = active || id == job;
    } else if (r.err.find("Invalid job id") != std::string::npos) {
      active = false;
    }
  }
  cache[job] = {now, active};
  return active;
}

bool owner_gone(const Owner& holder, const Owner& me, const JobActive& active) {
  // An earlier run of this very job (requeued): gone, whatever pid it had.
  if (!holder.job.empty() && holder.job == me.job && holder.restart < me.restart) return true;
  if (holder.host == me.host) return !process_alive(holder.pid);
  if (holder.job.empty() || holder.job == me.job) return false;
  return !active(holder.job);
}

bool remove_if_unchanged(const std::filesystem::path& file, const struct ::stat& judged) {
  std::filesystem::path aside = file;
  aside += ".stale." + hostname() + "." + std::to_string(::getpid());
  if (::rename(file.c_str(), aside.c_str()) != 0) return false;  // someone else took it over first
  struct ::stat moved {};
  if (::stat(aside.c_str(), &moved) == 0 && (moved.st_ino != judged.st_ino || moved.st_dev != judged.st_dev)) {
    // A live one written after the judgement: put it back, unless a third
    // process has written yet another meanwhile.
    if (::renameat2(AT_FDCWD, aside.c_str(), AT_FDCWD, file.c_str(), RENAME_NOREPLACE) != 0) ::unlink(aside.c_str());
    return false;
  }
  ::unlink(aside.c_str());
  return true;
}

}  // namespace zoobench::store
