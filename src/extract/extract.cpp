#include "zoobench/extract.h"

#include <ATen/ATen.h>

#include <chrono>
#include <map>

#include "zoobench/loader.h"

namespace zoobench {

std::vector<size_t> scored_samples(const Task& task, int max_per_class) {
  // Position p < train.size() is a training image, else a validation image.
  std::map<int64_t, size_t> taken;
  std::vector<size_t> pos;
  const size_t n = task.train.size() + task.val.size();
  for (size_t p = 0; p < n; ++p) {
    int64_t label = p < task.train.size() ? task.train_labels[p] : task.val_labels[p - task.train.size()];
    if (max_per_class > 0 && taken[label] >= static_cast<size_t>(max_per_class)) continue;
    ++taken[label];
    pos.push_back(p);
  }
  return pos;
}

CellArrays extract_cell(Model& model, const ImageSet& set, const Task& task, const ExtractConfig& cfg, bool sketch,
                        uint64_t seed) {
  CellArrays out;
  std::vector<int64_t> labels;
  for (size_t p : scored_samples(task, cfg.max_per_class)) {
    bool tr = p < task.train.size();
    size_t q = tr ? p : p - task.train.size();
    out.indices.push_back(tr ? task.train[q] : task.val[q]);
    labels.push_back(tr ? task.train_labels[q] : task.val_labels[q]);
  }
  out.labels = labels_tensor(labels);
  const int channels = model.entry().in_channels;
  std::vector<at::Tensor> feats, logits, sketches;
  double features_seconds = 0, sketch_seconds = 0;  // what each costs on its own (Model::Traced)
  for (size_t lo = 0; lo < out.indices.size(); lo += static_cast<size_t>(cfg.batch_size)) {
    std::vector<int64_t> batch(out.indices.begin() + static_cast<ptrdiff_t>(lo),
                               out.indices.begin() + static_cast<ptrdiff_t>(std::min(out.indices.size(), lo + cfg.batch_size)));
    const auto load = std::chrono::steady_clock::now();
    at::Tensor x = images_tensor(set, batch, channels);
    const double load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - load).count();
    if (sketch) {
      // One call, one forward pass where the model allows: LGC's sketch
      // traces the same pass that gives every other score its features.
      Model::Traced t = model.features_logits_and_sketch(x, cfg.lgc_projections, cfg.sketch_dim, seed, cfg.lgc_memory_mb);
      feats.push_back(t.features.cpu());
      if (t.logits.defined()) logits.push_back(t.logits.cpu());
      sketches.push_back(t.sketch);
      features_seconds += load_seconds + t.seconds_features;  // both need the batch
      sketch_seconds += load_seconds + t.seconds_sketch;
    } else {
      const auto forward = std::chrono::steady_clock::now();
      if (model.has_source_head()) {
        auto [f, z] = model.features_and_logits(x);
        feats.push_back(f.cpu());
        logits.push_back(z.cpu());
      } else {
        feats.push_back(model.features(x).cpu());
      }
      features_seconds += load_seconds + std::chrono::duration<double>(std::chrono::steady_clock::now() - forward).count();
    }
  }
  out.features = at::cat(feats).to(at::kFloat).contiguous();
  if (!logits.empty()) out.source_logits = at::cat(logits).to(at::kFloat).contiguous();
  out.seconds_features = features_seconds;
  if (sketch) {
    out.grad_sketch = at::cat(sketches).to(at::kFloat).contiguous();
    out.seconds_sketch = sketch_seconds;
  }
  return out;
}

}  // namespace zoobench
