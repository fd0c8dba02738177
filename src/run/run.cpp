// The harness of `zoobench run`: set-up that every rank agrees on, the plan,
// the work queue and the groups, the units, the merge and the report.
#include "zoobench/run.h"

#include <ATen/ATen.h>
#include <torch/cuda.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstdio>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "unit_runner.h"
#include "zoobench/claims.h"
#include "zoobench/comm.h"
#include "zoobench/error.h"
#include "zoobench/extract.h"
#include "zoobench/io.h"
#include "zoobench/pack.h"
#include "zoobench/plan.h"
#include "zoobench/progress.h"
#include "zoobench/scheduler.h"
#include "zoobench/score.h"
#include "zoobench/selector.h"
#include "zoobench/store.h"
#include "zoobench/zoo.h"

namespace zoobench {
namespace fs = std::filesystem;

namespace {
// Lock-free, so the handler may set it and the work queue's thread read it.
std::atomic<int> g_stop{0};
static_assert(std::atomic<int>::is_always_lock_free);
extern "C" void on_stop_signal(int) { g_stop.store(1); }
}  // namespace

void install_stop_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, nullptr);
}

bool stop_requested() { return g_stop.load() != 0; }

void agreed(const std::function<void()>& f) {
  auto& w = comm::World::get();
  std::string msg;
  int code = 0;
  try {
    f();
  } catch (const Error& e) {
    msg = e.what();
    code = e.exit_code();
  } catch (const std::exception& e) {
    msg = std::string(e.what()).substr(0, std::string(e.what()).find('\n'));
    code = 1;
  }
  if (w.size() == 1) {
    if (code) throw AgreedError(msg, code);
    return;
  }
  const int64_t lowest = w.size() - w.allreduce_max(code ? w.size() - w.rank() : 0);
  if (lowest == w.size()) return;
  std::string shared = w.broadcast(std::to_string(code) + "\n" + msg, static_cast<int>(lowest));
  const size_t nl = shared.find('\n');
  throw AgreedError(shared.substr(nl + 1), std::atoi(shared.substr(0, nl).c_str()));
}

namespace {

at::Device pick_device(const std::string& want) {
  const bool have = torch::cuda::is_available();
  if (want == "cuda" && !have)
    throw ConfigError("execution.device: cuda, but " +
                      std::string(torch::cuda::device_count() == 0 && !at::hasCUDA()
                                      ? "this build of libtorch has no CUDA support"
                                      : "no CUDA device is visible") +
                      " (use device: auto or cpu)");
  if (want == "cpu" || !have) return at::Device(at::kCPU);
  // Node-local rank mod the visible GPUs (CUDA_VISIBLE_DEVICES already applied by the runtime).
  const int gpus = static_cast<int>(torch::cuda::device_count());
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(comm::World::get().local_rank() % gpus));
}

// Everything a rank needs to run units, built identically on every rank.
struct Grid {
  Manifest manifest;
  std::vector<std::unique_ptr<Model>> models;
  std::vector<Task> tasks;
  std::map<std::string, ImageSet> sets;
  Plan plan;
};

Grid build_grid(const Config& c, const fs::path& data_dir, const at::Device& device, const LoadRules& rules) {
  Grid g;
  std::vector<const Selector*> sels = selectors_from(c.selectors);
  g.manifest = Manifest::load(manifest_path(c));
  std::vector<PlanTask> ptasks;
  for (const auto& spec : c.tasks) {
    auto it = g.sets.find(spec.dataset);
    if (it == g.sets.end()) it = g.sets.emplace(spec.dataset, read_packed(packed_path(data_dir, spec.dataset))).first;
    g.tasks.push_back(sample_task(spec, it->second));
    const Task& t = g.tasks.back();
    ptasks.push_back({spec.name, spec.shots, static_cast<int64_t>(spec.seed), t.train.size(), t.val.size(), t.test.size(),
                      scored_samples(t, c.extract.max_per_class).size(), t.classes(), spec.group, spec.min_steps});
  }
  std::vector<PlanModel> pmodels;
  unsigned needs = 0;
  std::vector<std::string> names;
  for (auto* s : sels) needs |= s->needs(), names.push_back(s->name());
  int probe = -1;
  for (const auto& e : g.manifest.entries) {
    g.models.push_back(load_model(g.manifest, e, rules));
    g.models.back()->to(device);
    pmodels.push_back({e.name, e.format, e.arch, e.width, e.in_channels, e.input_size, e.kind});
    if (c.extract.probe_model.empty() ? e.kind == "generic" : e.name == c.extract.probe_model)
      probe = static_cast<int>(pmodels.size()) - 1;
    if (c.execution.ranks_per_cell > 1 && e.format != "builtin")
      throw ConfigError(c.source + ": execution.ranks_per_cell: " + std::to_string(c.execution.ranks_per_cell) +
                        " needs zoobench architectures for synchronised BatchNorm; zoo entry '" + e.name + "' is " + e.format);
  }
  {  // the scorer's own checks (a probe model for RSA/DDS) before anything is written
    std::vector<Model*> zoo;
    for (auto& m : g.models) zoo.push_back(m.get());
    ZooScorer(sels, zoo, c.extract, c.finetune, data_dir, c.seed);
  }
  g.plan = make_plan(c, pmodels, ptasks, names, needs, probe);
  return g;
}

