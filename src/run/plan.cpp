#include "zoobench/plan.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>

#include "zoobench/error.h"
#include "zoobench/lr_grid.h"
#include "zoobench/selector.h"

namespace zoobench {

const char* unit_kind_name(UnitKind k) {
  switch (k) {
    case UnitKind::Probe: return "probe";
    case UnitKind::Source: return "source";
    case UnitKind::Score: return "score";
    case UnitKind::Finetune: return "finetune";
  }
  return "?";
}

double forward_flops(const PlanModel& m) {
  const double w = m.width, c = m.in_channels, s = static_cast<double>(m.input_size) * m.input_size / 1024.0;
  // An external network's architecture is unknown: assume a ResNet-50's 4.1 G
  // multiply-adds at 224 x 224, scaled with the input's area.
  if (m.format != "builtin") return 4.1e9 * (static_cast<double>(m.input_size) * m.input_size) / (224.0 * 224.0);
  if (m.arch == "cnn") return 9.0 * (1024 * c * w + 256 * w * 2 * w + 64 * 2 * w * 4 * w) * s;
  const double n = m.arch == "resnet8" ? 1 : m.arch == "resnet14" ? 2 : 3;
  // stem + three stages of n blocks of two 3x3 convolutions (w at 32x32, 2w at 16x16, 4w at 8x8)
  return 9.0 * (1024 * c * w + n * 2 * (1024 * w * w + 256 * 4 * w * w + 64 * 16 * w * w)) * s;
}

namespace {
std::string lr_text(double lr) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", lr);
  return buf;
}
}  // namespace

std::string encode_id(const std::string& id) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char ch : id) {
    if (std::isalnum(ch) || ch == '.' || ch == '_' || ch == '-') {
      out += static_cast<char>(ch);
    } else {
      out += '%';
      out += hex[ch >> 4];
      out += hex[ch & 15];
    }
  }
  return out;
}

std::vector<std::string> Plan::finetune_ids(size_t model, size_t task) const {
  std::vector<std::string> ids;
  const std::string stem = "finetune/" + models.at(model).name + "/" + tasks.at(task).name + "/";
  for (double lr : lrs) ids.push_back(stem + lr_text(lr));
  for (double lr : edge_lrs) ids.push_back(stem + lr_text(lr));
  return ids;
}

int Plan::find(const std::string& id) const {
  for (size_t i = 0; i < units.size(); ++i)
    if (units[i].id == id) return static_cast<int>(i);
  return -1;
}

Plan make_plan(const Config& c, std::vector<PlanModel> models, std::vector<PlanTask> tasks,
               std::vector<std::string> selector_names, unsigned needs, int probe_model) {
  Plan p;
  p.models = std::move(models);
  p.tasks = std::move(tasks);
  p.lrs = c.finetune.lrs;
  p.selectors = std::move(selector_names);
  p.probe_model = (needs & kNeedProbeFeatures) ? probe_model : -1;
  // Costs in forward-pass multiply-adds; a backward pass costs two forwards.
  std::vector<int> probe_of(p.tasks.size(), -1), source_of(p.models.size(), -1);
  if (p.probe_model >= 0) {
    const double f = forward_flops(p.models[static_cast<size_t>(p.probe_model)]);
    for (size_t t = 0; t < p.tasks.size(); ++t) {
      const auto& task = p.tasks[t];
      probe_of[t] = static_cast<int>(p.units.size());
      p.units.push_back({"probe/" + task.name, UnitKind::Probe, p.probe_model, static_cast<int>(t), -1, {},
                         f * (3.0 * c.extract.probe_epochs * static_cast<double>(task.train + task.val) + task.scored)});
    }
  }
  if (needs & kNeedSourceDomain)
    for (size_t m = 0; m < p.models.size(); ++m) {
      source_of[m] = static_cast<int>(p.units.size());
      // Source classes are unknown before loading the data: assume 20 classes of source_per_class images.
      p.units.push_back({"source/" + p.models[m].name, UnitKind::Source, static_cast<int>(m), -1, -1, {},
                         forward_flops(p.models[m]) * 20.0 * c.extract.source_per_class});
    }
  for (size_t t = 0; t < p.tasks.size(); ++t)
    for (size_t m = 0; m < p.models.size(); ++m) {
      const auto& task = p.tasks[t];
      const double f = forward_flops(p.models[m]), n = static_cast<double>(task.scored);
      double cost = f * n;
      if (needs & kNeedGradSketch) cost += f * n * 3.0 * c.extract.lgc_projections;
      cost += n * n * 64.0 * static_cast<double>(p.selectors.size());  // the scores themselves: small, grows as N^2
      Unit u{"score/" + p.models[m].name + "/" + task.name, UnitKind::Score, static_cast<int>(m), static_cast<int>(t), -1,
             {}, cost};
      if (probe_of[t] >= 0) u.deps.push_back(probe_of[t]);
      if (source_of[m] >= 0) u.deps.push_back(source_of[m]);
      p.units.push_back(u);
    }
  auto finetune_cost = [&](const PlanTask& task, size_t m) {
    FinetuneConfig ft = c.finetune;
    if (task.min_steps >= 0) ft.min_steps = task.min_steps;
    return forward_flops(p.models[m]) *
           (3.0 * finetune_epochs(ft, static_cast<int64_t>(task.train)) * static_cast<double>(task.train) +
            static_cast<double>(task.train + task.val + task.test));
  };
  std::vector<std::vector<int>> grid_of(p.tasks.size());
  for (size_t t = 0; t < p.tasks.size(); ++t)
    for (size_t m = 0; m < p.models.size(); ++m)
      for (size_t k = 0; k < p.lrs.size(); ++k) {
        grid_of[t].push_back(static_cast<int>(p.units.size()));
        p.units.push_back({"finetune/" + p.models[m].name + "/" + p.tasks[t].name + "/" + lr_text(p.lrs[k]),
                           UnitKind::Finetune, static_cast<int>(m), static_cast<int>(t), static_cast<int>(k), {},
                           finetune_cost(p.tasks[t], m)});
      }
  if (c.finetune.extend_edges && p.lrs.size() > 1) {
    const auto [lo, hi] = std::minmax_element(p.lrs.begin(), p.lrs.end());
    p.edge_lrs = {*hi * kEdgeFactor, *lo / kEdgeFactor};
    for (size_t t = 0; t < p.tasks.size(); ++t)
      for (size_t m = 0; m < p.models.size(); ++m)
        for (size_t k = 0; k < p.edge_lrs.size(); ++k) {
          Unit u{"finetune/" + p.models[m].name + "/" + p.tasks[t].name + "/" + lr_text(p.edge_lrs[k]), UnitKind::Finetune,
                 static_cast<int>(m), static_cast<int>(t), static_cast<int>(k), grid_of[t], finetune_cost(p.tasks[t], m)};
          u.edge = k == 0 ? 1 : -1;
          p.units.push_back(std::move(u));
        }
  }
  // From multiply-adds to rough seconds at ~2 GFLOP/s per rank: only ratios matter.
  for (auto& u : p.units) u.cost = 2.0 * u.cost / 2e9;
  return p;
}

