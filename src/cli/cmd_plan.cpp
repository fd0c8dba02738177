// `zoobench plan <config>`: the grid, what it needs, what it costs, how to split it.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>

#include "cli.h"
#include "zoobench/dataset.h"
#include "zoobench/error.h"
#include "zoobench/planning.h"
#include "zoobench/scheduler.h"

namespace zoobench::cli {
namespace {

std::string hms(double s) {
  char b[48];
  if (s < 90) std::snprintf(b, sizeof b, "%.0f s", s);
  else if (s < 5400) std::snprintf(b, sizeof b, "%.1f min", s / 60);
  else std::snprintf(b, sizeof b, "%d h %02d min", static_cast<int>(s / 3600), static_cast<int>(s / 60) % 60);
  return b;
}

template <class T>
std::string braces(const std::set<T>& v) {
  std::string s = "{";
  for (const auto& x : v) {
    char b[32];
    if constexpr (std::is_floating_point_v<T>) std::snprintf(b, sizeof b, "%g", x);
    else std::snprintf(b, sizeof b, "%lld", static_cast<long long>(x));
    s += (s.size() > 1 ? ", " : "") + std::string(b);
  }
  return s + "}";
}

}  // namespace

namespace {
void print_plan(const Config& c, const CampaignPlan& cp, int ranks, std::ostream& out) {
  const Plan& p = cp.plan;
  out << "experiment " << c.name << " (" << c.source << ")\n\npaths\n";
  for (const auto& x : cp.paths) {
    char line[512];
    std::snprintf(line, sizeof line, "  %-8s %-36s %s", x.present ? "ok" : "missing", x.what.c_str(), x.path.string().c_str());
    out << line << (x.present || x.note.empty() ? "" : "  (" + x.note + ")") << "\n";
  }
  std::set<std::string> datasets, groups;
  std::set<int64_t> shots, seeds;
  for (const auto& t : p.tasks) shots.insert(t.shot), seeds.insert(t.seed), groups.insert(t.group);
  for (const auto& t : c.tasks) datasets.insert(t.dataset);
  std::set<double> lrs(p.lrs.begin(), p.lrs.end());
  std::map<std::string, size_t> kinds;
  std::map<std::string, double> kind_s;
  double total = 0, longest = 0;
  for (size_t u = 0; u < p.units.size(); ++u) {
    const std::string k = unit_kind_name(p.units[u].kind);
    ++kinds[k];
    kind_s[k] += cp.seconds[u];
    total += cp.seconds[u];
    longest = std::max(longest, cp.seconds[u]);
  }
  out << "\ngrid: " << p.models.size() << " zoo entries x " << p.tasks.size() << " tasks = " << p.models.size() * p.tasks.size()
      << " cells; " << p.lrs.size() << " learning rates " << braces(lrs) << "; " << p.selectors.size() << " selectors\n";
  std::string shot_text = braces(shots);
  if (shots.count(0)) {  // shots: all
    shots.erase(0);
    shot_text = shots.empty() ? "{all}" : braces(shots).substr(0, braces(shots).size() - 1) + ", all}";
  }
  out << "  tasks: " << datasets.size() << " data sets, shots " << shot_text << ", seeds " << braces(seeds) << "\n";
  out << "  models:";
  for (size_t m = 0; m < p.models.size(); ++m) out << (m ? ", " : " ") << p.models[m].name;
  out << "\n  units: ";
  bool first = true;
  for (const char* k : {"probe", "source", "score", "finetune"}) {
    if (!kinds.count(k)) continue;
    out << (first ? "" : ", ") << kinds[k] << " " << k;
    first = false;
  }
  out << " = " << p.units.size() << "\n";
  if (!p.edge_lrs.empty()) {
    size_t edge_units = 0;
    for (const auto& u : p.units) edge_units += u.edge != 0;
    std::set<double> beyond(p.edge_lrs.begin(), p.edge_lrs.end());
    out << "  of them " << edge_units << " fine-tunes beyond the grid's edges " << braces(beyond)
        << " (finetune.extend_edges): each runs only on a task where its edge binds, so the cost below is an upper bound\n";
  }

  const bool gpu = c.execution.device == "cuda";
  char line[256];
  std::snprintf(line, sizeof line, "\ncost: %.2f %s (%.0f rank-seconds; a rank is %s)\n", total / 3600.0,
                gpu ? "GPU-hours" : "core-hours", total, gpu ? "one GPU" : "one core at one thread");
  out << line << "  ";
  first = true;
  for (const char* k : {"finetune", "score", "probe", "source"}) {
    if (!kind_s.count(k) || total <= 0) continue;
    std::snprintf(line, sizeof line, "%s%s %.1f %%", first ? "" : ", ", k, 100.0 * kind_s[k] / total);
    out << line;
    first = false;
  }
  out << "\n  seconds: " << cp.calibration << "\n";
  for (const auto& a : cp.assumptions) out << "  assumed: " << a << "\n";

  if (!p.units.empty()) {
    const int suggested = suggest_workers(p, cp.seconds);
    out << "\nshards: " << suggested << (suggested == 1 ? " worker" : " workers")
        << " suggested (the most that dynamic dispatch keeps 80 % busy with 10 min of work or more each); longest unit "
        << hms(longest) << ", longest dependency chain " << hms(longest_chain(p, cp.seconds)) << "\n";
    for (int w : {suggested, ranks}) {
      if (w <= 0) continue;
      const Simulation d = simulate(p, cp.seconds, w, Policy::Dynamic), s = simulate(p, cp.seconds, w, Policy::RoundRobin);
      std::snprintf(line, sizeof line,
                    "  %4d %s: makespan %s, utilisation %.1f %% (dynamic); static round-robin %s, %.1f %%; bound %s\n", w,
                    w == ranks ? "ranks" : "workers", hms(d.makespan).c_str(), 100 * d.utilisation, hms(s.makespan).c_str(),
                    100 * s.utilisation, hms(d.lower_bound).c_str());
      out << line;
      if (w == ranks) break;
    }
  }
}
}  // namespace

int cmd_plan(const Args& args) {
  po::options_description opts("zoobench plan");
  opts.add_options()("config", po::value<std::string>()->required(), "experiment config (YAML)")(
      "data-dir", po::value<std::string>()->default_value(""), "packed data sets (default: $ZOOBENCH_DATA_DIR, config, ./data)")(
      "ranks", po::value<int>()->default_value(0), "also simulate the schedule on N ranks (or array workers)")(
      "zoo-dir", po::value<std::string>(), "override zoo.dir")("results-dir", po::value<std::string>(), "override results_dir")(
      "measured-from", po::value<std::string>()->default_value(""),
      "an experiment folder whose shards' seconds calibrate the estimate (default: this experiment's own)");
  po::positional_options_description pos;
  pos.add("config", 1);
  auto vm = parse("zoobench plan <config> [--ranks N] [--data-dir DIR] [--measured-from results/EXP]", opts, args, &pos);
  if (!vm) return 0;
  const int ranks = (*vm)["ranks"].as<int>();
  if (ranks < 0) throw UsageError("--ranks must not be negative, got " + std::to_string(ranks));
  Config c = load_config((*vm)["config"].as<std::string>(), /*allow_unset_env=*/true);  // listed as missing paths
  if (vm->count("zoo-dir")) c.zoo.dir = (*vm)["zoo-dir"].as<std::string>();
  if (vm->count("results-dir")) c.results_dir = (*vm)["results-dir"].as<std::string>();
  const auto data_dir = resolve_data_dir((*vm)["data-dir"].as<std::string>(), c.data_dir);
  const std::string from = (*vm)["measured-from"].as<std::string>();
  if (!from.empty() && !std::filesystem::is_directory(from))
    throw UsageError("--measured-from: '" + from + "' is not an experiment folder");
  CampaignPlan cp = plan_campaign(c, data_dir, from);
  print_plan(c, cp, ranks, std::cout);
  return 0;
}

}  // namespace zoobench::cli
