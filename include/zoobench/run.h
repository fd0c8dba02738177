// `zoobench run`: the whole pipeline of one experiment config.
#pragma once
#include <filesystem>
#include <functional>
#include <string>

#include "zoobench/config.h"

namespace zoobench {

struct RunOptions {
  std::filesystem::path data_dir;
  bool quiet = false;
  int threads = 1;
  // Ranks share packing and zoo training; cells run on rank 0 (the
  // distributed scheduler is a later stage).
  int rank = 0, world = 1;
  std::function<void()> barrier = [] {};
  std::string context_versions;  // "libtorch=..;mpi=..;nccl=..", stored as root attributes
};

// pack missing data -> train missing zoo entries -> sample tasks -> extract
// -> score -> fine-tune -> results/<name>/results.h5 (atomic) -> summary on stdout.
std::filesystem::path run_experiment(const Config& c, const RunOptions& opt);

}  // namespace zoobench
