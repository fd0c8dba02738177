// Executes one unit of the plan and makes its result durable as a shard.
#pragma once
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "zoobench/config.h"
#include "zoobench/dataset.h"
#include "zoobench/model.h"
#include "zoobench/plan.h"
#include "zoobench/score.h"
#include "zoobench/store.h"
#include "zoobench/task.h"

namespace zoobench {

class UnitRunner {
 public:
  // sets: packed data sets already read (the tasks'); others are read on first use.
  UnitRunner(const Config& c, const Plan& plan, std::vector<Model*> models, std::vector<Task> tasks,
             std::map<std::string, ImageSet> sets, std::filesystem::path data_dir, std::filesystem::path exp_dir, store::Provenance who,
             store::RunContext context);
  // Every rank of the group calls it for a fine-tune or probe unit (trained
  // data-parallel); score and source units run on the group's first rank
  // alone (the others return at once). The first rank writes the shard.
  // Returns the unit's wall seconds.
  double run(size_t unit, comm::Collective* group);
  // True when the unit's work is shared by the whole group.
  static bool group_work(const Unit& u) { return u.kind == UnitKind::Finetune || u.kind == UnitKind::Probe; }

 private:
  const ImageSet& set(const std::string& dataset);
  // Whether an edge unit's fine-tune is needed: its task's grid (the unit's
  // dependencies) binds at that edge by the rule of lr_grid.h; why, in words.
  struct EdgeVerdict {
    bool run = true;
    std::string why;
  };
  EdgeVerdict edge_verdict(const Unit& u) const;
  void write_score(const Unit& u, store::ShardWriter& w);
  const Config& c_;
  const Plan& plan_;
  std::vector<Model*> models_;
  std::vector<Task> tasks_;
  std::filesystem::path data_dir_, exp_dir_;
  store::Provenance who_;
  store::RunContext context_;
  ZooScorer scorer_;
  std::map<std::string, ImageSet> sets_;
};

}  // namespace zoobench
