#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

#include "zoobench/error.h"
#include "zoobench/finetune.h"
#include "zoobench/random.h"
#include "zoobench/score.h"

namespace zoobench {

namespace {
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string names_needing(const std::vector<const Selector*>& sels, unsigned bit) {
  std::string s;
  for (auto* x : sels)
    if (x->needs() & bit) s += (s.empty() ? "" : ", ") + x->name();
  return s;
}
std::string sci(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1e", v);
  return b;
}
}  // namespace

double feature_spread(const at::Tensor& features) {
  at::Tensor f = features.to(at::kDouble);
  const double total = f.norm().item<double>();
  if (!(total > 0)) return 0;
  return (f - f.mean(0, true)).norm().item<double>() / total;
}

ZooScorer::ZooScorer(std::vector<const Selector*> selectors, std::vector<Model*> models, ExtractConfig extract,
                     FinetuneConfig finetune, std::filesystem::path data_dir, uint64_t seed)
    : sels_(std::move(selectors)), models_(std::move(models)), extract_(std::move(extract)),
      finetune_(std::move(finetune)), data_dir_(std::move(data_dir)), seed_(seed) {
  for (auto* s : sels_) needs_ |= s->needs();
  if (needs_ & kNeedProbeFeatures) {
    for (auto* m : models_)
      if (extract_.probe_model.empty() ? m->entry().kind == "generic" : m->name() == extract_.probe_model) probe_ = m;
    if (!probe_) {
      std::string names;
      for (auto* m : models_) names += (names.empty() ? "" : ", ") + m->name();
      throw ConfigError("selector(s) " + names_needing(sels_, kNeedProbeFeatures) + " need a probe model: " +
                        (extract_.probe_model.empty() ? std::string("the zoo has no generic entry")
                                                      : "the zoo has no entry '" + extract_.probe_model + "'") +
                        "; name one of its entries with extract.probe_model (or `zoobench score --probe NAME`): " + names);
    }
  }
}

std::string ZooScorer::variant(const Selector& s) const {
  std::string v = s.variant();
  if (s.needs() & kNeedGradSketch)
  {
    v += ";m=" + std::to_string(extract_.lgc_projections) + ";K=" + std::to_string(extract_.sketch_dim) +
         ";seed=" + std::to_string(seed_);
    // TorchScript entries take another route (dense sketch of one named parameter): say which.
    for (Model* m : models_)
      if (m->entry().format != "builtin") v += ";" + m->name() + "=" + m->sketch_target();
  }
  if ((s.needs() & kNeedProbeFeatures) && probe_) {
    char lr[32];
    std::snprintf(lr, sizeof lr, "%g", extract_.probe_lr);
    v += ";probe=" + probe_->name() + ";probe_epochs=" + std::to_string(extract_.probe_epochs) + ";probe_lr=" + lr;
  }
  if (s.needs() & kNeedSourceDomain) v += ";source_per_class=" + std::to_string(extract_.source_per_class);
  return v;
}

namespace {
// Why the entry's source data cannot be read, or "".
std::string source_missing(const ManifestEntry& e, const std::filesystem::path& data_dir,
                           const std::map<std::string, ImageSet>& loaded) {
  if (e.source_domains.empty()) return "the zoo entry lists no source_domains";
  for (const auto& domain : e.source_domains) {
    if (loaded.count(domain)) continue;
    const std::filesystem::path p = packed_path(data_dir, domain);
    if (!std::filesystem::exists(p)) return "its source domain '" + domain + "' is not packed (" + p.string() + ")";
  }
  return "";
}
}  // namespace

const SourceSummary& ZooScorer::source(Model& m) {
  auto it = sources_.find(m.name());
  if (it == sources_.end() && needs_ & kNeedSourceDomain) {
    if (std::string why = source_missing(m.entry(), data_dir_, source_sets_); !why.empty()) {
      std::fprintf(stderr, "zoobench: warning: model '%s': %s; %s cannot score it, and so rank(s) nothing on this zoo\n",
                   m.name().c_str(), why.c_str(), names_needing(sels_, kNeedSourceDomain).c_str());
      SourceSummary none;
      none.unavailable = why;
      it = sources_.emplace(m.name(), std::move(none)).first;
    }
  }
  if (it == sources_.end()) {
    auto domain_set = [this](const std::string& domain) -> const ImageSet& {
      auto s = source_sets_.find(domain);
      if (s == source_sets_.end()) s = source_sets_.emplace(domain, read_packed(packed_path(data_dir_, domain))).first;
      return s->second;
    };
    it = sources_.emplace(m.name(), source_summary(m, domain_set, extract_.source_per_class, extract_.batch_size,
                                                   derive_seed(seed_, "source")))
             .first;
  }
  return it->second;
}

at::Tensor ZooScorer::probe_features_for(const ImageSet& set, const Task& task, comm::Collective* group) {
  if (!probe_) throw Error("no probe model: no selector of this run needs one");
  std::vector<int64_t> indices;
  for (size_t p : scored_samples(task, extract_.max_per_class))
    indices.push_back(p < task.train.size() ? task.train[p] : task.val[p - task.train.size()]);
  return probe_features(*probe_, set, task, finetune_, extract_.probe_lr, extract_.probe_epochs, indices,
                        derive_seed(seed_, "probe/" + task.spec.name), group);
}

CellScore ZooScorer::score_cell(Model& m, const ImageSet& set, const Task& task, const at::Tensor& probe,
                                const SourceSummary* src) {
  CellScore out;
  const uint64_t seed = derive_seed(seed_, m.name() + "/" + task.spec.name);
  const bool sketch = (needs_ & kNeedGradSketch) != 0;
  out.arrays = extract_cell(m, set, task, extract_, sketch, seed);
  const CellArrays& arr = out.arrays;
  SelectorInputs in;
  in.features = arr.features.to(at::kDouble);
  in.labels = arr.labels;
  in.classes = static_cast<int64_t>(task.classes());
  if (needs_ & kNeedSourceProbs) {
    if (!arr.source_logits.defined())
      throw DataError("model '" + m.name() + "': selector(s) " + names_needing(sels_, kNeedSourceProbs) +
                      " need source logits, and this entry has no source head");
    in.source_probs = at::softmax(arr.source_logits.to(at::kDouble), 1);
  }
  if (arr.grad_sketch.defined()) in.grad_sketch = arr.grad_sketch.to(at::kDouble);
  if ((needs_ & kNeedSourceDomain) && src) {
    in.source_class_means = src->means;
    in.source_class_counts = src->counts;
  }
  if ((needs_ & kNeedProbeFeatures) && probe.defined()) in.probe_features = probe.to(at::kDouble);
  const std::string who = "model '" + m.name() + "', task '" + task.spec.name + "'";
  // Each score is judged on the array it reads: the features, or (LGC) the
  // gradient sketch, which can vary with the input while the features do not.
  out.feature_spread = feature_spread(in.features);
  const double sketch_spread = in.grad_sketch.defined() ? feature_spread(in.grad_sketch) : 1.0;
  const bool flat_features = out.feature_spread < kDegenerateSpread, flat_sketch = sketch_spread < kDegenerateSpread;
  auto degenerate_note = [](const char* what, double spread) {
    return std::string("degenerate ") + what + " (relative spread " + sci(spread) + " < " + sci(kDegenerateSpread) +
           "): ranked last";
  };
  auto warn = [&](const char* what, double spread, const char* who_ranks) {
    std::fprintf(stderr, "zoobench: warning: %s: the %s are constant up to rounding (relative spread %s < %s); %s\n",
                 who.c_str(), what, sci(spread).c_str(), sci(kDegenerateSpread).c_str(), who_ranks);
  };
  if (flat_features && (needs_ & kNeedFeatures))
    warn("features", out.feature_spread, "every score that reads them ranks this model last");
  if (flat_sketch) warn("gradient sketches", sketch_spread, "LGC ranks this model last");
  for (const Selector* s : sels_) {
    if ((s->needs() & kNeedSourceDomain) && src && !src->unavailable.empty()) {  // nothing to compare with
      out.terms.push_back({std::numeric_limits<double>::quiet_NaN()});
      out.seconds.push_back(0);
      out.notes.push_back("cannot score: " + src->unavailable);
      continue;
    }
    validate_inputs(in, s->needs(), who + ", selector '" + s->name() + "'");
    double sec = 0;
    if (s->needs() & (kNeedFeatures | kNeedSourceProbs)) sec += arr.seconds_features;  // one forward pass gives both
    if (s->needs() & kNeedGradSketch) sec += arr.seconds_sketch;
    const bool reads_flat_features = flat_features && (s->needs() & kNeedFeatures);
    if (reads_flat_features || (flat_sketch && (s->needs() & kNeedGradSketch))) {
      out.terms.push_back({-std::numeric_limits<double>::infinity()});
      out.seconds.push_back(sec);
      out.notes.push_back(reads_flat_features ? degenerate_note("features", out.feature_spread)
                                              : degenerate_note("gradient sketches", sketch_spread));
      continue;
    }
    // Refused before it allocates: a week-long grid keeps going, the cell
    // says why, and the message names the max_per_class that would fit.
    if (std::string why = memory_refusal(*s, in, extract_.score_memory_mb); !why.empty()) {
      if (memory_warned_.insert(s->name() + "/" + task.spec.name).second)
        std::fprintf(stderr, "zoobench: warning: task '%s': %s; scored n/a\n", task.spec.name.c_str(), why.c_str());
      out.terms.push_back({std::numeric_limits<double>::quiet_NaN()});
      out.seconds.push_back(0);
      out.notes.push_back("cannot score: " + why);
      continue;
    }
    auto t0 = std::chrono::steady_clock::now();
    std::vector<double> t = s->terms(in);
    sec += since(t0);
    for (double x : t)
      if (!std::isfinite(x)) throw DataError(who + ": selector '" + s->name() + "' gave a non-finite score");
    out.notes.push_back(t.size() == 1 ? s->saturation(in, t[0]) : std::string());
    out.terms.push_back(std::move(t));
    out.seconds.push_back(sec);
  }
  return out;
}

TaskScores ZooScorer::score_task(const ImageSet& set, const Task& task) {
  TaskScores out;
  if (needs_ & kNeedProbeFeatures) {
    auto t0 = std::chrono::steady_clock::now();
    out.probe_features = probe_features_for(set, task);
    out.probe_seconds = since(t0);
  }
  // terms[selector][model]; zoo-relative selectors are combined once every model is in.
  std::vector<std::vector<std::vector<double>>> terms(sels_.size());
  std::vector<std::vector<double>> secs(sels_.size());
  std::vector<std::vector<std::string>> notes(sels_.size());
  for (Model* m : models_) {
    const SourceSummary* src = (needs_ & kNeedSourceDomain) ? &source(*m) : nullptr;
    CellScore cell = score_cell(*m, set, task, out.probe_features, src);
    for (size_t k = 0; k < sels_.size(); ++k) {
      terms[k].push_back(std::move(cell.terms[k]));
      secs[k].push_back(cell.seconds[k]);
      notes[k].push_back(cell.notes[k]);
    }
    out.cells.push_back(std::move(cell.arrays));
  }
  source_sets_.clear();  // every model's summary exists now: later tasks reuse those, not the images
  std::vector<std::vector<double>> values(sels_.size());
  for (size_t k = 0; k < sels_.size(); ++k) values[k] = combine_finite(*sels_[k], terms[k]);
  for (size_t m = 0; m < models_.size(); ++m)
    for (size_t k = 0; k < sels_.size(); ++k)
      out.rows.push_back({models_[m]->name(), sels_[k]->name(), values[k][m], secs[k][m], notes[k][m]});
  return out;
}

std::vector<int> descending_ranks(const std::vector<double>& v) {
  std::vector<int> r(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    r[i] = 1 + static_cast<int>(std::count_if(v.begin(), v.end(), [&](double x) { return x > v[i]; }));
  return r;
}

}  // namespace zoobench
