// `zoobench status <config>`: where an experiment stands: units done, in
// flight and failed, and the Slurm jobs of its last submission.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli.h"
#include "zoobench/error.h"
#include "zoobench/io.h"
#include "zoobench/owner.h"
#include "zoobench/plan.h"
#include "zoobench/slurm.h"
#include "zoobench/store.h"

namespace zoobench::cli {
namespace fs = std::filesystem;

int cmd_status(const Args& args) {
  po::options_description opts("zoobench status");
  opts.add_options()("config", po::value<std::string>()->required(), "experiment config (YAML)")(
      "jobs-dir", po::value<std::string>()->default_value("jobs"), "where `zoobench submit` wrote jobs/<exp>/")(
      "results-dir", po::value<std::string>(), "override results_dir");
  po::positional_options_description pos;
  pos.add("config", 1);
  auto vm = parse("zoobench status <config> [--jobs-dir DIR]", opts, args, &pos);
  if (!vm) return 0;
  Config c = load_config((*vm)["config"].as<std::string>(), /*allow_unset_env=*/true);
  if (vm->count("results-dir")) c.results_dir = (*vm)["results-dir"].as<std::string>(), path_overridden(c, "results_dir");
  require_env(c, {"results_dir"});  // the only path status reads
  const fs::path exp = fs::path(c.results_dir) / c.name;
  const fs::path jobs = fs::path((*vm)["jobs-dir"].as<std::string>()) / c.name;
  bool trouble = false;

  std::cout << "experiment " << c.name << " (" << exp.string() << ")\n";
  if (!fs::exists(exp / "plan.json")) {
    std::cout << "  not prepared yet: no " << (exp / "plan.json").string() << "\n";
  } else {
    const Plan plan = Plan::from_json(read_file(exp / "plan.json"), (exp / "plan.json").string());
    const std::vector<char> done = store::done_units(exp, plan);
    std::map<std::string, std::pair<size_t, size_t>> by_kind;  // kind -> (done, total)
    for (size_t u = 0; u < plan.units.size(); ++u) {
      auto& k = by_kind[unit_kind_name(plan.units[u].kind)];
      k.first += done[u] ? 1 : 0;
      ++k.second;
    }
    const size_t n_done = static_cast<size_t>(std::count(done.begin(), done.end(), 1));
    std::cout << "  units: " << n_done << " of " << plan.units.size() << " done (";
    bool first = true;
    for (const char* k : {"probe", "source", "score", "finetune"}) {
      if (!by_kind.count(k)) continue;
      std::cout << (first ? "" : ", ") << k << " " << by_kind[k].first << "/" << by_kind[k].second;
      first = false;
    }
    std::cout << ")\n";
    if (fs::exists(exp / "results.h5")) std::cout << "  merged: " << (exp / "results.h5").string() << "\n";
    // Claims: units in flight in independent workers, and claims whose holder is gone.
    const store::Owner me = store::Owner::self();
    size_t live = 0, stale = 0;
    std::error_code ec;
    if (fs::is_directory(exp / "claims"))
      for (const auto& e : fs::directory_iterator(exp / "claims", ec)) {
        const auto kv = store::read_keys(e.path());
        if (kv.empty()) continue;
        (store::owner_gone(store::Owner::from_keys(kv), me) ? stale : live) += 1;
      }
    if (live || stale)
      std::cout << "  claims: " << live << " unit(s) in flight" << (stale ? ", " + std::to_string(stale) + " held by workers that are gone (taken over on the next run)" : "") << "\n";
    if (fs::is_directory(exp / "failed"))
      for (const auto& e : fs::directory_iterator(exp / "failed", ec)) {
        auto kv = store::read_keys(e.path());
        if (kv.empty()) continue;
        trouble = true;
        std::cout << "  FAILED unit " << kv["unit"] << ": " << kv["error"] << " (" << store::Owner::from_keys(kv).describe()
                  << ")\n";
      }
  }

  if (fs::exists(jobs / "jobs.json")) {
    nlohmann::json rec;
    try {
      rec = nlohmann::json::parse(read_file(jobs / "jobs.json"));
    } catch (const nlohmann::json::exception& e) {
      throw DataError((jobs / "jobs.json").string() + ": not a zoobench submission record: " + e.what());
    }
    std::cout << "jobs (submitted " << rec.value("submitted_utc", "?") << ", " << rec.value("mode", "?") << " mode):\n";
    for (const char* name : {"prepare", "grid", "reduce"}) {
      if (!rec["jobs"].contains(name)) continue;
      const std::string id = rec["jobs"][name].get<std::string>();
      const auto states = slurm::job_states(id);
      if (states.empty()) {
        std::cout << "  " << name << " " << id << ": no longer known to Slurm (ended more than MinJobAge ago)\n";
        continue;
      }
      std::map<std::string, int> count;
      for (const auto& s : states) ++count[s.state];
      std::cout << "  " << name << " " << id << ":";
      for (const auto& [st, n] : count) std::cout << " " << st << (states.size() > 1 ? " x" + std::to_string(n) : "");
      std::cout << "\n";
      for (const auto& s : states) {
        if (s.state == "FAILED" || s.state == "NODE_FAIL" || s.state == "TIMEOUT" || s.state == "OUT_OF_MEMORY" ||
            (s.state == "CANCELLED" && s.reason != "DependencyNeverSatisfied")) {
          trouble = true;
          std::cout << "    " << s.id << " " << s.state << " exit " << s.exit_code << " on " << s.node << "; its log: "
                    << (jobs / "logs").string() << "/\n";
        } else if (s.state == "CANCELLED") {
          trouble = true;
          std::cout << "    " << s.id << " was cancelled by Slurm: the job it waited for did not succeed\n";
        }
      }
    }
    if (trouble)
      std::cout << "to resume: fix the cause above, then resubmit the same way (finished units are kept):\n  "
                << rec.value("command", "zoobench submit <config>") << "\n";
  } else {
    std::cout << "jobs: none submitted (no " << (jobs / "jobs.json").string() << ")\n";
  }
  return trouble ? 1 : 0;
}

}  // namespace zoobench::cli
