// The scheduler at scale, simulated: a seed-paper-sized plan (32 models x 11
// tasks x 3 shots = 33 plan tasks, x 3 learning rates, with a probe unit per
// task and a source unit per model) whose units cost what units of the same
// kind cost in a real run, replayed through simulate() for 8 .. 1024 workers
// with the dynamic policy and the static round-robin baseline.
//
//   build-bench/bench/bench_scheduler results/<exp>/results.h5 [--seed 0] [--costs resample|scaled]
//
// Costs (seconds per unit), from /units of the merged results file:
//   resample (default): each unit of the plan draws (seeded) the measured
//     seconds of a real unit of the same kind.
//   scaled: each unit draws the measured/estimated ratio of a real unit of
//     the same kind (the estimates from plan.json beside results.h5, or
//     --plan) and multiplies it by its own estimate (make_plan's cost), so
//     the big plan keeps its spread of model and task sizes.
// A kind the real run lacks (a run whose selectors need no probe or source
// units) borrows a proxy kind, scaled by the plan's cost estimates:
//   probe  <- finetune (a probe is a short fine-tune), source <- score (forward passes);
//   resample: seconds = drawn proxy seconds * estimate(unit) / mean estimate of the proxy kind in this plan;
//   scaled:   seconds = estimate(unit) * drawn proxy ratio.
// The output says which kinds were borrowed.
//
// The dispatcher orders by the plan's estimates (as the live run does) while
// the simulation charges the drawn seconds, so estimate errors count.
//
// Checks beside every simulation: makespan >= lower bound, the workers' busy
// seconds add up to the total work, utilisation = total / (W x makespan).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <sstream>

#include "bench_common.h"
#include "zoobench/config.h"
#include "zoobench/h5.h"
#include "zoobench/plan.h"
#include "zoobench/scheduler.h"
#include "zoobench/selector.h"
#include "zoobench/version.h"

using namespace zoobench;

