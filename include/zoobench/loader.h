// Packed images -> float tensors for models. The only data header that
// pulls in torch; keep it out of code that does not need tensors.
#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

#include "zoobench/dataset.h"

namespace zoobench {

// float32 N x channels x H x W in [0, 1]. channels 0 = as stored; grey -> RGB
// repeats the plane, RGB -> grey takes ITU-R 601 luma (what a model expects).
at::Tensor images_tensor(const ImageSet& set, const std::vector<int64_t>& indices, int channels = 0);
at::Tensor images_tensor(const ImageSet& set, int channels = 0);  // every image
at::Tensor labels_tensor(const std::vector<int64_t>& labels);      // int64 N

}  // namespace zoobench
