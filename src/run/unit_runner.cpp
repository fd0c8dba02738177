#include "unit_runner.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "zoobench/comm.h"
#include "zoobench/error.h"
#include "zoobench/finetune.h"
#include "zoobench/h5_tensor.h"
#include "zoobench/loader.h"
#include "zoobench/lr_grid.h"
#include "zoobench/process.h"
#include "zoobench/random.h"

namespace zoobench {
namespace {
using Col = h5::Table::Column;
using T = h5::Table::Type;

double epoch_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}
}  // namespace

UnitRunner::UnitRunner(const Config& c, const Plan& plan, std::vector<Model*> models, std::vector<Task> tasks,
                       std::map<std::string, ImageSet> sets, std::filesystem::path data_dir, std::filesystem::path exp_dir, store::Provenance who,
                       store::RunContext context)
    : c_(c), plan_(plan), models_(std::move(models)), tasks_(std::move(tasks)), data_dir_(std::move(data_dir)),
      exp_dir_(std::move(exp_dir)), who_(std::move(who)), context_(std::move(context)),
      scorer_(selectors_from(plan.selectors), models_, c.extract, c.finetune, data_dir_, c.seed), sets_(std::move(sets)) {}

const ImageSet& UnitRunner::set(const std::string& dataset) {
  auto it = sets_.find(dataset);
  if (it == sets_.end()) it = sets_.emplace(dataset, read_packed(packed_path(data_dir_, dataset))).first;
  return it->second;
}

