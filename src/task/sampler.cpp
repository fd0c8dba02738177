#include <algorithm>
#include <cmath>
#include <set>

#include "zoobench/error.h"
#include "zoobench/random.h"
#include "zoobench/task.h"

namespace zoobench {

Task sample_task(const TaskSpec& spec, const ImageSet& set) {
  std::string who = "task '" + spec.name + "'" + (spec.where.empty() ? "" : " (" + spec.where + ")");
  auto fail = [&](const std::string& m) -> DataError { return DataError(who + ": " + m); };
  Task t;
  t.spec = spec;
  if (spec.classes.empty()) {
    for (size_t c = 0; c < set.class_names.size(); ++c) t.class_ids.push_back(static_cast<int64_t>(c));
  } else {
    std::set<std::string> seen;
    for (const auto& name : spec.classes) {
      auto it = std::find(set.class_names.begin(), set.class_names.end(), name);
      if (it == set.class_names.end()) {
        std::string valid;
        for (const auto& c : set.class_names) valid += (valid.empty() ? "" : ", ") + c;
        throw fail("data set '" + set.name + "' has no class '" + name + "' (classes: " + valid + ")");
      }
      if (!seen.insert(name).second) throw fail("class '" + name + "' is listed twice");
      t.class_ids.push_back(it - set.class_names.begin());
    }
  }
  const bool all = spec.shots == TaskSpec::kAllShots;
  if (spec.shots < 1 && !all) throw fail("shots must be at least 1");
  // shots: all = every training image of each class (at least one); the
  // validation split is then val_fraction of each class's own count.
  const size_t shots = all ? 1 : static_cast<size_t>(spec.shots);

  std::vector<std::vector<int64_t>> pool_train(set.class_names.size()), pool_test(set.class_names.size());
  for (size_t i = 0; i < set.size(); ++i)
    (set.split[i] ? pool_test : pool_train)[set.labels[i]].push_back(static_cast<int64_t>(i));
  if (spec.drop_small_classes) {
    auto small = [&](int64_t c) { return pool_train[c].size() < shots || (spec.need_test && pool_test[c].empty()); };
    t.class_ids.erase(std::remove_if(t.class_ids.begin(), t.class_ids.end(), small), t.class_ids.end());
  }
  if (t.class_ids.size() < 2)
    throw fail("a task needs at least 2 classes, data set '" + set.name + "' gives " + std::to_string(t.class_ids.size()) +
               (spec.drop_small_classes ? " with at least " + std::to_string(shots) + " training images" : ""));

  auto n_val_of = [&](size_t n) { return std::min(n - 1, static_cast<size_t>(std::lround(spec.val_fraction * static_cast<double>(n)))); };
  for (size_t k = 0; k < t.class_ids.size(); ++k) {
    int64_t c = t.class_ids[k];
    const std::string& cname = set.class_names[c];
    t.class_names.push_back(cname);
    auto& tr = pool_train[c];
    auto& te = pool_test[c];
    if (all && tr.empty()) throw fail("class '" + cname + "' of data set '" + set.name + "' has no training images");
    if (tr.size() < shots)
      throw fail("asks for " + std::to_string(shots) + " shots but class '" + cname + "' of data set '" + set.name +
                 "' has only " + std::to_string(tr.size()) + " training images");
    if (te.empty() && spec.need_test) throw fail("class '" + cname + "' of data set '" + set.name + "' has no test images");
    // One stream per (seed, data set, class): adding a class leaves the others' samples as they were.
    Rng rng_train(derive_seed(spec.seed, set.name + "/" + cname, 0));
    rng_train.shuffle(tr);
    const size_t take = all ? tr.size() : shots, n_val = n_val_of(take);
    for (size_t j = 0; j < take; ++j) {
      auto& dst = j < n_val ? t.val : t.train;
      auto& lab = j < n_val ? t.val_labels : t.train_labels;
      dst.push_back(tr[j]);
      lab.push_back(static_cast<int64_t>(k));
    }
    size_t n_test = te.size();
    if (spec.test_per_class > 0 && static_cast<size_t>(spec.test_per_class) < n_test) {
      Rng rng_test(derive_seed(spec.seed, set.name + "/" + cname, 1));
      rng_test.shuffle(te);
      n_test = static_cast<size_t>(spec.test_per_class);
      std::sort(te.begin(), te.begin() + static_cast<ptrdiff_t>(n_test));
    }
    for (size_t j = 0; j < n_test; ++j) {
      t.test.push_back(te[j]);
      t.test_labels.push_back(static_cast<int64_t>(k));
    }
  }
  return t;
}

}  // namespace zoobench
