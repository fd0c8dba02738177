// Scoring a zoo on a task: the arrays the chosen selectors need, each
// computed once (features, source logits and sketches per cell; the probe
// model's features per task; source-domain class means per model), then
// every selector on every model, zoo-relative selectors (NCTI) combined last.
// Shared by `zoobench score` and `zoobench run`.
#pragma once
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "zoobench/config.h"
#include "zoobench/dataset.h"
#include "zoobench/extract.h"
#include "zoobench/model.h"
#include "zoobench/selector.h"
#include "zoobench/task.h"

namespace zoobench {

struct ScoreRow {
  std::string model, selector;
  double value = 0;
  double seconds = 0;  // the score itself plus the per-cell arrays it reads (features, sketches)
  std::string note;    // why this value cannot rank the model (degenerate features, a saturated score), or empty
};

// Features whose relative spread ||F - mean||_F / ||F||_F is below this are
// constant up to float rounding (float32 rounding alone gives about 1e-7;
// features that carry any signal give 1e-2 and more): every score that reads
// them would be decided by rounding, so such a model is ranked last instead.
inline constexpr double kDegenerateSpread = 1e-5;
double feature_spread(const at::Tensor& features);

struct TaskScores {
  std::vector<CellArrays> cells;  // one per model, in zoo order
  at::Tensor probe_features;      // N x Dp float32 when a selector needs it
  double probe_seconds = 0;       // shared by the task's cells, not in any row's seconds
  std::vector<ScoreRow> rows;     // model-major, selectors in the given order
};

// One model on one task: its arrays and every selector's terms (combine()
// over the zoo turns terms into scores).
struct CellScore {
  CellArrays arrays;
  std::vector<std::vector<double>> terms;  // per selector, in the scorer's order; {-inf} when ranked last
  std::vector<double> seconds;             // per selector: the score plus the per-cell arrays it reads
  std::vector<std::string> notes;          // per selector: ScoreRow::note
  double feature_spread = 0;              // degenerate below kDegenerateSpread
};

class ZooScorer {
 public:
  // data_dir: where the models' source domains are packed (Domain Similarity).
  // Throws ConfigError when a selector needs a probe model the zoo lacks.
  ZooScorer(std::vector<const Selector*> selectors, std::vector<Model*> models, ExtractConfig extract,
            FinetuneConfig finetune, std::filesystem::path data_dir, uint64_t seed);
  unsigned needs() const { return needs_; }
  const Model* probe() const { return probe_; }
  // The selector's variant plus the extraction settings its value depends on
  // (sketch m, K and seed; the probe model and its fine-tune; source images per class).
  std::string variant(const Selector& s) const;
  TaskScores score_task(const ImageSet& set, const Task& task);
  const std::vector<const Selector*>& selectors() const { return sels_; }
  // The pieces of score_task, for the distributed grid's units:
  // the probe model fine-tuned on the task, its features of the scored samples (N x Dp float32);
  at::Tensor probe_features_for(const ImageSet& set, const Task& task, comm::Collective* group = nullptr);
  // Domain Similarity's summary of a model's source data (cached per model;
  // `unavailable` says why when there is none to read, warned once);
  const SourceSummary& source(Model& m);
  // one cell: probe (float32) and source are required when a selector needs
  // them; an unavailable source gives those selectors NaN with a note.
  CellScore score_cell(Model& m, const ImageSet& set, const Task& task, const at::Tensor& probe_features,
                       const SourceSummary* source);
  // Source-domain summaries computed so far, by model name (for storing).
  const std::map<std::string, SourceSummary>& sources() const { return sources_; }

 private:
  std::vector<const Selector*> sels_;
  std::vector<Model*> models_;
  ExtractConfig extract_;
  FinetuneConfig finetune_;
  std::filesystem::path data_dir_;
  uint64_t seed_;
  unsigned needs_ = 0;
  Model* probe_ = nullptr;
  std::map<std::string, SourceSummary> sources_;
  std::map<std::string, ImageSet> source_sets_;  // packed source domains, shared by the models of one task
  std::set<std::string> memory_warned_;           // "selector/task" refused for memory, warned once
};

// Rank of every value, 1 = highest (ties share the smallest rank).
std::vector<int> descending_ranks(const std::vector<double>& v);

}  // namespace zoobench