// The experiment's identity: the resolved config and the zoo's weights.
std::string identity_yaml(const Config& c, const Manifest& m) {
  std::string s = c.resolved_yaml + "zoo_weights:\n";
  for (const auto& e : m.entries) s += "  \"" + e.name + "\": \"" + e.sha256 + "\"\n";
  return s;
}

void write_text(const fs::path& file, const std::string& text) {
  AtomicPath out(file);
  FILE* fp = std::fopen(out.tmp().c_str(), "w");
  if (!fp) throw IoError("cannot write '" + out.tmp().string() + "'");
  std::fwrite(text.data(), 1, text.size(), fp);
  std::fclose(fp);
  out.commit();
}

// Independent workers (a job array): units taken through claim files, no
// merge (the campaign's reduce job merges once every worker is done).
fs::path run_shared(const Config& c, const RunOptions& opt, Grid& grid, const fs::path& exp, const std::string& run_id,
                    const std::string& started) {
  auto& world = comm::World::get();
  ClaimQueue queue(grid.plan, exp, store::Owner::self(), share_from(opt.share), opt.worker, opt.workers);
  store::Provenance who{run_id, started, world.host(), 0, 1};
  store::RunContext ctx{opt.context_versions, manifest_path(c).string(), opt.threads, c.source};
  std::vector<Model*> zoo;
  for (auto& m : grid.models) zoo.push_back(m.get());
  UnitRunner runner(c, grid.plan, zoo, grid.tasks, std::move(grid.sets), opt.data_dir, exp, who, ctx);
  const std::string me = opt.share == "static"
                             ? "worker " + std::to_string(opt.worker) + " of " + std::to_string(opt.workers)
                             : "worker " + world.host() + ":" + std::to_string(::getpid());
  std::fprintf(stderr, "%s: %zu units, %s, taking units through %s (%s)\n", c.name.c_str(), grid.plan.units.size(),
               me.c_str(), (exp / "claims").string().c_str(), opt.share.c_str());
  Progress progress("units", grid.plan.units.size(), opt.quiet);
  size_t mine = 0;
  bool interrupted = false;
  std::vector<std::string> failures;
  for (int wait_ms = 50;;) {
    if (stop_requested()) {
      interrupted = true;
      break;
    }
    const int64_t unit = queue.next();
    for (const auto& t : queue.drain_taken_over()) std::fprintf(stderr, "took over the stale claim of %s\n", t.c_str());
    if (unit == ClaimQueue::kFinished) break;
    if (unit == ClaimQueue::kWait) {  // what is left waits on units other workers compute now
      std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
      wait_ms = std::min(wait_ms * 2, 2000);
      continue;
    }
    wait_ms = 50;
    const std::string& id = grid.plan.units[static_cast<size_t>(unit)].id;
    try {
      runner.run(static_cast<size_t>(unit), nullptr);
    } catch (const std::exception& e) {
      // Noted for `zoobench status`; the worker goes on with what does not depend on it.
      const std::string what = std::string(e.what()).substr(0, std::string(e.what()).find('\n'));
      queue.fail(unit, what);
      std::fprintf(stderr, "%s: unit %s failed: %s\n", c.name.c_str(), id.c_str(), what.c_str());
      failures.push_back("unit " + id + " failed: " + what + " (noted in " +
                         queue.failed_path(static_cast<size_t>(unit)).string() + ")");
      continue;
    }
    queue.complete(unit);
    ++mine;
    progress.step(id + "  (" + std::to_string(queue.done()) + "/" + std::to_string(queue.total()) + " done in all)");
  }
  progress.finish();
  const size_t done = queue.done(), total = queue.total();
  if (!failures.empty())
    throw Error(failures.front() + (failures.size() > 1 ? " and " + std::to_string(failures.size() - 1) + " more" : ""));
  if (interrupted)
    throw Interrupted(c.name + ": stopped on request (SIGUSR1) after " + std::to_string(mine) + " unit(s) of this " + me +
                      "; " + std::to_string(done) + " of " + std::to_string(total) + " done in all: run again to resume");
  std::string tail;
  if (done == total) tail = "; merge them with `zoobench reduce " + exp.string() + "`";
  else if (queue.held_elsewhere()) tail = "; " + std::to_string(queue.held_elsewhere()) + " in flight elsewhere";
  std::fprintf(stderr, "%s: %s finished %zu unit(s); %zu of %zu done in all%s\n", c.name.c_str(), me.c_str(), mine, done,
               total, tail.c_str());
  return exp;
}

}  // namespace

