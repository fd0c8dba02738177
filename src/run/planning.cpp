#include "zoobench/planning.h"

#include <algorithm>
#include <map>
#include <sstream>

#include "zoobench/dataset.h"
#include "zoobench/error.h"
#include "zoobench/extract.h"
#include "zoobench/h5.h"
#include "zoobench/model.h"
#include "zoobench/pack.h"
#include "zoobench/scheduler.h"
#include "zoobench/selector.h"
#include "zoobench/store.h"
#include "zoobench/task.h"
#include "zoobench/zoo.h"

namespace zoobench {
namespace fs = std::filesystem;

namespace {

std::vector<PlanModel> models_from_config(const Config& c) {
  std::vector<PlanModel> out;
  for (const auto& s : c.zoo.models) {
    const std::string kind = s.kind == ModelSpec::Kind::MultiDomain ? "multi_domain"
                             : s.kind == ModelSpec::Kind::Generic   ? "generic"
                                                                    : "expert";
    std::vector<std::string> names{s.name};
    if (s.kind == ModelSpec::Kind::MultiDomain) {
      names.clear();
      for (const auto& d : s.domains) names.push_back(s.name + "/" + d);
    }
    for (const auto& n : names) out.push_back({n, "builtin", s.arch, s.width, 1, 32, kind});
  }
  return out;
}

}  // namespace

CampaignPlan plan_campaign(const Config& c, const fs::path& data_dir, const fs::path& measured_from) {
  CampaignPlan cp;
  // ---- the zoo
  const fs::path manifest = manifest_path(c);
  std::vector<PlanModel> models;
  const bool external = !c.zoo.manifest.empty();
  if (fs::exists(manifest)) {
    cp.paths.push_back({"zoo manifest", manifest, true, ""});
    Manifest m = Manifest::load(manifest);
    for (const auto& e : m.entries) {
      const fs::path w = e.unset_env.empty() ? m.dir / e.weights : fs::path(e.weights);
      if (!fs::exists(w))
        cp.paths.push_back({"weights of zoo entry " + e.name, w, false,
                            !e.unset_env.empty() ? "${" + e.unset_env + "} is not set here"
                            : external           ? "export it (tools/export_torchscript.py) before the grid runs"
                                                 : "trained by the prepare step"});
      else if (e.sha256.empty())  // `run` would refuse it (LoadRules): say so before a campaign is submitted
        cp.paths.push_back({"sha256 of zoo entry " + e.name, manifest, false,
                            "not pinned: zoobench zoo pin " + manifest.string() +
                                (outside_zoo(m, w).outside ? " --allow-outside-zoo" : "")});
      models.push_back({e.name, e.format, e.arch, e.width, e.in_channels, e.input_size, e.kind});
    }
  } else if (external) {
    cp.paths.push_back({"zoo manifest", manifest, false, "an external zoo cannot be planned without it"});
    cp.assumptions.push_back("the zoo: its manifest is missing, so the plan has no models");
  } else {
    cp.paths.push_back({"zoo manifest", manifest, false, "written when the prepare step trains the zoo"});
    models = models_from_config(c);
    cp.assumptions.push_back("the zoo's input channels: 1 (known once it is trained)");
  }

  // ---- the tasks
  std::map<std::string, ImageSet> sets;
  std::vector<std::string> builtin = builtin_domains();
  std::vector<PlanTask> tasks;
  std::map<std::string, bool> noted;
  for (const auto& spec : c.tasks) {
    const fs::path p = packed_path(data_dir, spec.dataset);
    if (!noted.count(spec.dataset)) {
      const bool is_builtin = std::find(builtin.begin(), builtin.end(), spec.dataset) != builtin.end();
      noted[spec.dataset] = fs::exists(p);
      cp.paths.push_back({"packed data set " + spec.dataset, p, fs::exists(p),
                          is_builtin ? "packed from the installed packages by the prepare step"
                                     : "pack it: zoobench data pack --folder DIR --name " + spec.dataset});
    }
    if (noted[spec.dataset]) {
      auto it = sets.find(spec.dataset);
      if (it == sets.end()) it = sets.emplace(spec.dataset, read_packed(p)).first;
      const Task t = sample_task(spec, it->second);
      tasks.push_back({spec.name, spec.shots, static_cast<int64_t>(spec.seed), t.train.size(), t.val.size(),
                       t.test.size(), scored_samples(t, c.extract.max_per_class).size(), t.classes(), spec.group, spec.min_steps});
    } else {
      // Sizes from the spec alone: the class count is only known from the data.
      const size_t classes = spec.classes.empty() ? 10 : spec.classes.size();
      const bool all = spec.shots == TaskSpec::kAllShots;
      const size_t shots = all ? 100 : static_cast<size_t>(spec.shots);
      const size_t val = std::min(shots - 1, static_cast<size_t>(spec.val_fraction * static_cast<double>(shots) + 0.5));
      const size_t test = static_cast<size_t>(spec.test_per_class > 0 ? spec.test_per_class : 50);
      const size_t per = std::min<size_t>(shots, c.extract.max_per_class > 0 ? static_cast<size_t>(c.extract.max_per_class) : shots);
      tasks.push_back({spec.name, spec.shots, static_cast<int64_t>(spec.seed), (shots - val) * classes, val * classes,
                       test * classes, per * classes, classes, spec.group, spec.min_steps});
      if (noted.count(spec.dataset + "#assumed") == 0) {
        noted[spec.dataset + "#assumed"] = true;
        cp.assumptions.push_back("data set " + spec.dataset + ": " + std::to_string(classes) + " classes" +
                                 (spec.classes.empty() ? " (assumed)" : "") + ", " + std::to_string(test) +
                                 " test images a class" + (spec.test_per_class > 0 ? "" : " (assumed)"));
      }
      if (all && noted.count(spec.dataset + "#all") == 0) {
        noted[spec.dataset + "#all"] = true;
        cp.assumptions.push_back("data set " + spec.dataset + " at shots: all: 100 training images a class (assumed)");
      }
    }
  }

  // A path still holding "${NAME}" is missing because NAME is unset here (a
  // config planned on a laptop for a cluster's file systems): say that.
  for (auto& p : cp.paths) {
    const std::string s = p.path.string();
    const size_t at = s.find("${");
    if (p.present || at == std::string::npos) continue;
    p.note = s.substr(at, s.find('}', at) - at + 1) + " is not set here";
  }

  // ---- the units
  std::vector<const Selector*> sels = selectors_from(c.selectors);
  unsigned needs = 0;
  std::vector<std::string> names;
  for (auto* s : sels) needs |= s->needs(), names.push_back(s->name());
  int probe = -1;
  for (size_t m = 0; m < models.size(); ++m)
    if (c.extract.probe_model.empty() ? models[m].kind == "generic" : models[m].name == c.extract.probe_model)
      probe = static_cast<int>(m);
  cp.plan = make_plan(c, models, tasks, names, needs, probe);

  // ---- seconds: measured where a shard says, else the estimate scaled by
  // what the measured units of the same kind took against their estimate
  const fs::path exp = measured_from.empty() ? fs::path(c.results_dir) / c.name : measured_from;
  const size_t n = cp.plan.units.size();
  cp.seconds.assign(n, -1.0);
  std::map<UnitKind, std::pair<double, double>> ratio;  // kind -> (measured, estimated)
  for (size_t u = 0; u < n; ++u) {
    const Unit& unit = cp.plan.units[u];
    const fs::path shard = store::shard_path(exp, unit);
    if (!fs::exists(shard)) continue;
    try {
      h5::File f = h5::File::open(shard);
      if (!f.has_attr("seconds")) continue;
      cp.seconds[u] = f.attr_double("seconds");
      ++cp.measured;
      // An edge of the grid found not needed took milliseconds: no measure of a fine-tune's cost.
      if (f.has_attr("not_needed")) continue;
      ratio[unit.kind].first += cp.seconds[u];
      ratio[unit.kind].second += unit.cost;
    } catch (const Error&) {
      // a shard being written this instant: leave it to the estimate
    }
  }
  double all_m = 0, all_e = 0;
  const bool gpu = c.execution.device == "cuda";
  for (auto& [k, r] : ratio) all_m += r.first, all_e += r.second;
  std::ostringstream how;
  if (cp.measured == 0) {
    how << "per-architecture estimate (forward multiply-adds at an assumed "
        << (gpu ? "10 TFLOP/s a GPU" : "2 GFLOP/s a rank") << "): no measured units yet";
  } else if (cp.measured == n) {
    how << "all " << n << " units measured in " << exp.string();
  } else {
    how << cp.measured << " of " << n << " units measured in " << exp.string() << "; the others scaled by measured/estimated per kind (";
    bool first = true;
    for (auto& [k, r] : ratio) {
      how << (first ? "" : ", ") << unit_kind_name(k) << " x" << (r.second > 0 ? r.first / r.second : 1.0);
      first = false;
    }
    how << ")";
  }
  cp.calibration = how.str();
  for (size_t u = 0; u < n; ++u) {
    if (cp.seconds[u] >= 0) continue;
    const Unit& unit = cp.plan.units[u];
    auto it = ratio.find(unit.kind);
    const double f = it != ratio.end() && it->second.second > 0 ? it->second.first / it->second.second
                     : all_e > 0                                ? all_m / all_e
                     : gpu                                      ? 2e9 / 1e13  // the plan's seconds assume 2 GFLOP/s
                                                                : 1.0;
    cp.seconds[u] = unit.cost * f;
  }
  return cp;
}

int suggest_workers(const Plan& plan, const std::vector<double>& seconds, double min_utilisation, double min_work_s,
                    int max_workers) {
  double total = 0;
  for (double s : seconds) total += s;
  int best = 1;
  for (int w = 2; w <= max_workers; w *= 2) {
    if (static_cast<size_t>(w) > plan.units.size() || total / w < min_work_s) break;
    if (simulate(plan, seconds, w, Policy::Dynamic).utilisation < min_utilisation) break;
    best = w;
  }
  return best;
}

}  // namespace zoobench
