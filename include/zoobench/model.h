// The model zoo: a manifest of entries (zoobench's own networks or
// TorchScript files exported from PyTorch) and Model, one entry ready for
// feature extraction and fine-tuning. Inputs are float N x C x H x W in
// [0, 1] with the entry's channels; models normalise internally.
#pragma once
#include <ATen/core/Tensor.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace zoobench {
namespace comm {
class Collective;
}

struct ManifestEntry {
  std::string name;
  std::string format = "builtin";  // builtin | torchscript
  std::string kind = "expert";     // expert | multi_domain | generic | external
  std::string arch;                // builtin: resnet8 | resnet14 | resnet20 | cnn
  int width = 0;
  std::string weights;  // path relative to the manifest's folder; ${NAME} = an environment variable
  std::string unset_env;  // the first variable `weights` names that is not set ("" = none): loading it is an error
  std::string sha256;   // of the weights file
  int in_channels = 1;
  int input_size = 32;
  std::vector<double> mean, std;  // per input channel
  std::vector<std::string> source_domains;
  std::vector<std::string> source_classes;  // of this entry's head
  int domain_index = 0;                     // multi-domain view: which BatchNorm set and head
  std::vector<int64_t> head_classes;        // builtin: classes of every head (one per domain)
  double source_test_acc = -1;              // on the source domain's test split
  std::string train_config;                 // the training settings, as YAML (equal => no retraining)
  std::string features_method = "features";  // torchscript: method returning N x D
  std::string logits_method = "forward";      // torchscript: method returning N x source classes; "" = no source head
  // torchscript, optional: a method returning (features, logits) from one
  // forward pass; extraction calls it instead of the two methods above.
  std::string features_and_logits_method;
  // torchscript: the parameter tensor LGC differentiates (a name from the
  // module's named_parameters); "" = the last convolution or linear weight
  // that the features depend on.
  std::string lgc_parameter;
};

struct Manifest {
  std::filesystem::path file;  // where it was loaded from ("" = built in memory)
  std::filesystem::path dir;   // weights paths are relative to it
  std::vector<ManifestEntry> entries;
  static Manifest load(const std::filesystem::path& file);  // ConfigError naming file and entry
  void save(const std::filesystem::path& file) const;       // atomic
  const ManifestEntry* find(const std::string& name) const;
};

std::string sha256_file(const std::filesystem::path& path);
// The file's bytes, checked against the digest ("" = unchecked): what is
// hashed is what gets loaded, so the file cannot change in between.
std::string read_verified(const std::filesystem::path& file, const std::string& sha256, const std::string& who);

// What a manifest must say before libtorch runs one of its files. A
// TorchScript file is a program and torch::load unpickles, so `run` and
// `score` load only files pinned by their SHA-256 (`zoobench zoo pin`), and
// only from inside the manifest's folder (symbolic links resolved) unless the
// user allows a zoo kept elsewhere (--allow-outside-zoo, or
// ZOOBENCH_ALLOW_OUTSIDE_ZOO=1 in a job's environment).
struct LoadRules {
  bool allow_outside_zoo = false;
  bool require_pinned = true;  // false: `zoo pin`, which computes the digests
};

// Whether `file`, resolved, lies outside the manifest's resolved folder.
struct OutsideZoo {
  bool outside = false;
  std::filesystem::path real, home;
};
OutsideZoo outside_zoo(const Manifest& manifest, const std::filesystem::path& file);

// The entry's weights file, checked against the rules: ConfigError for an
// unset variable, an unpinned entry or a file outside the folder, DataError for
// a missing file. Does not hash the file.
std::filesystem::path weights_file(const Manifest& manifest, const ManifestEntry& entry, const LoadRules& rules);

// `zoobench zoo pin`: every entry's digest, and with write = true the
// manifest rewritten in place with the changed ones (its comments, variables
// and layout kept; atomic; refused for an entry written as a one-line map).
struct Pin {
  std::string name;
  std::filesystem::path file;
  std::string before, after;  // the manifest's sha256 ("" = none) and the file's
};
std::vector<Pin> pin_manifest(const std::filesystem::path& manifest, const LoadRules& rules, bool write);

