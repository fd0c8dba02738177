#include "zoobench/run.h"

#include <ATen/ATen.h>
#include <hdf5.h>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <chrono>
#include <map>
#include <set>

#include "zoobench/error.h"
#include "zoobench/extract.h"
#include "zoobench/finetune.h"
#include "zoobench/h5.h"
#include "zoobench/h5_tensor.h"
#include "zoobench/io.h"
#include "zoobench/loader.h"
#include "zoobench/pack.h"
#include "zoobench/progress.h"
#include "zoobench/random.h"
#include "zoobench/reduce.h"
#include "zoobench/score.h"
#include "zoobench/selector.h"
#include "zoobench/version.h"
#include "zoobench/zoo.h"

namespace zoobench {
namespace fs = std::filesystem;

namespace {

using Col = h5::Table::Column;
using T = h5::Table::Type;

}  // namespace

fs::path run_experiment(const Config& c, const RunOptions& opt) {
  std::vector<const Selector*> sels = selectors_from(c.selectors);
  if (c.tasks.empty()) throw ConfigError(c.source + ": tasks: the experiment has no tasks");

  // ---- 1. data: pack the built-in domains that the tasks and the zoo read, if missing
  std::set<std::string> needed;
  for (const auto& t : c.tasks) needed.insert(t.dataset);
  if (c.zoo.manifest.empty())
    for (const auto& m : c.zoo.models) needed.insert(m.domains.begin(), m.domains.end());
  std::vector<std::string> builtin = builtin_domains(), to_pack;
  for (const auto& d : needed)
    if (std::find(builtin.begin(), builtin.end(), d) != builtin.end()) to_pack.push_back(d);
  PackOptions popt;
  popt.raw_dir = default_raw_dir();
  pack_domains(to_pack, opt.data_dir, popt, false, std::max(1, opt.threads), opt.rank, opt.world);
  opt.barrier();

  // ---- 2. the zoo: train what is missing
  if (c.zoo.manifest.empty() && c.zoo.models.empty())
    throw ConfigError(c.source + ": zoo: configure zoo.experts (and multi_domain, generic) or zoo.manifest");
  auto jobs = train_zoo(c, opt.data_dir, opt.rank, opt.world, opt.barrier, false, opt.quiet);
  if (opt.rank != 0) return {};
  for (const auto& j : jobs)
    for (const auto& [name, acc] : j.accuracies)
      std::fprintf(stderr, "zoo %-28s source test accuracy %5.1f%% (%s)\n", name.c_str(), 100 * acc,
                   j.trained ? ("trained in " + format_seconds(j.seconds)).c_str() : "kept");
  Manifest manifest = Manifest::load(manifest_path(c));

  // ---- 3. tasks, then models: every input error before any heavy work
  std::map<std::string, ImageSet> sets;
  std::vector<Task> tasks;
  for (const auto& spec : c.tasks) {
    auto it = sets.find(spec.dataset);
    if (it == sets.end()) it = sets.emplace(spec.dataset, read_packed(packed_path(opt.data_dir, spec.dataset))).first;
    tasks.push_back(sample_task(spec, it->second));
  }
  std::vector<std::unique_ptr<Model>> models;
  for (const auto& e : manifest.entries) models.push_back(load_model(manifest, e));

  // ---- 4. cells
  fs::path out = fs::path(c.results_dir) / c.name / "results.h5";
  AtomicPath atomic(out);
  h5::File f = h5::File::create(atomic.tmp());
  f.set_attr("schema_version", int64_t{1});
  f.set_attr("zoobench_version", ZOOBENCH_VERSION);
  f.set_attr("git_sha", ZOOBENCH_GIT_SHA);
  f.set_attr("created_utc", utc_now());
  f.set_attr("config_yaml", c.resolved_yaml);
  f.set_attr("config_source", c.source);
  f.set_attr("versions", opt.context_versions);
  f.set_attr("threads", static_cast<int64_t>(opt.threads));
  f.set_attr("manifest", manifest_path(c).string());
  {  // the tables close before the file does
  const std::vector<Col> key = {{"model", T::String, "zoo entry"}, {"task", T::String, "task name"},
                                {"shot", T::Int64, "training images per class"}, {"seed", T::Int64, "task seed"}};
  auto with = [&](std::vector<Col> extra) {
    std::vector<Col> cols = key;
    cols.insert(cols.end(), extra.begin(), extra.end());
    return cols;
  };
  h5::Table cells(f, "cells", with({}));
  h5::Table scores(f, "scores", with({{"selector", T::String, "selector name"},
                                      {"value", T::Float64, "score; higher = better predicted transfer"},
                                      {"seconds", T::Float64, "wall time of this score alone"}}));
  h5::Table shared(f, "shared_costs", {{"what", T::String, "probe_features (per task) or source_class_means (per model)"},
                                       {"model", T::String, "zoo entry"}, {"task", T::String, "task name, empty when per model"},
                                       {"seconds", T::Float64, "shared by every score that reads it, not in /scores seconds"}});
  h5::Table runs(f, "finetune", with({{"lr", T::Float64, "learning rate"}, {"epochs", T::Int64, ""},
                                      {"train_acc", T::Float64, ""}, {"val_acc", T::Float64, "on the validation split carved from the shots"},
                                      {"test_acc", T::Float64, ""}, {"chosen", T::Int64, "1 = best validation accuracy of the grid"},
                                      {"seconds", T::Float64, ""}, {"ranks", T::Int64, "ranks that trained it"}}));
  h5::Table truth(f, "ground_truth", with({{"lr", T::Float64, "the lr chosen on validation"},
                                           {"val_acc", T::Float64, ""}, {"test_acc", T::Float64, "the ground truth"},
                                           {"oracle_test_acc", T::Float64, "best test accuracy over the lr grid (the seed paper's choice)"}}));

  // score[task][selector][model], acc[task][model]
  std::map<std::string, std::map<std::string, std::vector<double>>> score_of;
  std::map<std::string, std::vector<double>> acc_of;
  std::vector<Model*> zoo;
  for (auto& m : models) zoo.push_back(m.get());
  ZooScorer scorer(sels, zoo, c.extract, c.finetune, opt.data_dir, c.seed);
  for (auto* s : sels) scores.group().set_attr("variant." + s->name(), scorer.variant(*s));
  Progress progress("cells", tasks.size() * models.size(), opt.quiet);
  for (const auto& task : tasks) {
    const ImageSet& set = sets.at(task.spec.dataset);
    const int64_t shot = task.spec.shots, tseed = static_cast<int64_t>(task.spec.seed);
    TaskScores ts = scorer.score_task(set, task);
    if (ts.probe_features.defined()) {
      shared.append({std::string("probe_features"), scorer.probe()->name(), task.spec.name, ts.probe_seconds});
      if (c.extract.cache) {
        h5::Group g = h5::ensure_group(f, "features/_probe/" + task.spec.name);
        h5::write_matrix(g, "features", ts.probe_features, "N x Dp float32, the probe model's features (RSA, DDS)");
        g.set_attr("probe_model", scorer.probe()->name());
      }
    }
    for (size_t m = 0; m < models.size(); ++m) {
      const CellArrays& arr = ts.cells[m];
      if (c.extract.cache) {
        h5::Group g = h5::ensure_group(f, "features/" + models[m]->name() + "/" + task.spec.name);
        h5::write_matrix(g, "features", arr.features, "N x D float32, the layer before the classifier");
        h5::write_matrix(g, "labels", arr.labels, "task labels");
        if (arr.source_logits.defined())
          h5::write_matrix(g, "source_logits", arr.source_logits, "N x Cs, the source head's logits");
        h5::write_matrix(g, "indices", labels_tensor(arr.indices), "indices into the packed data set");
        if (arr.grad_sketch.defined()) h5::write_matrix(g, "grad_sketch", arr.grad_sketch, "N x K gradient sketches (m blocks of K/m)");
      }
      cells.append({models[m]->name(), task.spec.name, shot, tseed});
    }
    for (const auto& r : ts.rows) {
      scores.append({r.model, task.spec.name, shot, tseed, r.selector, r.value, r.seconds});
      score_of[task.spec.name][r.selector].push_back(r.value);
    }
    for (auto& model : models) {
      const uint64_t seed = derive_seed(c.seed, model->name() + "/" + task.spec.name);
      CellFinetune ft = finetune_cell(*model, set, task, c.finetune, seed);
      for (size_t k = 0; k < ft.runs.size(); ++k) {
        const auto& r = ft.runs[k];
        runs.append({model->name(), task.spec.name, shot, tseed, r.lr, int64_t{r.epochs}, r.train_acc, r.val_acc,
                     r.test_acc, int64_t{k == ft.chosen}, r.seconds, int64_t{1}});
      }
      truth.append({model->name(), task.spec.name, shot, tseed, ft.best().lr, ft.best().val_acc, ft.best().test_acc,
                    ft.oracle_test_acc});
      acc_of[task.spec.name].push_back(ft.best().test_acc);
      progress.step(model->name() + " x " + task.spec.name);
    }
  }
  for (const auto& [name, src] : scorer.sources()) {
    shared.append({std::string("source_class_means"), name, std::string(), src.seconds});
    if (c.extract.cache) {
      h5::Group g = h5::ensure_group(f, "source_domain/" + name);
      h5::write_matrix(g, "class_means", src.means, "S x D, mean feature of each source class (Domain Similarity)");
      h5::write_matrix(g, "class_counts", src.counts, "S, training images of each source class");
    }
  }
  progress.finish();

  // ---- 5. first tables: Spearman per task and selector, the zoo's gain over the generic model
  int generic = -1;
  for (size_t m = 0; m < models.size(); ++m)
    if (models[m]->entry().kind == "generic") generic = static_cast<int>(m);
  h5::Group tables = f.create_group("tables");
  h5::Table rho_t(tables, "spearman", {{"task", T::String, ""}, {"selector", T::String, ""},
                                       {"rho", T::Float64, "Spearman correlation of scores and fine-tuned test accuracy over the zoo"},
                                       {"models", T::Int64, ""}});
  h5::Table gain_t(tables, "gain", {{"task", T::String, ""}, {"best_model", T::String, ""}, {"best_acc", T::Float64, ""},
                                    {"generic_model", T::String, ""}, {"generic_acc", T::Float64, ""},
                                    {"gain", T::Float64, "best_acc - generic_acc"}});
  char line[512];
  std::string header = "task                    ";
  for (auto* s : sels) {  // right-aligned over the numbers, cut to 8 characters
    std::snprintf(line, sizeof line, " %8s", s->name().substr(0, 8).c_str());
    header += line;
  }
  header += "  best model (test acc)          gain vs generic";
  std::cout << "\nSpearman rho of each score against the fine-tuned test accuracy, over " << models.size()
            << " zoo entries:\n" << header << "\n";
  for (const auto& task : tasks) {
    const auto& acc = acc_of[task.spec.name];
    std::snprintf(line, sizeof line, "%-24s", task.spec.name.c_str());
    std::string row = line;
    for (auto* s : sels) {
      double r = spearman(score_of[task.spec.name][s->name()], acc);
      rho_t.append({task.spec.name, s->name(), r, static_cast<int64_t>(models.size())});
      std::snprintf(line, sizeof line, " %8.3f", r);
      row += line;
    }
    size_t best = static_cast<size_t>(std::max_element(acc.begin(), acc.end()) - acc.begin());
    std::snprintf(line, sizeof line, "  %-22s %5.1f%%", models[best]->name().c_str(), 100 * acc[best]);
    row += line;
    if (generic >= 0) {
      double g = acc[static_cast<size_t>(generic)];
      gain_t.append({task.spec.name, models[best]->name(), acc[best], models[static_cast<size_t>(generic)]->name(), g, acc[best] - g});
      std::snprintf(line, sizeof line, "  %+6.1f points", 100 * (acc[best] - g));
      row += line;
    }
    std::cout << row << "\n";
  }
  cells.flush();
  scores.flush();
  shared.flush();
  runs.flush();
  truth.flush();
  rho_t.flush();
  gain_t.flush();
  }
  f.close();
  atomic.commit();
  std::cout << "\nresults: " << out.string() << "\n";
  return out;
}

}  // namespace zoobench
