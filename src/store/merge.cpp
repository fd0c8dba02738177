// Every shard of an experiment into results/<exp>/results.h5: the layout of
// a one-process run plus, on every unit's rows, who computed it and when.
#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <set>

#include "zoobench/error.h"
#include "zoobench/finetune.h"
#include "zoobench/h5_tensor.h"
#include "zoobench/io.h"
#include "zoobench/reduce.h"
#include "zoobench/selector.h"
#include "zoobench/store.h"
#include "zoobench/version.h"

namespace zoobench::store {
namespace {
using Col = h5::Table::Column;
using T = h5::Table::Type;

struct Who {
  int64_t rank = 0, ranks = 1;
  std::string host, started_utc, run_id;
  double start = 0, seconds = 0;
};

Who who_of(const h5::File& f) {
  return {f.attr_int("rank"), f.attr_int("ranks"), f.attr_string("host"), f.attr_string("started_utc"),
          f.attr_string("run_id"), f.attr_double("start"), f.attr_double("seconds")};
}

// Copies src/name (dataset or group, with attributes) to dst/as.
void copy(const h5::Group& src, const std::string& name, h5::Group& dst, const std::string& as) {
  h5::check(H5Ocopy(src.id(), name.c_str(), dst.id(), as.c_str(), H5P_DEFAULT, H5P_DEFAULT),
            "copy '" + src.where(name) + "' to '" + dst.where(as) + "'");
}

std::vector<Col> with_key(std::vector<Col> extra) {
  std::vector<Col> cols = {{"model", T::String, "zoo entry"}, {"task", T::String, "task name"},
                           {"shot", T::Int64, "training images per class (0 = all of them)"}, {"seed", T::Int64, "task seed"}};
  cols.insert(cols.end(), extra.begin(), extra.end());
  return cols;
}
const std::vector<Col> kProvenance = {
    {"rank", T::Int64, "world rank (first of its group) that computed the unit"},
    {"host", T::String, "host that computed the unit"},
    {"started_utc", T::String, "start of the run that computed the unit (a resumed run reuses older units)"},
    {"unit_seconds", T::Float64, "wall time of the whole unit"}};
std::vector<Col> plus_provenance(std::vector<Col> cols) {
  cols.insert(cols.end(), kProvenance.begin(), kProvenance.end());
  return cols;
}
}  // namespace

fs::path merge(const fs::path& exp_dir, bool partial) {
  const auto merge_t0 = std::chrono::steady_clock::now();
  const Plan plan = Plan::from_json(read_file(exp_dir / "plan.json"), (exp_dir / "plan.json").string());
  const std::string config_yaml = read_file(exp_dir / "config.yaml");
  const std::string identity = identity_digest(exp_dir);
  auto shard = [&](int unit) {
    const Unit& u = plan.units.at(static_cast<size_t>(unit));
    fs::path p = shard_path(exp_dir, u);
    if (!fs::exists(p)) throw DataError(exp_dir.string() + ": unit '" + u.id + "' is not done (no " + p.string() + ")");
    h5::File f = [&] {
      try {
        return h5::File::open(p);
      } catch (const Error& e) {  // truncated or overwritten: recomputing the unit is the cure
        throw DataError(p.string() + ": unreadable shard of unit '" + u.id + "' (" + e.what() +
                        "): delete it and rerun `zoobench run` to recompute the unit");
      }
    }();
    if (f.has_attr("schema_version") && f.attr_int("schema_version") != kShardSchemaVersion)
      throw DataError(p.string() + ": shard schema_version " + std::to_string(f.attr_int("schema_version")) +
                      ", this zoobench reads " + std::to_string(kShardSchemaVersion) + ": merge it with the zoobench that wrote it");
    if (f.has_attr("identity") && !identity.empty() && f.attr_string("identity") != identity)
      throw DataError(p.string() + ": written for another experiment (identity " + f.attr_string("identity") +
                      ", this one's " + identity + " from experiment.yaml): remove it, or merge it in its own folder");
    return f;
  };
  auto unit_of = [&](const std::string& id) {
    int u = plan.find(id);
    if (u < 0) throw DataError(exp_dir.string() + "/plan.json: no unit '" + id + "'");
    return u;
  };
  // Whether a unit is on disk; a complete merge requires them all (shard() says which is missing).
  auto done = [&](int unit) { return !partial || fs::exists(shard_path(exp_dir, plan.units.at(static_cast<size_t>(unit)))); };
  int first_done = -1;
  for (size_t u = 0; u < plan.units.size() && first_done < 0; ++u)
    if (done(static_cast<int>(u))) first_done = static_cast<int>(u);
  if (first_done < 0) throw DataError(exp_dir.string() + ": no unit is done yet");

  fs::path out = exp_dir / "results.h5";
  AtomicPath atomic(out);
  h5::File f = h5::File::create(atomic.tmp());
  std::set<std::string> runs;
  {
    h5::File first = shard(first_done);
    f.set_attr("schema_version", int64_t{4});
    f.set_attr("zoobench_version", ZOOBENCH_VERSION);
    f.set_attr("git_sha", ZOOBENCH_GIT_SHA);
    f.set_attr("created_utc", utc_now());
    f.set_attr("config_yaml", config_yaml);
    for (const char* a : {"versions", "manifest", "config_source"}) f.set_attr(a, first.attr_string(a));
    f.set_attr("threads", first.attr_int("threads"));
  }
  const size_t M = plan.models.size();
  {
    h5::Table cells(f, "cells", with_key({}));
    h5::Table scores(f, "scores", plus_provenance(with_key({{"selector", T::String, "selector name"},
                                                   {"value", T::Float64, "score; higher = better predicted transfer"},
                                                   {"seconds", T::Float64, "wall time of this score plus the per-cell arrays it reads (features, sketches)"},
                                                   {"note", T::String, "why the value cannot rank the model: degenerate features "
                                                                       "(value -inf, ranked last), a saturated score, or no "
                                                                       "source data (value NaN); empty otherwise"}})));
    h5::Table shared(f, "shared_costs", plus_provenance({{"what", T::String, "probe_features (per task) or source_class_means (per model)"},
                                                         {"model", T::String, "zoo entry"}, {"task", T::String, "task name, empty when per model"},
                                                         {"seconds", T::Float64, "shared by every score that reads it, not in /scores seconds"}}));
    h5::Table ft(f, "finetune", plus_provenance(with_key({{"lr", T::Float64, "learning rate"}, {"epochs", T::Int64, ""},
                                                {"train_acc", T::Float64, ""}, {"val_acc", T::Float64, "on the validation split carved from the shots"},
                                                {"test_acc", T::Float64, ""}, {"chosen", T::Int64, "1 = best validation accuracy of the grid"},
                                                {"seconds", T::Float64, ""}, {"ranks", T::Int64, "ranks that trained it"}})));
    h5::Table truth(f, "ground_truth", with_key({{"lr", T::Float64, "the lr chosen on validation"}, {"val_acc", T::Float64, ""},
                                                 {"test_acc", T::Float64, "the ground truth"},
                                                 {"oracle_test_acc", T::Float64, "best test accuracy over the lr grid (the seed paper's choice)"}}));
    h5::Table units(f, "units", {{"unit", T::String, "unit id"}, {"kind", T::String, "probe | source | score | finetune"},
                                 {"model", T::String, ""}, {"task", T::String, ""}, {"rank", T::Int64, ""}, {"ranks", T::Int64, ""},
                                 {"host", T::String, ""}, {"run_id", T::String, ""}, {"started_utc", T::String, ""},
                                 {"start", T::Float64, "seconds since the epoch when the unit started"},
                                 {"seconds", T::Float64, "wall time of the unit"},
                                 {"peak_rss_bytes", T::Int64, "peak resident memory of the rank while the unit ran (-1: not recorded)"}});
    // What the reducer needs of the plan: each model's kind, each task's sizes.
    h5::Table models(f, "models", {{"name", T::String, "zoo entry"},
                                   {"kind", T::String, "expert | multi_domain | generic | external"},
                                   {"arch", T::String, ""}});
    for (const auto& m : plan.models) models.append({m.name, m.kind, m.arch});
    h5::Table task_table(f, "tasks", {{"name", T::String, "task name"},
                                      {"group", T::String, "the target the task samples (its shots and seeds vary)"},
                                      {"shot", T::Int64, ""}, {"seed", T::Int64, ""}, {"classes", T::Int64, ""},
                                      {"train", T::Int64, "training images"}, {"val", T::Int64, "validation images (from the shots)"},
                                      {"test", T::Int64, "test images"}, {"scored", T::Int64, "images the selectors read"},
                                      {"missing_cells", T::Int64, "cells not done yet (0 once the run is complete)"}});
    std::vector<int64_t> missing(plan.tasks.size(), 0);
    models.flush();
    for (size_t u = 0; u < plan.units.size(); ++u) {
      const Unit& unit = plan.units[u];
      if (!done(static_cast<int>(u))) continue;
      h5::File s = shard(static_cast<int>(u));
      Who w = who_of(s);
      runs.insert(w.started_utc);
      units.append({unit.id, std::string(unit_kind_name(unit.kind)),
                    unit.model >= 0 ? plan.models[static_cast<size_t>(unit.model)].name : std::string(),
                    unit.task >= 0 ? plan.tasks[static_cast<size_t>(unit.task)].name : std::string(), w.rank, w.ranks,
                    w.host, w.run_id, w.started_utc, w.start, w.seconds,
                    s.has_attr("peak_rss_bytes") ? s.attr_int("peak_rss_bytes") : int64_t{-1}});
    }
    h5::Group& scores_group = scores.group();
    bool variants = false;
    const std::vector<const Selector*> sels = selectors_from(plan.selectors);
    for (size_t t = 0; t < plan.tasks.size(); ++t) {
      const PlanTask& task = plan.tasks[t];
      if (plan.probe_model >= 0 && done(unit_of("probe/" + task.name))) {
        h5::File s = shard(unit_of("probe/" + task.name));
        Who w = who_of(s);
        shared.append({std::string("probe_features"), s.attr_string("probe_model"), task.name, w.seconds, w.rank,
                       w.host, w.started_utc, w.seconds});
        h5::Group g = h5::ensure_group(f, "features/_probe/" + task.name);
        copy(s, "features", g, "features");
        g.set_attr("probe_model", s.attr_string("probe_model"));
      }
      // terms[selector][model] -> combine over the zoo
      std::vector<std::vector<std::vector<double>>> terms(sels.size(), std::vector<std::vector<double>>(M));
      std::vector<std::vector<double>> secs(sels.size(), std::vector<double>(M));
      std::vector<std::vector<std::string>> notes(sels.size(), std::vector<std::string>(M));
      std::vector<Who> who(M);
      // A cell is merged when its score unit and every lr of its fine-tune are done.
      std::vector<size_t> present;
      for (size_t m = 0; m < M; ++m) {
        bool all = done(unit_of("score/" + plan.models[m].name + "/" + task.name));
        for (const auto& id : plan.finetune_ids(m, t)) all = all && done(unit_of(id));
        if (all) present.push_back(m);
        else ++missing[t];
      }
      for (size_t m : present) {
        const std::string& model = plan.models[m].name;
        cells.append({model, task.name, task.shot, task.seed});
        h5::File s = shard(unit_of("score/" + model + "/" + task.name));
        who[m] = who_of(s);
        if (!variants) {
          for (auto* sel : sels) scores_group.set_attr("variant." + sel->name(), s.attr_string("variant." + sel->name()));
          variants = true;
        }
        h5::Group tg = s.open_group("terms"), sg = s.open_group("selector_seconds");
        auto names = tg.dataset("selector").read_strings();
        auto values = tg.dataset("value").read<double>();
        auto snames = sg.dataset("selector").read_strings();
        auto svals = sg.dataset("seconds").read<double>();
        for (size_t k = 0; k < sels.size(); ++k) {
          for (size_t i = 0; i < names.size(); ++i)
            if (names[i] == sels[k]->name()) terms[k][m].push_back(values[i]);
          for (size_t i = 0; i < snames.size(); ++i)
            if (snames[i] == sels[k]->name()) secs[k][m] = svals[i];
          if (terms[k][m].empty())
            throw DataError(s.filename().string() + ": no terms of selector '" + sels[k]->name() + "'");
          if (s.has_attr("note." + sels[k]->name())) notes[k][m] = s.attr_string("note." + sels[k]->name());
        }
        if (s.has("arrays")) {
          h5::Group dst = h5::ensure_group(f, "features/" + model);
          copy(s, "arrays", dst, task.name);
        }
      }
      std::vector<std::vector<double>> values(sels.size());
      for (size_t k = 0; k < sels.size(); ++k) {
        std::vector<std::vector<double>> merged;  // the present models' terms, in zoo order
        for (size_t m : present) merged.push_back(terms[k][m]);
        values[k] = combine_finite(*sels[k], merged);
      }
      for (size_t i = 0; i < present.size(); ++i)
        for (size_t k = 0; k < sels.size(); ++k) {
          const size_t m = present[i];
          scores.append({plan.models[m].name, task.name, task.shot, task.seed, sels[k]->name(), values[k][i], secs[k][m],
                         notes[k][m], who[m].rank, who[m].host, who[m].started_utc, who[m].seconds});
        }
      for (size_t m : present) {
        const std::string& model = plan.models[m].name;
        std::vector<FinetuneRun> grid;
        std::vector<Who> fw;
        std::vector<int64_t> ranks;
        for (const auto& id : plan.finetune_ids(m, t)) {
          h5::File s = shard(unit_of(id));
          if (s.has_attr("not_needed")) continue;  // an edge of the grid that did not bind on this task
          FinetuneRun r;
          r.lr = s.attr_double("lr");
          r.epochs = static_cast<int>(s.attr_int("epochs"));
          r.train_acc = s.attr_double("train_acc");
          r.val_acc = s.attr_double("val_acc");
          r.test_acc = s.attr_double("test_acc");
          r.seconds = s.attr_double("finetune_seconds");
          grid.push_back(r);
          fw.push_back(who_of(s));
        }
        CellFinetune cell = choose_lr(grid);
        for (size_t k = 0; k < grid.size(); ++k) {
          const auto& r = grid[k];
          ft.append({model, task.name, task.shot, task.seed, r.lr, int64_t{r.epochs}, r.train_acc, r.val_acc, r.test_acc,
                     int64_t{k == cell.chosen}, r.seconds, fw[k].ranks, fw[k].rank, fw[k].host, fw[k].started_utc,
                     fw[k].seconds});
        }
        truth.append({model, task.name, task.shot, task.seed, cell.best().lr, cell.best().val_acc, cell.best().test_acc,
                      cell.oracle_test_acc});
      }
    }
    for (size_t t = 0; t < plan.tasks.size(); ++t) {
      const PlanTask& pt = plan.tasks[t];
      task_table.append({pt.name, pt.group.empty() ? pt.name : pt.group, pt.shot, pt.seed, static_cast<int64_t>(pt.classes),
                         static_cast<int64_t>(pt.train), static_cast<int64_t>(pt.val), static_cast<int64_t>(pt.test),
                         static_cast<int64_t>(pt.scored), missing[t]});
    }
    task_table.flush();
    for (size_t m = 0; m < M; ++m) {
      int u = plan.find("source/" + plan.models[m].name);
      if (u < 0 || !done(u)) continue;
      h5::File s = shard(u);
      Who w = who_of(s);
      shared.append({std::string("source_class_means"), plan.models[m].name, std::string(), w.seconds, w.rank, w.host,
                     w.started_utc, w.seconds});
      h5::Group g = h5::ensure_group(f, "source_domain/" + plan.models[m].name);
      if (s.has_attr("unavailable")) {
        g.set_attr("unavailable", s.attr_string("unavailable"));
        continue;
      }
      copy(s, "class_means", g, "class_means");
      copy(s, "class_counts", g, "class_counts");
    }
    for (auto* t : {&cells, &scores, &shared, &ft, &truth, &units}) t->flush();
  }
  std::string run_list;
  for (const auto& r : runs) run_list += (run_list.empty() ? "" : ",") + r;
  f.set_attr("runs", run_list);

  // First tables: Spearman per task and selector, the zoo's gain over the generic model.
  {
    auto read_col = [&](const char* table, const char* col) { return f.open_group(table).dataset(col); };
    auto s_task = read_col("scores", "task").read_strings(), s_sel = read_col("scores", "selector").read_strings();
    auto s_val = read_col("scores", "value").read<double>();
    auto s_note = read_col("scores", "note").read_strings();
    auto g_task = read_col("ground_truth", "task").read_strings(), g_model = read_col("ground_truth", "model").read_strings();
    auto g_acc = read_col("ground_truth", "test_acc").read<double>();
    h5::Group tables = f.create_group("tables");
    h5::Table rho_t(tables, "spearman", {{"task", T::String, ""}, {"selector", T::String, ""},
                                         {"rho", T::Float64, "Spearman correlation of scores and fine-tuned test accuracy over the zoo"},
                                         {"models", T::Int64, ""}});
    h5::Table gain_t(tables, "gain", {{"task", T::String, ""}, {"best_model", T::String, ""}, {"best_acc", T::Float64, ""},
                                      {"generic_model", T::String, ""}, {"generic_acc", T::Float64, ""},
                                      {"gain", T::Float64, "best_acc - generic_acc"}});
    auto g_score_model = read_col("scores", "model").read_strings();
    for (const auto& task : plan.tasks) {
      std::vector<std::string> names;  // the task's merged models, zoo order
      std::vector<double> acc;
      for (size_t i = 0; i < g_task.size(); ++i)
        if (g_task[i] == task.name) names.push_back(g_model[i]), acc.push_back(g_acc[i]);
      if (acc.empty()) continue;
      for (const auto& sel : plan.selectors) {
        std::map<std::string, double> by_model;
        bool saturated = false;  // a value at a limit reached by construction ranks nothing
        for (size_t i = 0; i < s_task.size(); ++i)
          if (s_task[i] == task.name && s_sel[i] == sel) {
            by_model[g_score_model[i]] = s_val[i];
            saturated = saturated || cannot_rank(s_note[i], s_val[i]);
          }
        std::vector<double> v;
        for (const auto& n : names) v.push_back(by_model.at(n));
        rho_t.append({task.name, sel, saturated ? std::numeric_limits<double>::quiet_NaN() : spearman(v, acc),
                      static_cast<int64_t>(names.size())});
      }
      size_t best = static_cast<size_t>(std::max_element(acc.begin(), acc.end()) - acc.begin());
      for (size_t i = 0; i < names.size(); ++i)
        for (const auto& pm : plan.models)
          if (pm.name == names[i] && pm.kind == "generic")
            gain_t.append({task.name, names[best], acc[best], names[i], acc[i], acc[best] - acc[i]});
    }
    rho_t.flush();
    gain_t.flush();
  }
  // The harness's own cost, with /units (bench/harness_overhead.py): reading
  // every shard and writing this file, all but the final close and rename.
  f.set_attr("merge_seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - merge_t0).count());
  f.close();
  atomic.commit();
  return out;
}

}  // namespace zoobench::store
