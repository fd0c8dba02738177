// Few-shot target tasks: a TaskSpec (data set, classes, shots, seed,
// validation fraction) gives the same train/val/test indices on every
// machine (portable RNG, per-class streams).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "zoobench/config.h"
#include "zoobench/dataset.h"

namespace zoobench {

struct Task {
  TaskSpec spec;
  std::vector<int64_t> class_ids;  // data-set class ids, in task-label order
  std::vector<std::string> class_names;
  // Indices into the data set, and their task labels in [0, classes).
  std::vector<int64_t> train, val, test;
  std::vector<int64_t> train_labels, val_labels, test_labels;
  size_t classes() const { return class_ids.size(); }
};

// Throws DataError naming the task (and its config location) when a class is
// unknown, has fewer training images than the shots asked for or no test
// images, or when fewer than 2 classes remain.
Task sample_task(const TaskSpec& spec, const ImageSet& set);

}  // namespace zoobench
