// Pieces shared by the two kinds of Model: the input transform (resize to the
// entry's resolution, then normalise) and the seeded Gaussian matrices of the
// gradient sketches.
#pragma once
#include <torch/script.h>
#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "zoobench/model.h"

namespace zoobench::zoo {

class InputTransform {
 public:
  explicit InputTransform(const ManifestEntry& e);
  at::Tensor operator()(const at::Tensor& x) const;
  void to(const at::Device& d);
  at::Device device() const { return mean_.device(); }

 private:
  at::Tensor mean_, std_;
  int size_;
};

// Independent of the global RNG and of the device: drawn on the CPU.
at::Tensor gaussian(std::vector<int64_t> shape, uint64_t seed);

// A copy of a TorchScript module for inference: frozen (torch.jit.freeze:
// parameters and attributes become constants of the graphs, so each
// BatchNorm folds into the convolution before it), on the CPU also optimised
// (torch.jit.optimize_for_inference: oneDNN convolutions on prepacked
// weights, the additions and ReLUs after them fused), keeping `forward` and
// `methods`. In PyTorch on the same libtorch a torchvision ResNet-18 ran 1.6x
// faster so, at 32 x 32 and at 224 x 224. Each kept method must give the
// module's own result on `probe` (a batch of the module's inputs) to 1e-4 of
// its largest value, or the copy is not used: libtorch 1.13's optimisation
// gets a torchvision MobileNet-V3 wrong by half its values, where freezing
// alone is exact, so that model is frozen only. nullopt where no copy
// agrees or none can be made (a method the module lacks, one that assigns
// to an attribute).
std::optional<torch::jit::Module> freeze_for_inference(const torch::jit::Module& m, const std::vector<std::string>& methods,
                                                       const at::Tensor& probe);

std::unique_ptr<Model> make_script_model(ManifestEntry e, torch::jit::Module m, std::string file);

}  // namespace zoobench::zoo
