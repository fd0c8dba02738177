// Experiment configuration: YAML with a strict schema. Every key, its type,
// range and default live in one table (src/config/schema.cpp); parsing
// rejects unknown keys, wrong types and out-of-range values with
// "file:line:col: key.path: message".
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace zoobench {

// One few-shot target task: which data set, which classes, how many shots.
struct TaskSpec {
  std::string name;                  // unique within a config; default "<dataset>"
  std::string dataset;               // a packed domain name, e.g. "opencv-digits"
  std::vector<std::string> classes;  // class names; empty = every class
  int shots = 10;                    // training images per class (validation carved from these)
  uint64_t seed = 0;
  double val_fraction = 0.2;         // share of the shots held out for choosing the lr
  int test_per_class = 0;            // 0 = every test image of the class
  bool drop_small_classes = false;   // drop classes with < shots training images instead of failing
  std::string where;                 // "file:line:col" of the entry, for later errors
};

struct Config {
  std::string source;  // the file it came from, or "<defaults>"
  std::string name;
  uint64_t seed = 0;
  int threads = 0;  // libtorch intra-op threads per rank; 0 = cores / local ranks
  std::string data_dir;
  std::string results_dir;
  std::vector<std::string> domains;  // domains this experiment packs and reads
  std::vector<TaskSpec> tasks;
  std::string resolved_yaml;  // every key with defaults filled in: stored in outputs
};

// Throws ConfigError naming file, line, column and key path.
Config load_config(const std::filesystem::path& file);
Config parse_config(const std::string& yaml_text, const std::string& source_name);
// The schema as text: every key with type, default, range and meaning.
std::string explain_config();

}  // namespace zoobench
