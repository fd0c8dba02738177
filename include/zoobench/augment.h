// Training-time augmentation shared by zoo training and fine-tuning.
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

namespace zoobench {

// Random crop after replicate-padding by `pad` pixels, and (when `flip`)
// a left-right flip with probability 1/2; per sample, from `gen`.
at::Tensor augment(const at::Tensor& batch, int pad, bool flip, at::Generator& gen);

// The training batch of rows `idx` (int64) of `images` (N x C x H x W float32),
// augmented as augment(images.index_select(0, idx), pad, flip, gen) would,
// from the same draws of `gen`, written into `out` in one pass: no per-sample
// tensors, and no allocation once `out` has held a batch as large (it is
// resized to idx.size(0) x C x H x W and its storage reused).
void assemble_batch(at::Tensor& out, const at::Tensor& images, const at::Tensor& idx, int pad, bool flip,
                    at::Generator& gen);

}  // namespace zoobench
