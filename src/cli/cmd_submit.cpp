// `zoobench submit <config>`: the campaign as three Slurm jobs,
// prepare -> grid -> reduce, chained with afterok.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "zoobench/dataset.h"
#include "zoobench/error.h"
#include "zoobench/io.h"
#include "zoobench/planning.h"
#include "zoobench/slurm.h"
#include "zoobench/subprocess.h"

namespace zoobench::cli {
namespace fs = std::filesystem;

namespace {

fs::path self_executable() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw IoError("cannot find zoobench's own path (/proc/self/exe): " + ec.message());
  return p;
}

void write_script(const fs::path& file, const std::string& text) {
  AtomicPath out(file);
  {
    std::ofstream f(out.tmp());
    f << text;
    if (!f) throw IoError("cannot write '" + out.tmp().string() + "'");
  }
  ::chmod(out.tmp().c_str(), 0755);
  out.commit();
}

int at_least(const po::variables_map& vm, const char* key, int min) {
  const int v = vm[key].as<int>();
  if (v < min) throw UsageError(std::string("--") + key + " must be at least " + std::to_string(min) + ", got " + std::to_string(v));
  return v;
}

}  // namespace

int cmd_submit(const Args& args) {
  po::options_description opts("zoobench submit");
  opts.add_options()("config", po::value<std::string>()->required(), "experiment config (YAML)")(
      "mode", po::value<std::string>()->default_value("array"),
      "array: the grid as a job array of independent workers | mpi: one MPI job over --nodes")(
      "share", po::value<std::string>()->default_value("claims"),
      "array: claims (workers take units dynamically through claim files) | static (task i takes every N-th unit)")(
      "shards", po::value<int>()->default_value(0), "array: tasks of the array (default: what `zoobench plan` suggests)")(
      "nodes", po::value<int>()->default_value(1), "mpi: nodes")(
      "ntasks-per-node", po::value<int>()->default_value(1), "mpi: ranks a node")(
      "gpus-per-node", po::value<int>()->default_value(0), "GPUs a node (array: each worker takes one)")(
      "cpus-per-task", po::value<int>()->default_value(1), "cores a rank or worker (its libtorch threads)")(
      "partition", po::value<std::string>()->default_value(""), "Slurm partition")(
      "account", po::value<std::string>()->default_value(""), "Slurm account")(
      "time", po::value<std::string>()->default_value(""), "time limit of each job (D-HH:MM:SS)")(
      "signal-lead", po::value<int>()->default_value(120),
      "seconds before the time limit that Slurm sends USR1 (the unit in flight must finish within it)")(
      "launcher", po::value<std::string>()->default_value("srun"),
      "mpi: srun (srun --mpi=pmix) | mpirun (OpenMPI's, inside the allocation)")(
      "env", po::value<std::vector<std::string>>()->composing(), "KEY=VALUE exported in every job (repeatable)")(
      "jobs-dir", po::value<std::string>()->default_value("jobs"), "where jobs/<exp>/ with the scripts and logs goes")(
      "templates", po::value<std::string>()->default_value(""), "a folder of <job>.sbatch templates replacing the built-in ones")(
      "data-dir", po::value<std::string>()->default_value(""), "packed data sets (as for zoobench run)")(
      "dry-run", "write the scripts and print the sbatch commands; submit nothing");
  add_allow_outside_zoo(opts);
  po::positional_options_description pos;
  pos.add("config", 1);
  auto vm = parse("zoobench submit <config> [--mode array|mpi] [--shards K] [--nodes N --ntasks-per-node T] "
                  "[--gpus-per-node G] [--cpus-per-task C] [--partition P] [--account A] [--time T] [--allow-outside-zoo] [--dry-run]",
                  opts, args, &pos);
  if (!vm) return 0;
  slurm::Resources r;
  r.mode = (*vm)["mode"].as<std::string>();
  if (r.mode != "array" && r.mode != "mpi") throw UsageError("--mode: unknown mode '" + r.mode + "' (known: array, mpi)");
  r.share = (*vm)["share"].as<std::string>();
  if (r.share != "claims" && r.share != "static") throw UsageError("--share: unknown mode '" + r.share + "' (known: claims, static)");
  r.launcher = (*vm)["launcher"].as<std::string>();
  if (r.launcher != "srun" && r.launcher != "mpirun")
    throw UsageError("--launcher: unknown launcher '" + r.launcher + "' (known: srun, mpirun)");
  r.shards = at_least(*vm, "shards", 0);
  r.nodes = at_least(*vm, "nodes", 1);
  r.ntasks_per_node = at_least(*vm, "ntasks-per-node", 1);
  r.gpus_per_node = at_least(*vm, "gpus-per-node", 0);
  r.cpus_per_task = at_least(*vm, "cpus-per-task", 1);
  r.signal_lead = at_least(*vm, "signal-lead", 1);
  r.partition = (*vm)["partition"].as<std::string>();
  r.account = (*vm)["account"].as<std::string>();
  r.time = (*vm)["time"].as<std::string>();
  if (!r.partition.empty()) slurm::check_name("--partition", r.partition);
  if (!r.account.empty()) slurm::check_name("--account", r.account);
  if (!r.time.empty()) slurm::check_time("--time", r.time);
  if (vm->count("env"))
    for (const auto& kv : (*vm)["env"].as<std::vector<std::string>>()) {
      const size_t eq = kv.find('=');
      if (eq == std::string::npos) throw UsageError("--env: '" + kv + "' is not KEY=VALUE");
      slurm::check_env_key("--env", kv.substr(0, eq));
      r.env.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }

  const fs::path config_path = fs::absolute((*vm)["config"].as<std::string>());
  Config c = load_config(config_path, /*allow_unset_env=*/true);
  data_dir_overridden(c, (*vm)["data-dir"].as<std::string>());
  require_env(c);  // the jobs resolve the same paths: their variables must be set now too
  slurm::check_name("the config's name", c.name);
  const fs::path workdir = fs::current_path();
  const fs::path results = fs::absolute(fs::path(c.results_dir) / c.name);
  const fs::path jobs = fs::absolute(fs::path((*vm)["jobs-dir"].as<std::string>()) / c.name);
  const fs::path tdir = (*vm)["templates"].as<std::string>();
  if (r.mode == "array" && r.shards == 0) {
    CampaignPlan cp = plan_campaign(c, resolve_data_dir((*vm)["data-dir"].as<std::string>(), c.data_dir));
    r.shards = suggest_workers(cp.plan, cp.seconds);
    std::printf("shards: %d (as `zoobench plan` suggests; --shards K to choose)\n", r.shards);
  }

  std::string env_lines;
  for (const auto& [k, v] : r.env) env_lines += "export " + k + "=" + shell_quote(v) + "\n";
  if (!(*vm)["data-dir"].as<std::string>().empty())
    env_lines += "export ZOOBENCH_DATA_DIR=" + shell_quote(fs::absolute((*vm)["data-dir"].as<std::string>()).string()) + "\n";
  if (allow_outside_zoo(*vm)) env_lines += "export ZOOBENCH_ALLOW_OUTSIDE_ZOO=1\n";
  std::map<std::string, std::string> values{{"EXP", c.name},
                                            {"WORKDIR", shell_quote(workdir.string())},
                                            {"ZOOBENCH", shell_quote(self_executable().string())},
                                            {"CONFIG", shell_quote(config_path.string())},
                                            {"RESULTS", shell_quote(results.string())},
                                            {"SHARE", r.share},
                                            // srun does not pass the job's --cpus-per-task on (22.05); mpirun binds to one core.
                                            {"LAUNCH", r.launcher == "srun"
                                                           ? "srun --mpi=pmix --cpus-per-task=\"${SLURM_CPUS_PER_TASK:-1}\""
                                                           : "mpirun --bind-to none"},
                                            {"ENV", env_lines.empty() ? "" : env_lines.substr(0, env_lines.size() - 1)}};
  std::error_code ec;
  fs::create_directories(jobs / "logs", ec);
  if (ec) throw IoError("cannot create '" + (jobs / "logs").string() + "': " + ec.message());

  std::vector<slurm::Job> chain;
  for (const std::string name : {"prepare", "grid", "reduce"}) {
    const std::string tmpl = name == "grid" ? "grid-" + r.mode : name;
    values["SBATCH"] = slurm::sbatch_lines(name, c.name, r);
    slurm::Job j;
    j.name = name;
    j.script = jobs / (name + ".sbatch");
    write_script(j.script, slurm::render(slurm::load_template(tmpl, tdir), values, (tdir.empty() ? "slurm/" : tdir.string() + "/") + tmpl + ".sbatch"));
    const std::string log = name == "grid" && r.mode == "array" ? "%x-%A_%a.out" : "%x-%j.out";
    j.sbatch_args = {"--chdir=" + workdir.string(), "--output=" + (jobs / "logs" / log).string(), "--kill-on-invalid-dep=yes"};
    chain.push_back(j);
  }

  if (vm->count("dry-run")) {
    std::printf("scripts in %s (nothing submitted):\n", jobs.string().c_str());
    std::string prev;
    for (const auto& j : chain) {
      std::vector<std::string> a = j.sbatch_args;
      a.push_back(j.script.string());
      std::printf("  %s_id=$(sbatch --parsable%s %s)\n", j.name.c_str(),
                  prev.empty() ? "" : (" --dependency=afterok:$" + prev).c_str(), shell_join(a).c_str());
      prev = j.name + "_id";
    }
    return 0;
  }

  // Every job checked before any is submitted: a refused request leaves nothing behind.
  for (const auto& j : chain)
    if (std::string why = slurm::test_only(j); !why.empty())
      throw Error("Slurm refuses the " + j.name + " job of " + c.name + ": " + why + " (nothing was submitted)");
  std::vector<std::string> ids;
  try {
    for (auto& j : chain) {
      j.id = slurm::submit(j, ids.empty() ? "" : ids.back());
      ids.push_back(j.id);
    }
  } catch (const Error& e) {
    slurm::cancel(ids);
    throw Error(std::string(e.what()) + (ids.empty() ? "" : " (cancelled the jobs already submitted: " + ids.front() +
                                                                 (ids.size() > 1 ? ", " + ids[1] : "") + ")"));
  }
  nlohmann::json rec{{"experiment", c.name}, {"config", config_path.string()}, {"mode", r.mode},
                     {"share", r.share},     {"shards", r.shards},             {"submitted_utc", utc_now()},
                     {"command", "zoobench submit " + shell_join(args)}};
  for (const auto& j : chain) rec["jobs"][j.name] = j.id;
  {
    AtomicPath out(jobs / "jobs.json");
    std::ofstream(out.tmp()) << rec.dump(1) << "\n";
    out.commit();
  }
  const std::string grid = r.mode == "array" ? "grid " + ids[1] + " (array of " + std::to_string(r.shards) + ", --share " + r.share + ")"
                                             : "grid " + ids[1] + " (" + std::to_string(r.nodes) + " node(s) x " +
                                                   std::to_string(r.ntasks_per_node) + " rank(s), " + r.launcher + ")";
  std::printf("submitted %s: prepare %s -> %s -> reduce %s\n", c.name.c_str(), ids[0].c_str(), grid.c_str(), ids[2].c_str());
  std::printf("follow:  squeue --jobs=%s,%s,%s   or   zoobench status %s\n", ids[0].c_str(), ids[1].c_str(), ids[2].c_str(),
              shell_quote(config_path.string()).c_str());
  std::printf("logs:    %s\nresults: %s (tables/ when the reduce job ends)\n", (jobs / "logs").string().c_str(),
              (results / "results.h5").string().c_str());
  return 0;
}

}  // namespace zoobench::cli
