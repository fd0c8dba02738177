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
  auto t0 = std::chrono::steady_clock::now();
  for (size_t lo = 0; lo < out.indices.size(); lo += static_cast<size_t>(cfg.batch_size)) {
    std::vector<int64_t> batch(out.indices.begin() + static_cast<ptrdiff_t>(lo),
                               out.indices.begin() + static_cast<ptrdiff_t>(std::min(out.indices.size(), lo + cfg.batch_size)));
    at::Tensor x = images_tensor(set, batch, channels);
    if (model.has_source_head()) {
      auto [f, z] = model.features_and_logits(x);
      feats.push_back(f.cpu());
      logits.push_back(z.cpu());
    } else {
      feats.push_back(model.features(x).cpu());
    }
  }
  auto t1 = std::chrono::steady_clock::now();
  out.features = at::cat(feats).to(at::kFloat).contiguous();
  if (!logits.empty()) out.source_logits = at::cat(logits).to(at::kFloat).contiguous();
  out.seconds_features = std::chrono::duration<double>(t1 - t0).count();
  if (sketch) {
    for (size_t lo = 0; lo < out.indices.size(); lo += static_cast<size_t>(cfg.batch_size)) {
      std::vector<int64_t> batch(out.indices.begin() + static_cast<ptrdiff_t>(lo),
                                 out.indices.begin() + static_cast<ptrdiff_t>(std::min(out.indices.size(), lo + cfg.batch_size)));
      sketches.push_back(model.grad_sketch(images_tensor(set, batch, channels), cfg.lgc_projections, cfg.sketch_dim, seed,
                                                     cfg.lgc_memory_mb));
    }
    out.grad_sketch = at::cat(sketches).to(at::kFloat).contiguous();
    out.seconds_sketch = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  }
  return out;
}

}  // namespace zoobench