double UnitRunner::run(size_t index, comm::Collective* group) {
  const Unit& u = plan_.units.at(index);
  // A test hook: the unit whose id is named fails, as a real error would.
  if (const char* f = std::getenv("ZOOBENCH_FAULT_FAIL_UNIT"); f && u.id == f)
    throw Error("unit " + u.id + ": failure injected by ZOOBENCH_FAULT_FAIL_UNIT");
  const bool first = !group || group->rank() == 0;
  if (!first && !group_work(u)) return 0.0;
  comm::Collective* dp = group_work(u) ? group : nullptr;
  const double start = epoch_now();
  const bool rss_from_here = reset_peak_rss();
  auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<store::ShardWriter> w;
  store::Provenance who = who_;
  who.ranks = dp ? dp->size() : 1;
  auto open_shard = [&] {
    if (!first) return;
    w = std::make_unique<store::ShardWriter>(exp_dir_, u, who, start);
    store::write_context(w->file(), context_);
    if (u.model >= 0) w->file().set_attr("model", models_.at(static_cast<size_t>(u.model))->name());
    if (u.task >= 0) {
      const Task& t = tasks_.at(static_cast<size_t>(u.task));
      w->file().set_attr("task", t.spec.name);
      w->file().set_attr("shot", static_cast<int64_t>(t.spec.shots));
      w->file().set_attr("seed", static_cast<int64_t>(t.spec.seed));
    }
  };
  switch (u.kind) {
    case UnitKind::Probe: {
      const Task& task = tasks_.at(static_cast<size_t>(u.task));
      at::Tensor feats = scorer_.probe_features_for(set(task.spec.dataset), task, dp);
      open_shard();
      if (w) {
        h5::write_matrix(w->file(), "features", feats, "N x Dp float32, the probe model's features of the scored samples");
        w->file().set_attr("probe_model", scorer_.probe()->name());
      }
      break;
    }
    case UnitKind::Source: {
      const SourceSummary& s = scorer_.source(*models_.at(static_cast<size_t>(u.model)));
      open_shard();
      if (!s.unavailable.empty()) {  // the score units give NaN with this note for the selectors that need it
        w->file().set_attr("unavailable", s.unavailable);
        break;
      }
      h5::write_matrix(w->file(), "class_means", s.means, "S x D, mean feature of each source class (Domain Similarity)");
      h5::write_matrix(w->file(), "class_counts", s.counts, "S, training images of each source class");
      w->file().write_strings("classes", s.classes);
      break;
    }
    case UnitKind::Score:
      open_shard();
      write_score(u, *w);
      break;
    case UnitKind::Finetune: {
      Model& m = *models_.at(static_cast<size_t>(u.model));
      const Task& task = tasks_.at(static_cast<size_t>(u.task));
      const double lr = plan_.lr_of(u);
      const EdgeVerdict verdict = u.edge ? edge_verdict(u) : EdgeVerdict{true, ""};
      if (!verdict.run) {
        open_shard();
        if (w) {
          w->file().set_attr("lr", lr);
          w->file().set_attr("not_needed", verdict.why);
        }
        break;
      }
      const uint64_t seed = derive_seed(c_.seed, m.name() + "/" + task.spec.name);
      FinetuneRun r = finetune_one(m, set(task.spec.dataset), task, finetune_for(c_.finetune, task.spec), lr, seed, dp);
      open_shard();
      if (w) {
        auto& f = w->file();
        f.set_attr("lr", r.lr);
        f.set_attr("epochs", static_cast<int64_t>(r.epochs));
        f.set_attr("train_acc", r.train_acc);
        f.set_attr("val_acc", r.val_acc);
        f.set_attr("test_acc", r.test_acc);
        f.set_attr("finetune_seconds", r.seconds);
        if (u.edge) f.set_attr("edge_check", verdict.why);
      }
      break;
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (w) {
    w->file().set_attr("peak_rss_bytes", peak_rss_bytes());
    if (!rss_from_here) w->file().set_attr("peak_rss_scope", std::string("process"));  // the kernel kept its mark
    w->commit(seconds);
  }
  return seconds;
}

UnitRunner::EdgeVerdict UnitRunner::edge_verdict(const Unit& u) const {
  // The task's whole grid, from its shards; per model the chosen lr is the
  // merge's: the best validation accuracy, ties to the first in grid order.
  std::vector<GridRun> runs;
  std::map<std::string, size_t> best;  // model -> index into runs
  for (int d : u.deps) {
    const Unit& dep = plan_.units.at(static_cast<size_t>(d));
    h5::File f = h5::File::open(store::shard_path(exp_dir_, dep));
    runs.push_back({plan_.models.at(static_cast<size_t>(dep.model)).name, f.attr_double("lr"), f.attr_double("val_acc"), false});
    auto [it, fresh] = best.emplace(runs.back().cell, runs.size() - 1);
    if (!fresh && runs.back().val_acc > runs[it->second].val_acc) it->second = runs.size() - 1;
  }
  for (const auto& [model, k] : best) runs[k].chosen = true;
  const EdgeCheck e = check_edges(runs);
  const bool top = u.edge > 0;
  const double share = top ? e.share_top : e.share_bottom, rise = top ? e.rise_top : e.rise_bottom;
  char why[256];
  std::snprintf(why, sizeof why, "the %s lr %g is chosen by %.0f %% of %zu models, mean validation accuracy %+.1f points "
                "against its neighbour: %s", top ? "top" : "bottom", top ? e.hi : e.lo, 100 * share, e.cells, 100 * rise,
                edge_binds(share, rise) ? "the edge binds, the grid is widened" : "not needed");
  return {edge_binds(share, rise), why};
}

void UnitRunner::write_score(const Unit& u, store::ShardWriter& w) {
  Model& m = *models_.at(static_cast<size_t>(u.model));
  const Task& task = tasks_.at(static_cast<size_t>(u.task));
  const unsigned needs = scorer_.needs();
  // The shared arrays come from the shards of the units this one depends on.
  at::Tensor probe;
  SourceSummary src;
  for (int d : u.deps) {
    const Unit& dep = plan_.units.at(static_cast<size_t>(d));
    h5::File f = h5::File::open(store::shard_path(exp_dir_, dep));
    if (dep.kind == UnitKind::Probe) probe = h5::read_matrix(f, "features");
    if (dep.kind == UnitKind::Source && f.has_attr("unavailable")) {
      src.unavailable = f.attr_string("unavailable");
    } else if (dep.kind == UnitKind::Source) {
      src.means = h5::read_matrix(f, "class_means");
      src.counts = h5::read_matrix(f, "class_counts");
    }
  }
  CellScore cell = scorer_.score_cell(m, set(task.spec.dataset), task, probe,
                                      (needs & kNeedSourceDomain) ? &src : nullptr);
  auto& f = w.file();
  f.set_attr("feature_spread", cell.feature_spread);
  {
    h5::Table terms(f, "terms", {{"selector", T::String, ""}, {"term", T::Int64, "index of the term (NCTI has 3)"},
                                 {"value", T::Float64, "raw per-model term; combine() over the zoo gives the score"}});
    h5::Table secs(f, "selector_seconds", {{"selector", T::String, ""}, {"seconds", T::Float64, ""}});
    const auto& sels = scorer_.selectors();
    for (size_t k = 0; k < sels.size(); ++k) {
      for (size_t j = 0; j < cell.terms[k].size(); ++j)
        terms.append({sels[k]->name(), static_cast<int64_t>(j), cell.terms[k][j]});
      secs.append({sels[k]->name(), cell.seconds[k]});
      f.set_attr("variant." + sels[k]->name(), scorer_.variant(*sels[k]));
      if (!cell.notes[k].empty()) f.set_attr("note." + sels[k]->name(), cell.notes[k]);
    }
    terms.flush();
    secs.flush();
  }
  if (c_.extract.cache) {
    const CellArrays& arr = cell.arrays;
    h5::Group g = f.create_group("arrays");
    h5::write_matrix(g, "features", arr.features, "N x D float32, the layer before the classifier");
    h5::write_matrix(g, "labels", arr.labels, "task labels");
    if (arr.source_logits.defined()) h5::write_matrix(g, "source_logits", arr.source_logits, "N x Cs, the source head's logits");
    h5::write_matrix(g, "indices", labels_tensor(arr.indices), "indices into the packed data set");
    if (arr.grad_sketch.defined())
      h5::write_matrix(g, "grad_sketch", arr.grad_sketch, "N x K gradient sketches (m blocks of K/m)");
  }
}

}  // namespace zoobench
