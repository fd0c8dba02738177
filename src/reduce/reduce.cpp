// results.h5 -> the tables that answer "which selector predicts fine-tuning
// best, at which cost, and how much does a zoo gain over one generic model?"
// Measuring (metrics.cpp) is kept apart from reporting (this file).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include "zoobench/error.h"
#include "zoobench/h5.h"
#include "zoobench/io.h"
#include "zoobench/lr_grid.h"
#include "zoobench/reduce.h"
#include "zoobench/store.h"

namespace zoobench {
namespace {
namespace fs = std::filesystem;
using T = h5::Table::Type;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// A table's rows as values: full precision into results.h5, six decimals in the CSV and Markdown copies.
using Cell = h5::Table::Cell;
using Rows = std::vector<std::vector<Cell>>;

struct Columns {  // one table of results.h5, column by column
  const h5::Group group;
  const std::string where;
  std::vector<std::string> text(const std::string& c) const { return at(c).read_strings(); }
  std::vector<double> num(const std::string& c) const { return at(c).read<double>(); }
  h5::Dataset at(const std::string& c) const {
    if (!group.has(c)) throw DataError(where + ": no column '" + c + "'");
    return group.dataset(c);
  }
};
Columns table(const h5::File& f, const std::string& name) {
  const std::string where = f.filename().string() + ": /" + name;
  if (!f.has(name)) throw DataError(where + " is missing (results written by zoobench run, schema_version >= 3)");
  return {f.open_group(name), where};
}

struct Task {  // one (task, shot, seed) of the plan
  std::string name, group;
  int64_t shot = 0, seed = 0, test = 0;
  std::vector<std::string> models;
  std::vector<double> acc;
  double generic_acc = kNaN;
  int64_t missing = 0;  // cells of an unfinished run that are not done
};

struct Row {  // one (task, selector): the correlations table's row
  const Task* task;
  std::string selector;
  double spearman, kendall, weighted_tau, pearson;
  Selection sel;
};

std::string fmt(double v, const char* f = "%.4f") {
  if (std::isnan(v)) return "nan";
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

// A CSV and a Markdown copy of one table, each written whole or not at all.
void write_text(const fs::path& path, const std::string& text) {
  AtomicPath atomic(path);
  {
    std::ofstream out(atomic.tmp());
    out << text;
    if (!out.flush()) throw IoError("cannot write " + atomic.tmp().string());
  }
  atomic.commit();
}
// RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled.
std::string csv_field(const std::string& v) {
  if (v.find_first_of(",\"\n") == std::string::npos) return v;
  std::string q = "\"";
  for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}
std::string text(const Cell& c) {
  if (const auto* s = std::get_if<std::string>(&c)) return *s;
  if (const auto* i = std::get_if<int64_t>(&c)) return std::to_string(*i);
  return fmt(std::get<double>(c), "%.6f");
}
void write_copies(const fs::path& dir, const std::string& name, const std::vector<std::string>& header, const Rows& rows) {
  std::string csv, md = "|";
  for (size_t i = 0; i < header.size(); ++i) csv += (i ? "," : "") + csv_field(header[i]), md += " " + header[i] + " |";
  csv += "\n";
  md += "\n|";
  for (size_t i = 0; i < header.size(); ++i) md += i ? "---:|" : "---|";
  md += "\n";
  for (const auto& r : rows) {
    md += "|";
    for (size_t i = 0; i < r.size(); ++i) csv += (i ? "," : "") + csv_field(text(r[i])), md += " " + text(r[i]) + " |";
    csv += "\n";
    md += "\n";
  }
  write_text(dir / (name + ".csv"), csv);
  write_text(dir / (name + ".md"), md);
}

// The same table into results.h5's /tables/<name>, replacing an older one.
void write_h5(h5::File& f, const std::string& name, const std::vector<std::string>& header, const Rows& rows) {
  h5::Group tables = f.has("tables") ? f.open_group("tables") : f.create_group("tables");
  if (tables.has(name)) h5::check(H5Ldelete(tables.id(), name.c_str(), H5P_DEFAULT), "replace /tables/" + name);
  std::vector<h5::Table::Column> cols;  // each column's type is its values' (Float64 for an empty table)
  for (size_t i = 0; i < header.size(); ++i) {
    const size_t kind = rows.empty() ? 1 : rows[0][i].index();  // Cell = variant<int64_t, double, string>
    cols.push_back({header[i], kind == 0 ? T::Int64 : kind == 1 ? T::Float64 : T::String, ""});
  }
  h5::Table t(tables, name, cols);
  for (const auto& r : rows) t.append(r);
  t.flush();
}

std::vector<Task> read_tasks(const h5::File& f, std::map<std::string, size_t>& index) {
  Columns tt = table(f, "tasks"), mt = table(f, "models"), gt = table(f, "ground_truth");
  std::map<std::string, std::string> kind;
  auto mname = mt.text("name"), mkind = mt.text("kind");
  for (size_t i = 0; i < mname.size(); ++i) kind[mname[i]] = mkind[i];
  std::vector<Task> tasks;
  auto name = tt.text("name"), group = tt.text("group");
  auto shot = tt.num("shot"), seed = tt.num("seed"), test = tt.num("test");
  // missing_cells: absent from files merged before partial merges existed.
  auto missing = tt.group.has("missing_cells") ? tt.num("missing_cells") : std::vector<double>(name.size(), 0.0);
  for (size_t i = 0; i < name.size(); ++i) {
    index[name[i]] = tasks.size();
    tasks.push_back({name[i], group[i], int64_t(shot[i]), int64_t(seed[i]), int64_t(test[i]), {}, {}, kNaN,
                     int64_t(missing[i])});
  }
  auto g_model = gt.text("model"), g_task = gt.text("task");
  auto g_acc = gt.num("test_acc");
  for (size_t i = 0; i < g_model.size(); ++i) {
    auto it = index.find(g_task[i]);
    if (it == index.end()) throw DataError(gt.where + ": task '" + g_task[i] + "' is not in /tasks");
    Task& t = tasks[it->second];
    t.models.push_back(g_model[i]);
    t.acc.push_back(g_acc[i]);
    if (kind[g_model[i]] == "generic" && std::isnan(t.generic_acc)) t.generic_acc = g_acc[i];
  }
  return tasks;
}
}  // namespace

std::vector<std::string> reduce(const fs::path& target, const ReduceOptions& opt) {
  fs::path results = target;
  if (fs::is_directory(target)) {
    // An unfinished run is reduced as far as it is done, unless asked to be complete.
    results = fs::exists(target / "plan.json") ? store::merge(target, /*partial=*/!opt.require_complete) : target / "results.h5";
    if (!fs::exists(results)) throw DataError(target.string() + ": no plan.json and no results.h5 (not an experiment folder)");
  }
  const fs::path out_dir = results.parent_path() / "tables";
  h5::File f = h5::File::open(results);  // read first: bad input leaves nothing written

  std::map<std::string, size_t> index;
  std::vector<Task> tasks = read_tasks(f, index);
  std::vector<std::string> notes;
  for (const Task& t : tasks)
    if (t.missing > 0)
      notes.push_back("task '" + t.name + "': " + std::to_string(t.missing) + " of " +
                      std::to_string(t.missing + static_cast<int64_t>(t.models.size())) + " cells are not done yet; reduced the " +
                      std::to_string(t.models.size()) + " that are");
  Columns st = table(f, "scores"), ft = table(f, "finetune");
  auto s_model = st.text("model"), s_task = st.text("task"), s_sel = st.text("selector");
  auto s_val = st.num("value"), s_sec = st.num("seconds");
  // note: absent before schema_version 4. A note on a finite value is a score
  // at a limit it reaches by construction (docs/selectors.md): on that task the
  // selector ranks nothing, so its rows are NaN and its averages leave the task out.
  auto s_note = st.group.has("note") ? st.text("note") : std::vector<std::string>(s_val.size());
  std::vector<std::string> selectors;
  std::map<std::pair<std::string, std::string>, std::map<std::string, double>> score;  // (task, sel) -> model -> value
  std::map<std::pair<std::string, std::string>, std::string> saturated;              // (task, sel) -> a model's note
  std::map<std::string, std::pair<double, double>> seconds;                           // sel -> (sum, count)
  for (size_t i = 0; i < s_val.size(); ++i) {
    if (std::find(selectors.begin(), selectors.end(), s_sel[i]) == selectors.end()) selectors.push_back(s_sel[i]);
    score[{s_task[i], s_sel[i]}][s_model[i]] = s_val[i];
    if (cannot_rank(s_note[i], s_val[i])) saturated.emplace(std::make_pair(s_task[i], s_sel[i]), s_model[i] + ": " + s_note[i]);
    if (std::isnan(s_val[i])) continue;  // not scored (no source data): no cost either
    seconds[s_sel[i]].first += s_sec[i];
    seconds[s_sel[i]].second += 1;
  }

  // ---- correlations: one row per (task, selector) ----
  std::vector<Row> rows;
  for (const Task& t : tasks)
    for (const auto& sel : selectors) {
      const auto& by_model = score[{t.name, sel}];
      std::vector<double> v, acc;
      for (size_t m = 0; m < t.models.size(); ++m) {
        auto it = by_model.find(t.models[m]);
        if (it == by_model.end()) continue;
        v.push_back(it->second);
        acc.push_back(t.acc[m]);
      }
      if (saturated.count({t.name, sel}))
        rows.push_back({&t, sel, kNaN, kNaN, kNaN, kNaN, Selection{}});
      else
        rows.push_back({&t, sel, spearman(v, acc), kendall_tau_b(v, acc), weighted_tau(v, acc), pearson(v, acc),
                        selection(v, acc, t.generic_acc)});
    }
  std::map<std::string, std::vector<std::string>> saturated_tasks;  // sel -> tasks
  for (const auto& [key, note] : saturated) saturated_tasks[key.second].push_back(key.first);
  for (const auto& [sel, names] : saturated_tasks)
    notes.push_back("selector '" + sel + "' cannot rank the zoo on " + std::to_string(names.size()) + " of " +
                    std::to_string(tasks.size()) + " tasks (first: '" + names.front() + "', " +
                    saturated.at({names.front(), sel}) + "); they are left out of its averages");
  const std::vector<std::string> corr_header = {"task", "shot", "seed", "selector", "spearman", "kendall", "weighted_tau",
                                                "pearson", "selections_to_best", "top1_gain", "top3_gain",
                                                "regret_at_1", "regret_at_3", "relative_top1"};
  Rows corr_rows;
  for (const Row& r : rows)
    corr_rows.push_back({r.task->name, r.task->shot, r.task->seed, r.selector,
                         r.spearman, r.kendall, r.weighted_tau,
                         r.pearson, r.sel.selections_to_best, r.sel.top1_gain,
                         r.sel.top3_gain, r.sel.regret_at_1, r.sel.regret_at_3,
                         r.sel.relative_top1});

  // ---- summary: per (shot, selector), mean over tasks and seeds with bootstrap CIs ----
  using Pick = double (*)(const Row&);
  const std::vector<std::pair<std::string, Pick>> measures = {
      {"spearman", [](const Row& r) { return r.spearman; }},
      {"kendall", [](const Row& r) { return r.kendall; }},
      {"weighted_tau", [](const Row& r) { return r.weighted_tau; }},
      {"pearson", [](const Row& r) { return r.pearson; }},
      {"selections_to_best", [](const Row& r) { return r.sel.selections_to_best; }},
      {"top1_gain", [](const Row& r) { return r.sel.top1_gain; }},
      {"top3_gain", [](const Row& r) { return r.sel.top3_gain; }},
      {"regret_at_1", [](const Row& r) { return r.sel.regret_at_1; }},
      {"regret_at_3", [](const Row& r) { return r.sel.regret_at_3; }},
      {"relative_top1", [](const Row& r) { return r.sel.relative_top1; }}};
  std::set<int64_t> shots;
  for (const Task& t : tasks) shots.insert(t.shot);
  std::vector<std::string> sum_header = {"shot", "selector", "tasks", "cells"};
  for (const auto& [m, pick] : measures) sum_header.insert(sum_header.end(), {m, m + "_lo", m + "_hi"});
  Rows sum_rows;
  for (int64_t shot : shots)
    for (const auto& sel : selectors) {
      std::vector<Cell> row = {shot, sel};
      std::map<std::string, std::vector<const Row*>> by_group;
      for (const Row& r : rows)
        if (r.task->shot == shot && r.selector == sel) by_group[r.task->group].push_back(&r);
      row.push_back(static_cast<int64_t>(by_group.size()));
      size_t cells = 0;
      for (const auto& [g, rs] : by_group) cells += rs.size();
      row.push_back(static_cast<int64_t>(cells));
      for (const auto& [m, pick] : measures) {
        std::vector<std::vector<double>> groups;
        for (const auto& [g, rs] : by_group) {
          groups.emplace_back();
          for (const Row* r : rs) groups.back().push_back(pick(*r));
        }
        Interval ci = bootstrap_mean(groups, opt.resamples, opt.seed);
        row.insert(row.end(), {ci.mean, ci.lo, ci.hi});
      }
      sum_rows.push_back(std::move(row));
    }

  // ---- the zoo against one generic model, per task and per shot ----
  Rows zoo_rows;
  for (const Task& t : tasks) {
    if (t.acc.empty()) continue;
    const size_t best = static_cast<size_t>(std::max_element(t.acc.begin(), t.acc.end()) - t.acc.begin());
    zoo_rows.push_back({t.name, t.shot, t.seed, t.models[best], t.acc[best],
                        t.generic_acc, t.acc[best] - t.generic_acc});
  }
  Rows zoo_shot_rows;
  for (int64_t shot : shots) {
    std::map<std::string, std::vector<double>> by_group;
    for (const Task& t : tasks)
      if (t.shot == shot && !t.acc.empty())
        by_group[t.group].push_back(*std::max_element(t.acc.begin(), t.acc.end()) - t.generic_acc);
    std::vector<std::vector<double>> groups;
    for (auto& [g, v] : by_group) groups.push_back(v);
    Interval ci = bootstrap_mean(groups, opt.resamples, opt.seed);
    zoo_shot_rows.push_back({shot, static_cast<int64_t>(groups.size()), ci.mean,
                             ci.lo, ci.hi});
  }

  // ---- ground-truth checks and costs from the fine-tune grid ----
  auto f_model = ft.text("model"), f_task = ft.text("task");
  auto f_lr = ft.num("lr"), f_train = ft.num("train_acc"), f_val = ft.num("val_acc"), f_chosen = ft.num("chosen"),
       f_sec = ft.num("seconds");
  std::vector<std::string> warnings;
  Rows gt_rows;
  double finetune_seconds = 0, finetune_runs = 0;
  for (double s : f_sec) finetune_seconds += s, finetune_runs += 1;
  double brute_force = 0;
  for (const Task& t : tasks) {
    std::vector<GridRun> grid;
    std::vector<double> chosen_train;
    double task_seconds = 0, mean_test_acc = 0;
    for (size_t i = 0; i < f_lr.size(); ++i) {
      if (f_task[i] != t.name) continue;
      grid.push_back({f_model[i], f_lr[i], f_val[i], f_chosen[i] > 0});
      task_seconds += f_sec[i];
      if (f_chosen[i] > 0) chosen_train.push_back(f_train[i]);
    }
    brute_force += task_seconds / static_cast<double>(tasks.size());
    for (double a : t.acc) mean_test_acc += a / static_cast<double>(std::max<size_t>(1, t.acc.size()));
    if (grid.empty()) continue;
    const EdgeCheck e = check_edges(grid);
    const double edge_share = e.cells == 0 ? kNaN : e.share_top + e.share_bottom;
    std::sort(chosen_train.begin(), chosen_train.end());
    const size_t k = chosen_train.size();
    const double median_train = k == 0 ? kNaN : k % 2 ? chosen_train[k / 2] : (chosen_train[k / 2 - 1] + chosen_train[k / 2]) / 2;
    const double se = t.test > 0 ? std::sqrt(mean_test_acc * (1 - mean_test_acc) / static_cast<double>(t.test)) : kNaN;
    gt_rows.push_back({t.name, t.shot, t.seed, edge_share,
                       e.rise_top, e.rise_bottom, median_train, t.test,
                       se});
    if (median_train < 0.95)
      warnings.push_back("task '" + t.name + "': the chosen fine-tunes reach a median training accuracy of " +
                         fmt(median_train, "%.2f") + " (< 0.95): the ground truth is not a converged fine-tune");
    // Each edge on its own: cells piling up at the top lr say nothing about
    // whether the accuracy still rises at the bottom one.
    auto edge_warning = [&](const char* edge, double share, double rise) {
      if (!edge_binds(share, rise)) return;
      warnings.push_back("task '" + t.name + "': " + fmt(100 * share, "%.0f") + " % of cells choose the " + edge +
                         " lr of the grid while the mean validation accuracy still rises there (" +
                         fmt(100 * rise, "%.1f") + " points): widen the grid");
    };
    edge_warning("top", e.share_top, e.rise_top);
    edge_warning("bottom", e.share_bottom, e.rise_bottom);
    if (se > 0.02)
      warnings.push_back("task '" + t.name + "': " + std::to_string(t.test) + " test images give a binomial standard error of " +
                         fmt(100 * se, "%.1f") + " points per cell (> 2)");
  }
  const double one_finetune = finetune_runs > 0 ? finetune_seconds / finetune_runs : kNaN;
  Rows cost_rows;
  for (const auto& sel : selectors) {
    const double mean = seconds[sel].first / seconds[sel].second;
    cost_rows.push_back({sel, mean, mean / one_finetune});
  }
  cost_rows.push_back({std::string("finetune (one lr)"), one_finetune, 1.0});
  cost_rows.push_back({std::string("brute force: the zoo x the lr grid, per task"), brute_force, brute_force / one_finetune});

  f.close();
  // ---- write: results.h5 /tables/* in a copy that replaces it when complete, then the CSV and Markdown copies ----
  fs::create_directories(out_dir);
  AtomicPath atomic(results);
  fs::copy_file(results, atomic.tmp(), fs::copy_options::overwrite_existing);
  h5::File out = h5::File::open(atomic.tmp(), h5::Mode::ReadWrite);
  out.set_attr("reduced_utc", utc_now());
  const std::vector<std::string> gt_header = {"task", "shot", "seed", "edge_share", "rise_at_top_lr", "rise_at_bottom_lr",
                                              "median_train_acc", "test_images", "binomial_se"};
  const std::vector<std::string> zoo_header = {"task", "shot", "seed", "best_model", "best_acc", "generic_acc", "gain"};
  const std::vector<std::string> zoo_shot_header = {"shot", "tasks", "gain", "gain_lo", "gain_hi"};
  const std::vector<std::string> cost_header = {"selector", "seconds_per_cell", "relative_to_one_finetune"};
  write_h5(out, "correlations", corr_header, corr_rows);
  write_h5(out, "summary", sum_header, sum_rows);
  write_h5(out, "zoo_gain", zoo_header, zoo_rows);
  write_h5(out, "zoo_gain_by_shot", zoo_shot_header, zoo_shot_rows);
  write_h5(out, "costs", cost_header, cost_rows);
  write_h5(out, "ground_truth_checks", gt_header, gt_rows);
  out.close();
  atomic.commit();
  write_copies(out_dir, "correlations", corr_header, corr_rows);
  write_copies(out_dir, "summary", sum_header, sum_rows);
  write_copies(out_dir, "zoo_gain", zoo_header, zoo_rows);
  write_copies(out_dir, "zoo_gain_by_shot", zoo_shot_header, zoo_shot_rows);
  write_copies(out_dir, "costs", cost_header, cost_rows);
  write_copies(out_dir, "ground_truth_checks", gt_header, gt_rows);

  for (const auto& n : notes) std::cerr << "zoobench: note: " << n << "\n";
  for (const auto& w : warnings) std::cerr << "zoobench: warning: " << w << "\n";
  if (opt.print) {
    // Three decimals for the eye; the CSV keeps six.
    auto cell = [](const std::vector<Cell>& r, size_t i) {
      auto v = [&](size_t k) { return fmt(std::get<double>(r[k]), "%.3f"); };
      return v(i) + " [" + v(i + 1) + ", " + v(i + 2) + "]";
    };
    for (int64_t shot : shots) {
      if (shot == 0)  // shots: all
        std::printf("all training images: mean over tasks and seeds [95 %% bootstrap interval]\n");
      else
        std::printf("%lld-shot: mean over tasks and seeds [95 %% bootstrap interval]\n", static_cast<long long>(shot));
      std::printf("%-18s %-22s %-22s %-22s %s\n", "selector", "spearman", "kendall", "selections_to_best", "top1_gain");
      for (const auto& r : sum_rows)
        if (std::get<int64_t>(r[0]) == shot)
          std::printf("%-18s %-22s %-22s %-22s %s\n", std::get<std::string>(r[1]).c_str(), cell(r, 4).c_str(), cell(r, 7).c_str(),
                      cell(r, 16).c_str(), cell(r, 19).c_str());
    }
    std::printf("tables: %s\n", out_dir.string().c_str());
  }
  return warnings;
}

}  // namespace zoobench
