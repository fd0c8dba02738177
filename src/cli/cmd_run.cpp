// `zoobench zoo train` and `zoobench run`.
#include <torch/version.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "cli.h"
#include "zoobench/comm.h"
#include "zoobench/claims.h"
#include "zoobench/config.h"
#include "zoobench/dataset.h"
#include "zoobench/pack.h"
#include "zoobench/progress.h"
#include "zoobench/run.h"
#include "zoobench/scheduler.h"
#include "zoobench/error.h"
#include "zoobench/zoo.h"

namespace zoobench::cli {

namespace {
po::options_description common(const char* title) {
  po::options_description opts(title);
  opts.add_options()("config", po::value<std::string>()->required(), "experiment config (YAML)")(
      "data-dir", po::value<std::string>()->default_value(""), "packed data sets (default: $ZOOBENCH_DATA_DIR, config, ./data)")(
      "threads", po::value<int>()->default_value(-1), "libtorch threads per rank (default: the config's threads)")(
      "zoo-dir", po::value<std::string>(), "override zoo.dir")(
      "results-dir", po::value<std::string>(), "override results_dir")("quiet,q", "no progress lines");
  return opts;
}

Config load_with_overrides(const po::variables_map& vm) {
  Config c = load_config(vm["config"].as<std::string>(), /*allow_unset_env=*/true);
  if (vm.count("zoo-dir")) c.zoo.dir = vm["zoo-dir"].as<std::string>(), path_overridden(c, "zoo.dir");
  if (vm.count("results-dir")) c.results_dir = vm["results-dir"].as<std::string>(), path_overridden(c, "results_dir");
  data_dir_overridden(c, vm.count("data-dir") ? vm["data-dir"].as<std::string>() : "");
  require_env(c);
  return c;
}
}  // namespace

int cmd_zoo_train(const Args& args) {
  auto opts = common("zoobench zoo train");
  opts.add_options()("force", "retrain every model, even up-to-date ones");
  po::positional_options_description pos;
  pos.add("config", 1);
  auto vm = parse("zoobench zoo train <config> [--force] [--data-dir DIR] [--threads N] [--quiet]", opts, args, &pos);
  if (!vm) return 0;
  Config c = load_with_overrides(*vm);
  int t = (*vm)["threads"].as<int>();
  set_threads(t >= 0 ? t : c.threads);
  auto& world = comm::World::get();
  std::filesystem::path data_dir = resolve_data_dir((*vm)["data-dir"].as<std::string>(), c.data_dir);
  // Pack the sources the zoo reads, if missing (ranks split the sources).
  std::vector<std::string> domains, builtin = builtin_domains();
  for (const auto& m : c.zoo.models)
    for (const auto& d : m.domains)
      if (std::find(builtin.begin(), builtin.end(), d) != builtin.end()) domains.push_back(d);
  PackOptions popt;
  popt.raw_dir = default_raw_dir();
  pack_domains(expand_domains(domains), data_dir, popt, false, 1, world.rank(), world.size());
  world.barrier();
  auto results = train_zoo(c, data_dir, world.rank(), world.size(), [&] { world.barrier(); }, vm->count("force") > 0,
                           vm->count("quiet") > 0);
  // Every rank reports its own models; rank 0 wrote the manifest.
  auto all = world.allgather(zoo_report(results, "", "up to date, kept"));
  if (world.is_root()) {
    for (const auto& r : all) std::cout << r;
    std::cout << "manifest: " << manifest_path(c).string() << "\n";
  }
  return 0;
}

int cmd_run(const Args& args) {
  auto opts = common("zoobench run");
  opts.add_options()("fresh", "move an existing experiment aside (results/<name>.old-<utc>) and start over")(
      "device", po::value<std::string>()->default_value(""), "auto | cpu | cuda (default: the config's execution.device)")(
      "schedule", po::value<std::string>()->default_value("dynamic"),
      "dynamic (largest ready unit first, any rank) | static (round-robin; a baseline for benchmarks)")(
      "prepare", "pack the data, train the zoo, write the plan, then stop (a cluster campaign's first job)")(
      "share", po::value<std::string>()->default_value(""),
      "claims | static: run as one of several independent workers (a job array) that share the units through "
      "results/<exp>/claims; no merge at the end (zoobench reduce does it)")(
      "worker", po::value<int>()->default_value(-1), "--share static: this worker's index (default $SLURM_ARRAY_TASK_ID)")(
      "workers", po::value<int>()->default_value(-1), "--share static: the number of workers (default $SLURM_ARRAY_TASK_COUNT)");
  add_allow_outside_zoo(opts);
  po::positional_options_description pos;
  pos.add("config", 1);
  auto vm = parse("zoobench run <config> [--fresh] [--prepare] [--share claims|static [--worker I --workers N]] [--device D] "
                  "[--data-dir DIR] [--threads N] [--allow-outside-zoo] [--quiet]",
                  opts, args, &pos);
  if (!vm) return 0;
  Config c;
  agreed([&] { c = load_with_overrides(*vm); });  // every rank reads the same file: one error line
  int t = (*vm)["threads"].as<int>();
  RunOptions opt;
  opt.threads = set_threads(t >= 0 ? t : c.threads);
  opt.data_dir = resolve_data_dir((*vm)["data-dir"].as<std::string>(), c.data_dir);
  opt.quiet = vm->count("quiet") > 0;
  opt.fresh = vm->count("fresh") > 0;
  opt.device = (*vm)["device"].as<std::string>();
  if (!opt.device.empty() && opt.device != "auto" && opt.device != "cpu" && opt.device != "cuda")
    throw UsageError("--device: unknown device '" + opt.device + "' (known: auto, cpu, cuda)");
  opt.schedule = (*vm)["schedule"].as<std::string>();
  policy_from(opt.schedule);
  opt.prepare = vm->count("prepare") > 0;
  opt.allow_outside_zoo = allow_outside_zoo(*vm);
  opt.share = (*vm)["share"].as<std::string>();
  if (!opt.share.empty()) share_from(opt.share);
  auto from_env = [](int given, const char* var, int fallback) {
    if (given >= 0) return given;
    const char* v = std::getenv(var);
    return v && *v ? std::atoi(v) : fallback;
  };
  // An array need not start at 0 (--array=1-4): the index counts from its first task.
  opt.worker = from_env((*vm)["worker"].as<int>(), "SLURM_ARRAY_TASK_ID", 0) -
               ((*vm)["worker"].as<int>() >= 0 ? 0 : from_env(-1, "SLURM_ARRAY_TASK_MIN", 0));
  opt.workers = from_env((*vm)["workers"].as<int>(), "SLURM_ARRAY_TASK_COUNT", 1);
  if (opt.share == "static" && (opt.worker < 0 || opt.worker >= opt.workers))
    throw UsageError("--worker " + std::to_string(opt.worker) + " --workers " + std::to_string(opt.workers) +
                     ": the worker index must lie in [0, workers)");
  if (opt.prepare && !opt.share.empty()) throw UsageError("--prepare and --share exclude each other");
  install_stop_handler();
  opt.context_versions = std::string("libtorch=") + TORCH_VERSION + ";mpi=" + comm::mpi_library_version() +
                         ";nccl=" + comm::nccl_version();
  run_experiment(c, opt);
  return 0;
}

}  // namespace zoobench::cli
