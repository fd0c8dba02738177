#include "zoobench/slurm.h"

#include <algorithm>
#include <fstream>
#include <regex>
#include <sstream>

#include "zoobench/error.h"
#include "zoobench/subprocess.h"

namespace zoobench::slurm {
namespace fs = std::filesystem;

const std::map<std::string, std::string>& builtin_templates();  // generated from slurm/*.sbatch by CMake

std::string load_template(const std::string& name, const fs::path& dir) {
  if (!dir.empty()) {
    const fs::path file = dir / (name + ".sbatch");
    std::ifstream in(file);
    if (!in) throw IoError("cannot read the job template '" + file.string() + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  auto it = builtin_templates().find(name);
  if (it == builtin_templates().end()) throw Error("no job template '" + name + "'");
  return it->second;
}

std::string render(const std::string& tmpl, const std::map<std::string, std::string>& values, const std::string& what) {
  std::string out;
  for (size_t i = 0; i < tmpl.size();) {
    const size_t at = tmpl.find('@', i);
    if (at == std::string::npos) {
      out += tmpl.substr(i);
      break;
    }
    out += tmpl.substr(i, at - i);
    const size_t end = tmpl.find('@', at + 1);
    const std::string key = end == std::string::npos ? "" : tmpl.substr(at + 1, end - at - 1);
    if (!key.empty() && std::regex_match(key, std::regex("[A-Z_]+"))) {
      auto it = values.find(key);
      if (it == values.end()) throw Error(what + ": the template has @" + key + "@, which zoobench does not fill");
      out += it->second;
      i = end + 1;
    } else {
      out += '@';
      i = at + 1;
    }
  }
  return out;
}

void check_name(const std::string& option, const std::string& value) {
  if (value.empty() || !std::regex_match(value, std::regex("[A-Za-z0-9._-]+")) || value[0] == '-')
    throw UsageError(option + ": '" + value + "' is not a plain name (letters, digits, '.', '_', '-')");
}

void check_time(const std::string& option, const std::string& value) {
  if (!std::regex_match(value, std::regex("([0-9]+-)?[0-9]+(:[0-9]+){0,2}")))
    throw UsageError(option + ": '" + value + "' is not a Slurm time (minutes, HH:MM:SS or D-HH:MM:SS)");
}

void check_env_key(const std::string& option, const std::string& key) {
  if (!std::regex_match(key, std::regex("[A-Za-z_][A-Za-z0-9_]*")))
    throw UsageError(option + ": '" + key + "' is not an environment variable name");
}

std::string sbatch_lines(const std::string& job, const std::string& exp, const Resources& r) {
  std::vector<std::string> o{"--job-name=zb-" + exp + "-" + job};
  if (!r.partition.empty()) o.push_back("--partition=" + r.partition);
  if (!r.account.empty()) o.push_back("--account=" + r.account);
  if (!r.time.empty()) o.push_back("--time=" + r.time);
  const std::string cpus = "--cpus-per-task=" + std::to_string(r.cpus_per_task);
  if (job == "grid" && r.mode == "mpi") {
    o.push_back("--nodes=" + std::to_string(r.nodes));
    o.push_back("--ntasks-per-node=" + std::to_string(r.ntasks_per_node));
    o.push_back(cpus);
    if (r.gpus_per_node > 0) o.push_back("--gpus-per-node=" + std::to_string(r.gpus_per_node));
  } else {
    o.push_back("--nodes=1");
    o.push_back("--ntasks=1");
    o.push_back(cpus);
    // One GPU is enough for a worker, the prepare step or the reduce.
    if (r.gpus_per_node > 0 && job != "reduce") o.push_back("--gpus-per-node=1");
    if (job == "grid") o.push_back("--array=0-" + std::to_string(std::max(1, r.shards) - 1));
  }
  if (job == "grid") {
    o.push_back("--requeue");
    o.push_back("--signal=B:USR1@" + std::to_string(r.signal_lead));
    o.push_back("--open-mode=append");  // a requeued run adds to its log
  }
  std::string s;
  for (const auto& x : o) s += "#SBATCH " + x + "\n";
  return s.substr(0, s.size() - 1);
}

namespace {
std::string first_line(const std::string& s) {
  std::string t = s;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  // sbatch's message is its last line ("sbatch: error: Batch job submission failed: ...").
  const size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}
std::vector<std::string> sbatch_argv(const Job& job, const std::vector<std::string>& extra) {
  std::vector<std::string> a{"sbatch"};
  a.insert(a.end(), extra.begin(), extra.end());
  a.insert(a.end(), job.sbatch_args.begin(), job.sbatch_args.end());
  a.push_back(job.script.string());
  return a;
}
}  // namespace

std::string submit(const Job& job, const std::string& dependency) {
  std::vector<std::string> extra{"--parsable"};
  if (!dependency.empty()) extra.push_back("--dependency=afterok:" + dependency);
  ProcessResult r = run_process(sbatch_argv(job, extra), 120.0);
  if (!r.started) throw Error("cannot run sbatch (is Slurm's client installed and on PATH?): " + r.err);
  if (r.timed_out) throw Error("sbatch did not answer within 120 s for the " + job.name + " job");
  if (r.code != 0) throw Error("sbatch refused the " + job.name + " job: " + first_line(r.err + r.out));
  std::string id = r.out.substr(0, r.out.find_first_of(";\n"));
  if (!std::regex_match(id, std::regex("[0-9]+")))
    throw Error("sbatch answered '" + first_line(r.out) + "' for the " + job.name + " job, not a job id");
  return id;
}

std::string test_only(const Job& job) {
  ProcessResult r = run_process(sbatch_argv(job, {"--test-only"}), 120.0);
  if (!r.started) throw Error("cannot run sbatch (is Slurm's client installed and on PATH?): " + r.err);
  if (r.timed_out) return "sbatch --test-only did not answer within 120 s";
  return r.code == 0 ? "" : first_line(r.err + r.out);
}

void cancel(const std::vector<std::string>& ids) {
  if (ids.empty()) return;
  std::vector<std::string> a{"scancel"};
  a.insert(a.end(), ids.begin(), ids.end());
  run_process(a, 60.0);
}

std::vector<JobState> job_states(const std::string& id) {
  std::vector<JobState> out;
  ProcessResult r = run_process({"scontrol", "--oneliner", "show", "job", id}, 30.0);
  if (!r.started || r.timed_out || r.code != 0) return out;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    std::map<std::string, std::string> kv;
    std::istringstream words(line);
    for (std::string w; words >> w;) {
      const size_t eq = w.find('=');
      if (eq != std::string::npos) kv.emplace(w.substr(0, eq), w.substr(eq + 1));
    }
    if (!kv.count("JobId")) continue;
    JobState s;
    s.id = kv.count("ArrayTaskId") ? kv["ArrayJobId"] + "_" + kv["ArrayTaskId"] : kv["JobId"];
    s.state = kv["JobState"];
    s.exit_code = kv["ExitCode"];
    s.reason = kv["Reason"];
    s.node = kv["NodeList"];
    out.push_back(s);
  }
  return out;
}

}  // namespace zoobench::slurm