std::string Plan::to_json() const {
  nlohmann::json j;
  for (const auto& m : models)
    j["models"].push_back({{"name", m.name}, {"format", m.format}, {"arch", m.arch}, {"width", m.width},
                           {"in_channels", m.in_channels}, {"input_size", m.input_size}, {"kind", m.kind}});
  for (const auto& t : tasks)
    j["tasks"].push_back({{"name", t.name}, {"shot", t.shot}, {"seed", t.seed}, {"train", t.train}, {"val", t.val},
                          {"test", t.test}, {"scored", t.scored}, {"classes", t.classes},
                          {"group", t.group.empty() ? t.name : t.group}, {"min_steps", t.min_steps}});
  j["lrs"] = lrs;
  j["edge_lrs"] = edge_lrs;
  j["selectors"] = selectors;
  j["probe_model"] = probe_model;
  for (const auto& u : units)
    j["units"].push_back({{"id", u.id}, {"kind", unit_kind_name(u.kind)}, {"model", u.model}, {"task", u.task},
                          {"lr", u.lr}, {"edge", u.edge}, {"deps", u.deps}, {"cost", u.cost}});
  return j.dump(1) + "\n";
}

Plan Plan::from_json(const std::string& text, const std::string& where) {
  Plan p;
  try {
    auto j = nlohmann::json::parse(text);
    for (const auto& m : j.at("models"))
      p.models.push_back({m.at("name"), m.at("format"), m.at("arch"), m.at("width"), m.at("in_channels"),
                          m.at("input_size"), m.at("kind")});
    for (const auto& t : j.at("tasks"))
      p.tasks.push_back({t.at("name"), t.at("shot"), t.at("seed"), t.at("train"), t.at("val"), t.at("test"),
                         t.at("scored"), t.at("classes"), t.value("group", t.at("name").get<std::string>()),
                         t.value("min_steps", -1)});
    p.lrs = j.at("lrs").get<std::vector<double>>();
    p.edge_lrs = j.value("edge_lrs", std::vector<double>{});
    p.selectors = j.at("selectors").get<std::vector<std::string>>();
    p.probe_model = j.at("probe_model");
    for (const auto& u : j.at("units")) {
      Unit x;
      x.id = u.at("id");
      const std::string kind = u.at("kind");
      x.kind = kind == "probe" ? UnitKind::Probe : kind == "source" ? UnitKind::Source
             : kind == "score" ? UnitKind::Score : UnitKind::Finetune;
      x.model = u.at("model");
      x.task = u.at("task");
      x.lr = u.at("lr");
      x.edge = u.value("edge", 0);
      x.deps = u.at("deps").get<std::vector<int>>();
      x.cost = u.at("cost");
      p.units.push_back(std::move(x));
    }
  } catch (const nlohmann::json::exception& e) {
    throw DataError(where + ": not a zoobench plan: " + e.what());
  }
  return p;
}

}  // namespace zoobench
