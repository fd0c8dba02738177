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
  std::string group;                 // the entry's name: shot_grid x seeds expand one entry into several tasks
  std::string dataset;               // a packed domain name, e.g. "opencv-digits"
  std::vector<std::string> classes;  // class names; empty = every class
  static constexpr int kAllShots = 0;  // `shots: all`
  int shots = 10;                    // training images per class (validation carved from these); kAllShots = every one
  uint64_t seed = 0;
  double val_fraction = 0.2;         // share of the shots held out for choosing the lr
  int test_per_class = 0;            // 0 = every test image of the class
  bool drop_small_classes = false;   // drop classes with < shots training images instead of failing
  bool need_test = true;             // false: scoring only (`zoobench score`), a class may lack test images
  int min_steps = -1;                // this task's floor on fine-tuning steps; -1 = finetune.min_steps
  std::string where;                 // "file:line:col" of the entry, for later errors
};

// One network that zoobench trains for its zoo.
struct ModelSpec {
  std::string name;
  std::string arch = "resnet8";  // resnet8 | resnet14 | resnet20 | cnn
  int width = 8;
  std::vector<std::string> domains;  // one for an expert, several for multi-domain / generic
  std::vector<std::string> classes;  // class subset of the single domain; empty = all
  int epochs = 0;                    // 0 = ZooTrainConfig::epochs
  enum class Kind { Expert, MultiDomain, Generic } kind = Kind::Expert;
};

struct ZooTrainConfig {
  int epochs = 2;
  int batch_size = 64;
  double lr = 0.05;
  double weight_decay = 5e-4;
  int max_images = 8000;
  uint64_t seed = 0;
};

struct ZooConfig {
  std::string dir = "zoo";
  std::string manifest;  // an existing manifest to use as is (no training)
  ZooTrainConfig train;
  std::vector<ModelSpec> models;  // experts, then the multi-domain expert, then the generic model
};

struct FinetuneConfig {
  int epochs = 20;
  int min_steps = 0;  // floor on optimisation steps: epochs rise until epochs x batches >= min_steps
  int batch_size = 32;
  std::vector<double> lrs{0.01, 0.005, 0.001};
  double momentum = 0.9;
  double weight_decay = 1e-4;
  int crop_padding = 2;
  std::vector<int> decay_epochs;  // lr x0.1 after each; empty = after 50 % and 83 % of the epochs
  // Widen the grid where its edge binds: for a task on which the top (bottom)
  // lr binds by the rule of lr_grid.h, every model also fine-tunes at twice
  // the top (half the bottom) lr.
  bool extend_edges = false;
  std::vector<std::string> flip_domains;
};

// Epochs of one fine-tune on `train_images`: finetune.epochs, raised until
// the optimisation steps (batches an epoch; a ragged last batch of one image
// is skipped, as BatchNorm needs two) reach finetune.min_steps.
int finetune_epochs(const FinetuneConfig& cfg, int64_t train_images);
// The fine-tuning recipe of one task: cfg with the task's own step floor.
FinetuneConfig finetune_for(const FinetuneConfig& cfg, const TaskSpec& task);
// The lr factor of epoch e (from 0) of a fine-tune of `epochs` epochs: 0.1 to
// the number of decay epochs already passed.
double lr_factor(const FinetuneConfig& cfg, int epochs, int e);

struct ExtractConfig {
  int max_per_class = 25;
  int batch_size = 256;
  int lgc_projections = 4;
  int sketch_dim = 4096;
  bool cache = true;
  std::string probe_model;   // RSA/DDS probe: this zoo entry fine-tuned briefly; "" = the zoo's generic entry
  int probe_epochs = 5;
  double probe_lr = 0.005;   // the RSA paper's probe lr
  int source_per_class = 100;  // Domain Similarity: source images per class behind each class mean
  int lgc_memory_mb = 1024;    // TorchScript LGC: per-sample gradients held at once before projecting
  int score_memory_mb = 8192;  // one score's memory (Selector::memory_bytes); a score that needs more is refused
};

// Execution settings: how a run is spread, not what it computes. A resumed
// experiment may change them.
struct ExecutionConfig {
  int ranks_per_cell = 1;       // a group of R ranks fine-tunes one unit data-parallel
  std::string device = "auto";  // auto | cpu | cuda
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
  ZooConfig zoo;
  FinetuneConfig finetune;
  ExtractConfig extract;
  std::vector<std::string> selectors;
  ExecutionConfig execution;
  std::string resolved_yaml;  // every key with defaults filled in (paths as written, ${...} unexpanded): stored in outputs
  // Paths (results_dir, data.dir, zoo.dir, zoo.manifest) may name environment
  // variables as ${NAME}, so that one config serves every cluster. Those left
  // unexpanded because the variable is unset: "zoo.manifest: ZOO_ROOT".
  std::vector<std::string> unset_env;
};

// Throws ConfigError naming file, line, column and key path. Unless
// allow_unset_env (`zoobench plan`, which reports them as missing paths), a
// path naming an unset environment variable is an error too.
Config load_config(const std::filesystem::path& file, bool allow_unset_env = false);
// Throws ConfigError for the first entry of c.unset_env among `keys` (every
// key when empty): a command checks the paths it will use, after its options
// replaced some (path_overridden).
void require_env(const Config& c, const std::vector<std::string>& keys = {});
// A command-line option replaced the path at `key`: its variables no longer matter.
void path_overridden(Config& c, const std::string& key);
// data.dir is replaced when --data-dir is given or ZOOBENCH_DATA_DIR is set
// (resolve_data_dir's order).
void data_dir_overridden(Config& c, const std::string& cli_value);
// "${NAME}" replaced by the environment variable NAME; unset ones are left as
// they are and their names appended to `unset`. A "${" without "}" or a name
// outside [A-Za-z_][A-Za-z0-9_]* throws ConfigError naming `who`.
std::string expand_env(const std::string& text, const std::string& who, std::vector<std::string>* unset);
Config parse_config(const std::string& yaml_text, const std::string& source_name);
// The schema as text: every key with type, default, range and meaning.
std::string explain_config();

}  // namespace zoobench
