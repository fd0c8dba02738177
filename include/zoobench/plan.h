// The grid of an experiment as units of work: what to compute, in which
// pieces, what each piece needs first and roughly what it costs.
//
//   probe/<task>                  the RSA/DDS probe model fine-tuned on the task, its features
//   source/<model>                Domain Similarity's source-class means of the model
//   score/<model>/<task>          extraction + every selector's per-model terms
//   finetune/<model>/<task>/<lr>  one fine-tune of the learning-rate grid
//
// With finetune.extend_edges, each (model, task) also has a fine-tune one step
// beyond each edge of the grid (2 x top, bottom / 2) that depends on the whole
// task's grid: it runs only when that edge binds on the task (lr_grid.h) and
// otherwise stores "not needed", so every cell of a task has the same grid.
//
// A score unit depends on its task's probe unit and its model's source unit
// when selectors need them. Zoo-relative scores are combined from the stored
// terms at merge time, so no unit waits for the whole zoo.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "zoobench/config.h"

namespace zoobench {

enum class UnitKind { Probe = 0, Source = 1, Score = 2, Finetune = 3 };
const char* unit_kind_name(UnitKind k);

struct Unit {
  std::string id;  // "finetune/<model>/<task>/<lr>": unique, stable across runs of one config
  UnitKind kind = UnitKind::Score;
  int model = -1, task = -1, lr = -1;  // indices into Plan::models, tasks, lrs (-1 = not applicable)
  std::vector<int> deps;               // indices of units that must be done first
  double cost = 0;                     // estimated seconds (relative; for ordering and simulation)
  int edge = 0;  // a fine-tune beyond the grid's top (+1) or bottom (-1) edge; lr then indexes Plan::edge_lrs
};

// What planning needs to know of a zoo entry and a sampled task.
struct PlanModel {
  std::string name, format = "builtin", arch;
  int width = 8, in_channels = 1, input_size = 32;
  std::string kind = "expert";  // expert | multi_domain | generic | external
};
struct PlanTask {
  std::string name;
  int64_t shot = 0, seed = 0;
  size_t train = 0, val = 0, test = 0, scored = 0, classes = 0;
  std::string group;  // the config entry it came from (its shot counts and seeds vary); "" = name
  int min_steps = -1;  // the task's own floor on fine-tuning steps; -1 = finetune.min_steps
};

struct Plan {
  std::vector<PlanModel> models;  // zoo order
  std::vector<PlanTask> tasks;    // config order
  std::vector<double> lrs;
  std::vector<double> edge_lrs;        // {2 x top, bottom / 2} with finetune.extend_edges, else empty
  std::vector<std::string> selectors;  // registry names, in the config's order
  int probe_model = -1;                // index of the probe model, -1 when no selector needs one
  std::vector<Unit> units;
  int find(const std::string& id) const;  // -1 when absent
  double lr_of(const Unit& u) const { return u.edge ? edge_lrs.at(static_cast<size_t>(u.lr)) : lrs.at(static_cast<size_t>(u.lr)); }
  // The fine-tune unit ids of one cell: the grid's lrs, then the edge lrs.
  std::vector<std::string> finetune_ids(size_t model, size_t task) const;
  std::string to_json() const;
  static Plan from_json(const std::string& text, const std::string& where);
};

// needs: the union of the selectors' Need bits.
Plan make_plan(const Config& c, std::vector<PlanModel> models, std::vector<PlanTask> tasks,
               std::vector<std::string> selector_names, unsigned needs, int probe_model);

// Forward-pass multiply-adds of one image (a rough model; TorchScript entries
// are assumed to cost a ResNet-50's 4.1 G at 224 x 224, scaled by the input's area).
double forward_flops(const PlanModel& m);

// Unit ids are paths; shard files need names: every byte outside
// [A-Za-z0-9._-] becomes %XX.
std::string encode_id(const std::string& id);

}  // namespace zoobench