// The model's input resolution: images of another size are resized to
// input_size x input_size (bilinear, antialiased as torchvision's Resize with
// antialias=True) before the entry's normalisation.
at::Tensor resize_to_input(const at::Tensor& x, int input_size);

// A trainable copy of a model with a fresh linear head, for fine-tuning.
class FineTunable {
 public:
  virtual ~FineTunable() = default;
  virtual at::Tensor forward(const at::Tensor& x) = 0;  // new-head logits
  virtual at::Tensor features(const at::Tensor& x) = 0;  // the layer before the head, eval mode, no graph
  virtual std::vector<at::Tensor> parameters() = 0;
  // Running statistics and other state that is not trained (BatchNorm).
  virtual std::vector<at::Tensor> buffers() = 0;
  virtual void train(bool on) = 0;
  // Data-parallel training: BatchNorm statistics over the group's whole
  // batch. Only zoobench's own architectures can; others throw.
  virtual void set_sync_batch_norm(comm::Collective* group) = 0;
  virtual void to(const at::Device& device) = 0;
};

class Model {
 public:
  virtual ~Model() = default;
  const ManifestEntry& entry() const { return entry_; }
  const std::string& name() const { return entry_.name; }
  virtual at::Tensor features(const at::Tensor& x) = 0;  // N x D, eval mode, no graph
  virtual at::Tensor logits(const at::Tensor& x) = 0;    // N x source classes
  // Both from one forward pass where the architecture allows (extraction's hot path).
  virtual std::pair<at::Tensor, at::Tensor> features_and_logits(const at::Tensor& x) { return {features(x), logits(x)}; }
  // TorchScript entries with logits_method "" are feature extractors without a source head.
  bool has_source_head() const { return entry_.format != "torchscript" || !entry_.logits_method.empty(); }
  virtual int64_t feature_dim() = 0;
  // Per-sample gradient sketches of m Gaussian combinations of the outputs
  // (docs/selectors.md, LGC): N x K (m blocks of K / m). zoobench's own
  // architectures: the last convolution's weights, Kronecker-structured
  // sketch. TorchScript: one parameter tensor (lgc_parameter), per-sample
  // autograd and a dense Gaussian sketch applied to at most memory_mb MiB of
  // held gradients at a time, 0 = one sample at a time (the result does not
  // depend on it).
  virtual at::Tensor grad_sketch(const at::Tensor& x, int m, int sketch_dim, uint64_t seed, int memory_mb = 1024) = 0;
  // Extraction when LGC is scored: one batch's features, source logits
  // (undefined without a source head) and gradient sketch. zoobench's own
  // architectures take all three from one forward pass, which the sketch
  // traces; the default runs extraction's pass, then the sketch's own.
  // The seconds are what each output costs on its own: the sketch's include
  // the forward pass it traces.
  struct Traced {
    at::Tensor features, logits, sketch;
    double seconds_features = 0, seconds_sketch = 0;
  };
  virtual Traced features_logits_and_sketch(const at::Tensor& x, int m, int sketch_dim, uint64_t seed,
                                            int memory_mb = 1024);
  // What the sketch differentiates and how it projects, for the variant:
  // "kronecker:<layer>" or "dense:<parameter>".
  virtual std::string sketch_target() = 0;
  virtual std::unique_ptr<FineTunable> finetune_copy(int64_t classes, uint64_t seed) = 0;
  // Where the model computes; inputs are moved there, outputs come back on the CPU.
  virtual void to(const at::Device& device) = 0;
  virtual at::Device device() const = 0;

 protected:
  explicit Model(ManifestEntry e) : entry_(std::move(e)) {}
  ManifestEntry entry_;
};

// Verifies the rules, the weights' checksum and the outputs' shapes on a
// probe batch; an Error naming the entry otherwise.
std::unique_ptr<Model> load_model(const Manifest& manifest, const ManifestEntry& entry, const LoadRules& rules = {});

}  // namespace zoobench
