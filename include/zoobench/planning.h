// `zoobench plan`: an experiment's grid and cost before anything runs, from
// the config alone. Paths the config names may be absent (a campaign
// planned on a laptop for a cluster): the plan says which, assumes what it
// must, and says so.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "zoobench/config.h"
#include "zoobench/plan.h"

namespace zoobench {

struct PathCheck {
  std::string what;  // "packed data set glyphs-thai", "zoo manifest", "zoo weights resnet101-food"
  std::filesystem::path path;
  bool present = false;
  std::string note;  // what happens if absent ("packed from the installed packages by the prepare job")
};

struct CampaignPlan {
  Plan plan;
  std::vector<PathCheck> paths;
  std::vector<std::string> assumptions;  // every size the plan could not read, and what it took instead
  std::vector<double> seconds;           // per unit: measured where a shard holds it, else estimated
  size_t measured = 0;                   // units whose seconds come from shards
  std::string calibration;               // how the estimate of unmeasured units was scaled
};

// measured_from: an experiment folder (results/<exp>) whose shards' seconds
// calibrate the estimate; empty = this experiment's own folder.
CampaignPlan plan_campaign(const Config& c, const std::filesystem::path& data_dir,
                           const std::filesystem::path& measured_from = {});

// The most workers (a power of two) whose simulated makespan still keeps
// `min_utilisation` of them busy (dynamic dispatch) and gives each at least
// `min_work_s` seconds of work, so that starting a worker (reading the data,
// loading the zoo) stays small beside it; at most `max_workers`.
int suggest_workers(const Plan& plan, const std::vector<double>& seconds, double min_utilisation = 0.8,
                    double min_work_s = 600, int max_workers = 1024);

}  // namespace zoobench
