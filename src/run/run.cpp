// The harness of `zoobench run`: set-up that every rank agrees on, the plan,
// the work queue and the groups, the units, the merge and the report.
#include "zoobench/run.h"

#include <ATen/ATen.h>
#include <torch/cuda.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "unit_runner.h"
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

}  // namespace

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

Grid build_grid(const Config& c, const fs::path& data_dir, const at::Device& device) {
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
                      scored_samples(t, c.extract.max_per_class).size(), t.classes(), spec.group});
  }
  std::vector<PlanModel> pmodels;
  unsigned needs = 0;
  std::vector<std::string> names;
  for (auto* s : sels) needs |= s->needs(), names.push_back(s->name());
  int probe = -1;
  for (const auto& e : g.manifest.entries) {
    g.models.push_back(load_model(g.manifest, e));
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

  // ---- 1. data: pack the built-in domains that the tasks and the zoo read, if missing
  agreed([&] {
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
  agreed([&] { jobs = train_zoo(c, opt.data_dir, world.rank(), world.size(), [&] { world.barrier(); }, false, opt.quiet); });
  {  // every rank trained its share of the zoo; rank 0 reports them all
    auto all = world.allgather(zoo_report(jobs, "zoo ", "kept"));
    if (world.is_root())
      for (const auto& r : all) std::fputs(r.c_str(), stderr);
  }

  // ---- 3. tasks, models and the plan on every rank; the experiment folder on rank 0
  Grid grid;
  agreed([&] { grid = build_grid(c, opt.data_dir, device); });
  const fs::path exp = fs::path(c.results_dir) / c.name;
  std::optional<store::Lock> lock;
  std::vector<char> done;
  std::string run_id, started = utc_now();
  agreed([&] {
    if (!world.is_root()) return;
    std::error_code ec;
    if (opt.fresh && fs::exists(exp)) {
      { store::Lock probe(exp / "lock", ""); }  // refuse to move a running experiment
      fs::path old = store::move_aside(exp);
      std::fprintf(stderr, "moved the old experiment aside: %s\n", old.string().c_str());
    }
    fs::create_directories(exp / "shards", ec);
    if (ec) throw IoError("cannot create the results folder '" + (exp / "shards").string() + "': " + ec.message());
    run_id = world.host() + ":" + std::to_string(::getpid()) + ":" + started;
    lock.emplace(exp / "lock", run_id);
    store::check_identity(exp, identity_yaml(c, grid.manifest));
    if (!fs::exists(exp / "config.yaml")) write_text(exp / "config.yaml", c.resolved_yaml);
    write_text(exp / "plan.json", grid.plan.to_json());
    if (size_t n = store::remove_stale_temporaries(exp))
      std::fprintf(stderr, "removed %zu half-written shard(s) of killed runs\n", n);
    done = store::done_units(exp, grid.plan);
  });
  run_id = world.broadcast(run_id);
  started = world.broadcast(started);

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