fs::path run_experiment(const Config& c, const RunOptions& opt) {
  auto& world = comm::World::get();
  const int R = c.execution.ranks_per_cell;
  at::Device device(at::kCPU);
  agreed([&] {
    selectors_from(c.selectors);
    if (c.tasks.empty()) throw ConfigError(c.source + ": tasks: the experiment has no tasks");
    if (c.zoo.manifest.empty() && c.zoo.models.empty())
      throw ConfigError(c.source + ": zoo: configure zoo.experts (and multi_domain, generic) or zoo.manifest");
    if (world.size() % R != 0)
      throw ConfigError(c.source + ": execution.ranks_per_cell: " + std::to_string(R) + " does not divide the " +
                        std::to_string(world.size()) + " ranks of this run");
    if (R > 1 && c.finetune.batch_size < R)
      throw ConfigError(c.source + ": execution.ranks_per_cell: " + std::to_string(R) + " ranks cannot share batches of " +
                        std::to_string(c.finetune.batch_size) + " (finetune.batch_size)");
    device = pick_device(opt.device.empty() ? c.execution.device : opt.device);
  });

  // ---- 1. data: pack the built-in domains that the tasks and the zoo read, if missing.
  // Independent workers (--share) never pack or train: many at once would race;
  // a prepare step (`run --prepare`, a campaign's first job) did it.
  const bool shared = !opt.share.empty();
  if (shared && opt.fresh) throw UsageError("--fresh cannot be used with --share: start over with one plain run");
  if (shared && world.size() > 1)
    throw UsageError("--share: each worker is one process of its own; under mpiexec/srun leave --share out");
  if (!shared) agreed([&] {
    std::set<std::string> needed;
    for (const auto& t : c.tasks) needed.insert(t.dataset);
    if (c.zoo.manifest.empty())
      for (const auto& m : c.zoo.models) needed.insert(m.domains.begin(), m.domains.end());
    std::vector<std::string> builtin = builtin_domains(), to_pack;
    for (const auto& d : needed)
      if (std::find(builtin.begin(), builtin.end(), d) != builtin.end()) to_pack.push_back(d);
    PackOptions popt;
    popt.raw_dir = default_raw_dir();
    pack_domains(to_pack, opt.data_dir, popt, false, std::max(1, opt.threads), world.rank(), world.size());
  });

  // ---- 2. the zoo: train what is missing (one model per rank)
  std::vector<ZooJobResult> jobs;
  if (!shared) agreed([&] { jobs = train_zoo(c, opt.data_dir, world.rank(), world.size(), [&] { world.barrier(); }, false, opt.quiet); });
  {  // every rank trained its share of the zoo; rank 0 reports them all
    auto all = world.allgather(zoo_report(jobs, "zoo ", "kept"));
    if (world.is_root())
      for (const auto& r : all) std::fputs(r.c_str(), stderr);
  }

  // ---- 3. tasks, models and the plan on every rank; the experiment folder on rank 0
  Grid grid;
  agreed([&] {
    if (shared && !fs::exists(manifest_path(c)))
      throw Error("zoo manifest '" + manifest_path(c).string() + "' is missing: an independent worker (--share) does not "
                  "train the zoo; run `zoobench run " + c.source + " --prepare` first");
    LoadRules rules;
    rules.allow_outside_zoo = opt.allow_outside_zoo;
    grid = build_grid(c, opt.data_dir, device, rules);
  });
  const fs::path exp = fs::path(c.results_dir) / c.name;
  std::optional<store::Lock> lock;
  std::vector<char> done;
  std::string run_id, started = utc_now();
  agreed([&] {
    if (!world.is_root()) return;
    std::error_code ec;
    if (opt.fresh && fs::exists(exp)) {
      { store::Lock probe(exp / "lock", ""); }  // refuse to move a running experiment
      if (size_t n = store::live_claims(exp))
        throw Error("experiment '" + c.name + "' has " + std::to_string(n) + " unit(s) in flight in independent workers (" +
                    (exp / "claims").string() + "): wait for them to end before --fresh");
      fs::path old = store::move_aside(exp);
      std::fprintf(stderr, "moved the old experiment aside: %s\n", old.string().c_str());
    }
    fs::create_directories(exp / "shards", ec);
    if (ec) throw IoError("cannot create the results folder '" + (exp / "shards").string() + "': " + ec.message());
    run_id = world.host() + ":" + std::to_string(::getpid()) + ":" + started;
    if (const char* job = std::getenv("SLURM_JOB_ID")) run_id = "slurm:" + std::string(job) + ":" + run_id;
    if (!shared) {
      lock.emplace(exp / "lock", run_id);
    } else if (fs::exists(exp / "lock")) {
      // Workers share the folder among themselves, not with a run that owns it.
      store::Lock probe(exp / "lock", "");
    }
    store::check_identity(exp, identity_yaml(c, grid.manifest));
    // Workers leave both to the prepare step: many hosts renaming one file is a race.
    if (!fs::exists(exp / "config.yaml")) write_text(exp / "config.yaml", c.resolved_yaml);
    if (!shared || !fs::exists(exp / "plan.json")) write_text(exp / "plan.json", grid.plan.to_json());
    if (size_t n = store::remove_stale_temporaries(exp))
      std::fprintf(stderr, "removed %zu half-written shard(s) of killed runs\n", n);
    done = store::done_units(exp, grid.plan);
    for (const auto& line : store::set_aside_broken_shards(exp, grid.plan, done))
      std::fprintf(stderr, "zoobench: warning: %s\n", line.c_str());
  });
  run_id = world.broadcast(run_id);
  started = world.broadcast(started);
  if (opt.prepare) {
    if (world.is_root())
      std::fprintf(stderr, "%s: prepared (data, zoo, plan): %zu units, %zu done before\n", c.name.c_str(),
                   grid.plan.units.size(), static_cast<size_t>(std::count(done.begin(), done.end(), 1)));
    return exp;
  }
  if (shared) return run_shared(c, opt, grid, exp, run_id, started);

  // ---- 4. groups of R ranks; the group's first rank asks the queue for units
  const int groups = world.size() / R;
  std::shared_ptr<comm::Group> group = world.split(world.rank() / R, world.rank());
  std::unique_ptr<comm::Collective> coll;
  // NCCL only where there is someone to talk to: a group of one needs no collective.
  agreed([&] { coll = comm::Collective::create(group, device.is_cuda() && group->size() > 1); });
  const bool leader = group->rank() == 0;

  std::unique_ptr<Dispatcher> dispatcher;
  std::unique_ptr<Progress> progress;
  if (world.is_root()) {
    dispatcher = std::make_unique<Dispatcher>(grid.plan, done, groups, policy_from(opt.schedule));
    const size_t todo = dispatcher->todo_at_start(), total = dispatcher->total();
    std::fprintf(stderr, "%s: %zu units (%zu done before, %zu to do) on %d rank(s) in %d group(s) of %d, %s, %s schedule\n",
                 c.name.c_str(), total, total - todo, todo, world.size(), groups, R, device.str().c_str(),
                 opt.schedule.c_str());
    if (todo < static_cast<size_t>(groups))
      std::fprintf(stderr, "note: %zu unit(s) to do for %d group(s): %zu group(s) will have nothing to do\n", todo, groups,
                   static_cast<size_t>(groups) - todo);
    progress = std::make_unique<Progress>("units", todo, opt.quiet);
  }
  // Requests: {group, unit just finished or -1}; replies: {unit | kWait | kFinished}.
  comm::Service service(
      [&](int, const std::vector<int64_t>& msg) -> std::vector<int64_t> {
        if (msg.at(1) >= 0) {
          dispatcher->complete(msg[1]);
          progress->step(grid.plan.units[static_cast<size_t>(msg[1])].id);
        }
        if (stop_requested()) return {Dispatcher::kFinished};  // units in flight finish; no new ones
        return {dispatcher->next(static_cast<int>(msg.at(0)))};
      },
      [](const std::vector<int64_t>& reply) { return reply.at(0) == Dispatcher::kFinished; }, groups - 1);

  store::Provenance who{run_id, started, world.host(), group->world_rank_of_root(), R};
  store::RunContext ctx{opt.context_versions, manifest_path(c).string(), opt.threads, c.source};
  std::vector<Model*> zoo;
  for (auto& m : grid.models) zoo.push_back(m.get());
  UnitRunner runner(c, grid.plan, zoo, grid.tasks, std::move(grid.sets), opt.data_dir, exp, who, ctx);
  size_t mine = 0;
  int64_t finished = -1;
  for (int wait_ms = 5;;) {
    int64_t unit = Dispatcher::kFinished;
    if (leader) {
      unit = service.request({world.rank() / R, finished}).at(0);
      finished = -1;
      if (unit == Dispatcher::kWait) {  // dependencies in flight elsewhere
        std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
        wait_ms = std::min(wait_ms * 2, 200);
        continue;
      }
      wait_ms = 5;
    }
    unit = group->broadcast(unit);
    if (unit == Dispatcher::kFinished) break;
    runner.run(static_cast<size_t>(unit), coll.get());
    finished = unit;
    ++mine;
  }
  if (leader && mine == 0 && !world.is_root())
    std::fprintf(stderr, "rank %d: no unit was left for this group\n", world.rank());
  // How long taking a unit took on the other ranks (served while rank 0 computes its own units).
  std::vector<double> lat = world.is_root() ? std::vector<double>{} : service.latencies();
  std::string mine_lat;
  for (double x : lat) mine_lat += std::to_string(x) + " ";
  auto all_lat = world.allgather(mine_lat);
  if (world.is_root() && !opt.quiet && world.size() > 1) {
    std::vector<double> v;
    for (const auto& s : all_lat) {
      std::istringstream in(s);
      for (double x; in >> x;) v.push_back(x);
    }
    if (!v.empty()) {
      std::sort(v.begin(), v.end());
      std::fprintf(stderr, "work queue: %zu requests from ranks 1..%d, reply latency median %.2f ms, p99 %.2f ms, max %.2f ms\n",
                   v.size(), world.size() - 1, 1e3 * v[v.size() / 2], 1e3 * v[std::min(v.size() - 1, v.size() * 99 / 100)],
                   1e3 * v.back());
    }
  }

  // ---- 5. every unit is on disk: rank 0 merges and reports
  fs::path out = exp / "results.h5";
  world.barrier();
  // Stopped on request with units left: nothing to merge yet; a rerun resumes.
  const int64_t left = world.allreduce_max(
      world.is_root() && stop_requested() ? static_cast<int64_t>(dispatcher->total() - dispatcher->done()) : int64_t{0});
  if (left > 0) {
    if (world.is_root()) progress->finish();
    throw AgreedError(c.name + ": stopped on request (SIGUSR1) with " + std::to_string(left) + " of " +
                          std::to_string(grid.plan.units.size()) + " units left: run again to resume",
                      kExitInterrupted);
  }
  if (world.is_root()) {
    progress->finish();
    out = store::merge(exp);
    print_summary(out);
    std::cout << "\nresults: " << out.string() << "\n";
  }
  world.barrier();
  return out;
}

}  // namespace zoobench
