// Training zoobench's own zoo: single-domain experts, the Multi-BN
// multi-domain expert (one entry per domain view) and the generic model.
#pragma once
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "zoobench/config.h"
#include "zoobench/model.h"

namespace zoobench {

struct ZooJobResult {
  std::string name;  // the ModelSpec's name
  bool trained = false;  // false: an up-to-date entry was kept
  double seconds = 0;
  std::vector<std::pair<std::string, double>> accuracies;  // entry name -> source test accuracy
};

// One line per zoo entry of these jobs: "<prefix><name> source test accuracy
// 93.1% (trained in 12.0s | <kept>)".
std::string zoo_report(const std::vector<ZooJobResult>& jobs, const std::string& prefix, const std::string& kept);

// The manifest a config uses: zoo.manifest when set, else <zoo.dir>/manifest.yaml.
std::filesystem::path manifest_path(const Config& c);

// Trains the configured models whose entries are missing or stale, this rank
// taking every world-th model; `barrier` syncs the ranks before rank 0 writes
// manifest.yaml. A weights file whose checksum differs from its manifest is
// an error unless `force`.
std::vector<ZooJobResult> train_zoo(const Config& c, const std::filesystem::path& data_dir, int rank, int world,
                                    const std::function<void()>& barrier, bool force, bool quiet);

}  // namespace zoobench
