// Training-time augmentation shared by zoo training and fine-tuning.
#pragma once
#include <ATen/core/Tensor.h>
#include <ATen/core/Generator.h>

namespace zoobench {

// Random crop after replicate-padding by `pad` pixels, and (when `flip`)
// a left-right flip with probability 1/2; per sample, from `gen`.
at::Tensor augment(const at::Tensor& batch, int pad, bool flip, at::Generator& gen);

}  // namespace zoobench
