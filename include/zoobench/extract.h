// Per (model, task) cell: the arrays every selector reads, computed once.
#pragma once
#include <ATen/core/Tensor.h>

#include "zoobench/config.h"
#include "zoobench/dataset.h"
#include "zoobench/model.h"
#include "zoobench/task.h"

namespace zoobench {

struct CellArrays {
  std::vector<int64_t> indices;  // data-set indices of the scored samples
  at::Tensor features;           // N x D float32
  at::Tensor labels;             // N int64, task labels
  at::Tensor source_logits;      // N x Cs float32
  at::Tensor grad_sketch;        // N x (m K) float32, when asked for
  double seconds_features = 0, seconds_sketch = 0;
};

// The samples scores see: the task's training shots (train + validation),
// at most max_per_class per class (0 = all), in task order.
std::vector<size_t> scored_samples(const Task& task, int max_per_class);

// Batched, eval mode, no autograd graph except for the sketch. Deterministic
// at a fixed thread count.
CellArrays extract_cell(Model& model, const ImageSet& set, const Task& task, const ExtractConfig& cfg, bool sketch,
                        uint64_t seed);

}  // namespace zoobench