namespace {

struct Measured {
  std::string id, kind;
  double seconds = 0;
};

std::vector<Measured> read_units(const std::filesystem::path& path) {
  h5::File f = h5::File::open(path);
  h5::Group u = f.open_group("units");
  auto ids = u.dataset("unit").read_strings();
  auto kinds = u.dataset("kind").read_strings();
  auto secs = u.dataset("seconds").read<double>();
  if (ids.size() != kinds.size() || ids.size() != secs.size()) throw DataError(path.string() + ": /units columns differ in length");
  std::vector<Measured> out;
  for (size_t i = 0; i < ids.size(); ++i) out.push_back({ids[i], kinds[i], secs[i]});
  return out;
}

// A zoo resembling the real ones (configs/quickstart.yaml, scaled up): 24
// single-domain experts of mixed architectures, 6 views of a Multi-BN expert,
// 2 generic models. The probe model is the first generic one.
std::vector<PlanModel> seed_zoo(int count) {
  struct Arch {
    const char* arch;
    int width;
  };
  const Arch experts[] = {{"resnet8", 8},  {"cnn", 16},     {"resnet14", 8}, {"resnet8", 12},
                          {"cnn", 8},      {"resnet20", 8}, {"resnet8", 16}, {"resnet14", 12}};
  const char* domains[] = {"fashion-mnist", "mnist", "glyphs-latin", "emoji-google", "kmnist", "emnist-letters",
                           "glyphs-cyrillic", "emoji-twitter", "svhn-gray", "usps", "glyphs-devanagari", "cifar10-gray"};
  std::vector<PlanModel> zoo;
  const int generic = 2, views = std::min(6, std::max(0, count - generic - 1));
  const int n_experts = std::max(0, count - generic - views);
  for (int i = 0; i < n_experts; ++i) {
    const Arch& a = experts[i % 8];
    PlanModel m;
    m.name = std::string(domains[i % 12]) + "-" + a.arch + "w" + std::to_string(a.width) + (i >= 12 ? "-b" : "");
    m.arch = a.arch;
    m.width = a.width;
    m.in_channels = (i % 12 == 3 || i % 12 == 7) ? 3 : 1;  // the emoji experts see colour
    m.kind = "expert";
    zoo.push_back(m);
  }
  for (int i = 0; i < views; ++i) {
    PlanModel m;
    m.name = std::string("multibn/") + domains[i];
    m.arch = "resnet8";
    m.width = 8;
    m.kind = "multi_domain";
    zoo.push_back(m);
  }
  const Arch gen[] = {{"resnet8", 12}, {"resnet20", 16}};
  for (int i = 0; i < generic && static_cast<int>(zoo.size()) < count; ++i) {
    PlanModel m;
    m.name = std::string("generic-") + gen[i].arch + "w" + std::to_string(gen[i].width);
    m.arch = gen[i].arch;
    m.width = gen[i].width;
    m.kind = "generic";
    zoo.push_back(m);
  }
  return zoo;
}

// 11 target data sets of the sizes of the packed domains, each at every shot.
std::vector<PlanTask> seed_tasks(int count, const std::vector<int>& shots, const ExtractConfig& ex) {
  struct Ds {
    const char* name;
    size_t classes;
  };
  const Ds ds[] = {{"opencv-digits", 10}, {"optdigits", 10},       {"glyphs-handwriting", 26}, {"glyphs-greek", 24},
                   {"usps", 10},          {"glyphs-armenian", 38}, {"emoji-openmoji", 20},      {"kmnist", 10},
                   {"fashion-mnist", 10}, {"glyphs-runic", 24},    {"glyphs-hebrew", 22}};
  std::vector<PlanTask> out;
  for (int t = 0; t < count; ++t)
    for (int s : shots) {
      const Ds& d = ds[t % 11];
      PlanTask p;
      p.name = std::string(d.name) + (t >= 11 ? "-" + std::to_string(t / 11) : "") + "-" + std::to_string(s) + "shot";
      p.shot = s;
      p.seed = 0;
      p.classes = d.classes;
      const size_t shots_total = static_cast<size_t>(s) * d.classes;
      p.val = static_cast<size_t>(std::floor(0.2 * static_cast<double>(shots_total)));
      p.train = shots_total - p.val;
      p.test = 30 * d.classes;
      p.scored = std::min<size_t>(static_cast<size_t>(s), static_cast<size_t>(ex.max_per_class)) * d.classes;
      out.push_back(p);
    }
  return out;
}

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  if (!in) throw IoError("cannot read " + p.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

int main(int argc, char** argv) {
  zbbench::Args a;
  a.opt("seed", "0", "seed of the cost draws")
      .opt("costs", "resample", "resample | scaled (see the header of bench/bench_scheduler.cpp)")
      .opt("plan", "", "the real run's plan.json (scaled costs; default: beside results.h5)")
      .opt("models", "32", "models of the simulated zoo")
      .opt("tasks", "11", "target data sets")
      .opt("shots", "5,10,20", "shots per class; each (data set, shot) is one plan task")
      .opt("lrs", "0.01,0.005,0.001", "the fine-tune learning-rate grid")
      .opt("selectors", "lfc,lgc,leep,knn,rsa,domain_similarity", "selectors (their needs give probe and source units)")
      .opt("workers", "8,16,32,64,128,256,512,1024", "worker counts to simulate");
  std::vector<std::string> pos;
  try {
    if (!a.parse(argc, argv, "bench_scheduler RESULTS.h5: the scheduler at seed-paper scale, simulated", &pos))
      return 0;
    if (pos.size() != 1) throw UsageError("give one merged results file (results/<exp>/results.h5)");
    const std::filesystem::path results = pos[0];
    const std::string mode = a.str("costs");
    if (mode != "resample" && mode != "scaled") throw UsageError("--costs must be resample or scaled");

    // The plan.
    Config cfg;
    cfg.finetune.lrs.clear();
    for (const auto& s : zbbench::split(a.str("lrs"), ',')) cfg.finetune.lrs.push_back(std::stod(s));
    std::vector<int> shots;
    for (const auto& s : zbbench::split(a.str("shots"), ',')) shots.push_back(std::stoi(s));
    std::vector<std::string> sel_names = zbbench::split(a.str("selectors"), ',');
    unsigned needs = kNeedFeatures;
    for (const Selector* s : selectors_from(sel_names)) needs |= s->needs();
    const bool probe_source = (needs & kNeedProbeFeatures) && (needs & kNeedSourceDomain);
    std::vector<PlanModel> zoo = seed_zoo(static_cast<int>(a.i("models")));
    int probe_model = 0;
    for (size_t m = 0; m < zoo.size(); ++m)
      if (zoo[m].kind == "generic") {
        probe_model = static_cast<int>(m);
        break;
      }
    Plan plan = make_plan(cfg, zoo, seed_tasks(static_cast<int>(a.i("tasks")), shots, cfg.extract), sel_names, needs,
                          probe_model);
    std::map<std::string, size_t> count;
    std::map<std::string, double> est_sum;
    for (const auto& u : plan.units) {
      ++count[unit_kind_name(u.kind)];
      est_sum[unit_kind_name(u.kind)] += u.cost;
    }

    // The measurements.
    std::vector<Measured> real = read_units(results);
    std::map<std::string, std::vector<double>> pool;  // kind -> seconds (resample) or seconds / estimate (scaled)
    std::string plan_path;
    if (mode == "resample") {
      for (const auto& m : real) pool[m.kind].push_back(m.seconds);
    } else {
      plan_path = a.str("plan").empty() ? (results.parent_path() / "plan.json").string() : a.str("plan");
      Plan rp = Plan::from_json(read_text(plan_path), plan_path);
      for (const auto& m : real) {
        int i = rp.find(m.id);
        if (i < 0) throw DataError(plan_path + ": no unit '" + m.id + "' of " + results.string());
        if (rp.units[static_cast<size_t>(i)].cost > 0) pool[m.kind].push_back(m.seconds / rp.units[static_cast<size_t>(i)].cost);
      }
    }
    const std::map<std::string, std::string> proxy_of = {{"probe", "finetune"}, {"source", "score"}};
    std::map<std::string, std::string> borrowed;  // kind -> proxy
    for (const auto& [kind, c] : count) {
      if (pool.count(kind) && !pool[kind].empty()) continue;
      auto p = proxy_of.find(kind);
      if (p == proxy_of.end() || !pool.count(p->second) || pool[p->second].empty())
        throw DataError(results.string() + ": /units has no " + kind + " unit and no proxy for it");
      borrowed[kind] = p->second;
    }
    std::mt19937_64 rng(static_cast<uint64_t>(a.i("seed")));
    std::vector<double> seconds(plan.units.size());
    for (size_t i = 0; i < plan.units.size(); ++i) {
      const Unit& u = plan.units[i];
      const std::string kind = unit_kind_name(u.kind);
      const bool b = borrowed.count(kind) > 0;
      const std::vector<double>& p = pool[b ? borrowed[kind] : kind];
      const double draw = p[std::uniform_int_distribution<size_t>(0, p.size() - 1)(rng)];
      if (mode == "scaled") {
        seconds[i] = u.cost * draw;
      } else if (b) {
        const std::string& pk = borrowed[kind];
        seconds[i] = draw * u.cost / (est_sum[pk] / static_cast<double>(count[pk]));
      } else {
        seconds[i] = draw;
      }
    }
    const double total = std::accumulate(seconds.begin(), seconds.end(), 0.0);
    const size_t longest_i = static_cast<size_t>(std::max_element(seconds.begin(), seconds.end()) - seconds.begin());
    const double chain_s = zoobench::longest_chain(plan, seconds);

    std::printf("bench_scheduler: zoobench %s (%s)\n", ZOOBENCH_VERSION, ZOOBENCH_GIT_SHA);
    std::printf("plan: %zu models x %zu plan tasks (%lld data sets x %zu shots) x %zu lrs; selectors %s (needs: %s)\n",
                plan.models.size(), plan.tasks.size(), a.i("tasks"), shots.size(), plan.lrs.size(),
                a.str("selectors").c_str(), needs_text(needs).c_str());
    if (!probe_source) std::printf("note: these selectors need no probe and source units\n");
    std::printf("units: %zu =", plan.units.size());
    for (const auto& [k, c] : count) std::printf(" %zu %s", c, k.c_str());
    std::printf("\nmeasured: %s, %zu units:", results.string().c_str(), real.size());
    std::map<std::string, size_t> real_count;
    for (const auto& m : real) ++real_count[m.kind];
    for (const auto& [k, c] : real_count) std::printf(" %zu %s", c, k.c_str());
    std::printf("\ncosts: %s (seed %lld)%s%s\n", mode.c_str(), a.i("seed"),
                mode == "scaled" ? ", ratios to the estimates of " : "", plan_path.c_str());
    for (const auto& [k, p] : borrowed)
      std::printf("  no measured %s unit: %s units borrow %s %s scaled by the plan's estimates\n", k.c_str(), k.c_str(),
                  p.c_str(), mode == "scaled" ? "ratios" : "seconds");
    std::printf("%-9s %6s %12s %12s %12s %12s %12s\n", "kind", "units", "mean_s", "min_s", "max_s", "sum_s", "share");
    nlohmann::json kinds = nlohmann::json::object();
    for (const auto& [k, c] : count) {
      double s = 0, lo = 1e300, hi = 0;
      for (size_t i = 0; i < plan.units.size(); ++i)
        if (k == unit_kind_name(plan.units[i].kind)) {
          s += seconds[i];
          lo = std::min(lo, seconds[i]);
          hi = std::max(hi, seconds[i]);
        }
      std::printf("%-9s %6zu %12.4f %12.4f %12.4f %12.2f %11.1f%%\n", k.c_str(), c, s / c, lo, hi, s, 100 * s / total);
      kinds[k] = {{"units", c}, {"seconds", s}, {"mean", s / c}, {"min", lo}, {"max", hi},
                  {"borrowed_from", borrowed.count(k) ? borrowed[k] : ""}};
    }
    std::printf("total work %.2f s; longest unit %.3f s (%s); longest dependency chain %.3f s\n\n", total,
                seconds[longest_i], plan.units[longest_i].id.c_str(), chain_s);

    std::printf("lower bound = max(total / W, longest chain); ratio = makespan / lower bound; "
                "utilisation = total / (W x makespan)\n");
    std::printf("%7s %12s | %12s %7s %7s | %12s %7s %7s | %s\n", "workers", "lower_bound", "dyn_makespan", "ratio",
                "util", "rr_makespan", "ratio", "util", "check");
    nlohmann::json rows = nlohmann::json::array();
    bool all_ok = true;
    for (const auto& ws : zbbench::split(a.str("workers"), ',')) {
      const int W = std::stoi(ws);
      Simulation sim[2];
      bool ok = true;
      double sim_ms[2];
      for (int p = 0; p < 2; ++p) {
        const double t0 = zbbench::now_s();
        sim[p] = simulate(plan, seconds, W, p == 0 ? Policy::Dynamic : Policy::RoundRobin);
        sim_ms[p] = (zbbench::now_s() - t0) * 1e3;
        const double busy = std::accumulate(sim[p].busy.begin(), sim[p].busy.end(), 0.0);
        ok = ok && sim[p].makespan >= sim[p].lower_bound * (1 - 1e-12) && std::abs(busy - total) <= 1e-9 * total &&
             std::abs(sim[p].utilisation - total / (W * sim[p].makespan)) <= 1e-9;
      }
      all_ok = all_ok && ok;
      std::printf("%7d %12.2f | %12.2f %7.3f %6.1f%% | %12.2f %7.3f %6.1f%% | %s\n", W, sim[0].lower_bound,
                  sim[0].makespan, sim[0].makespan / sim[0].lower_bound, 100 * sim[0].utilisation, sim[1].makespan,
                  sim[1].makespan / sim[1].lower_bound, 100 * sim[1].utilisation, ok ? "ok" : "FAILED");
      for (int p = 0; p < 2; ++p)
        rows.push_back({{"workers", W}, {"policy", p == 0 ? "dynamic" : "static"}, {"makespan", sim[p].makespan},
                        {"lower_bound", sim[p].lower_bound}, {"ratio", sim[p].makespan / sim[p].lower_bound},
                        {"utilisation", sim[p].utilisation}, {"simulate_ms", sim_ms[p]}, {"check", ok}});
    }
    nlohmann::json out = {{"bench", "scheduler"},
                          {"results", results.string()},
                          {"costs", mode},
                          {"seed", a.i("seed")},
                          {"models", plan.models.size()},
                          {"plan_tasks", plan.tasks.size()},
                          {"lrs", plan.lrs.size()},
                          {"units", plan.units.size()},
                          {"kinds", kinds},
                          {"total_seconds", total},
                          {"longest_unit_seconds", seconds[longest_i]},
                          {"longest_unit", plan.units[longest_i].id},
                          {"longest_chain_seconds", chain_s},
                          {"rows", rows},
                          {"zoobench", ZOOBENCH_VERSION}};
    std::printf("\n%s\n", out.dump().c_str());
    return all_ok ? 0 : 1;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "bench_scheduler: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_scheduler: %s\n", e.what());
    return 1;
  }
}
