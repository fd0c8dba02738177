// Per (model, task) cell: the arrays every selector reads, computed once.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <string>

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
  at::Tensor grad_sketch;        // N x K float32 (m combinations of K/m), when asked for
  double seconds_features = 0, seconds_sketch = 0;
};

// The samples scores see: the task's training shots (train + validation),
// at most max_per_class per class (0 = all), in task order.
std::vector<size_t> scored_samples(const Task& task, int max_per_class);

// Batched, eval mode, no autograd graph except for the sketch. Deterministic
// at a fixed thread count.
CellArrays extract_cell(Model& model, const ImageSet& set, const Task& task, const ExtractConfig& cfg, bool sketch,
                        uint64_t seed);

// Domain Similarity's source side, once per model: for every class of the
// entry's source domains (`domain_set` gives a packed domain by name, so a
// caller can share one read among the models), the mean feature of up to
// per_class training-split images (a seeded subset) and the class's
// training-split size. DataError naming the entry when it lists no source
// domain or a class its data set lacks.
struct SourceSummary {
  at::Tensor means;   // S x D float64
  at::Tensor counts;  // S float64
  std::vector<std::string> classes;  // "<domain>:<class>"
  double seconds = 0;
  // Why the source data could not be read (no source_domains, a domain not
  // packed); the tensors are then undefined and Domain Similarity gives NaN.
  std::string unavailable;
};
SourceSummary source_summary(Model& model, const std::function<const ImageSet&(const std::string&)>& domain_set,
                             int per_class, int batch_size, uint64_t seed);

}  // namespace zoobench
