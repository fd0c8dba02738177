// Pieces shared by the two kinds of Model: the input transform (resize to the
// entry's resolution, then normalise) and the seeded Gaussian matrices of the
// gradient sketches.
#pragma once
#include <torch/script.h>
#include <torch/torch.h>

#include <memory>
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

std::unique_ptr<Model> make_script_model(ManifestEntry e, torch::jit::Module m, std::string file);

}  // namespace zoobench::zoo
