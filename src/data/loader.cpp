#include "zoobench/loader.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstring>
#include <numeric>

#include "zoobench/error.h"

namespace zoobench {

at::Tensor images_tensor(const ImageSet& set, const std::vector<int64_t>& indices, int channels) {
  const int in_c = set.channels;
  const int out_c = channels == 0 ? in_c : channels;
  if (out_c != 1 && out_c != 3) throw DataError("channels must be 1 or 3, got " + std::to_string(channels));
  const int64_t n = static_cast<int64_t>(indices.size());
  const int64_t hw = static_cast<int64_t>(set.height) * set.width;
  for (int64_t i : indices)
    if (i < 0 || static_cast<size_t>(i) >= set.size())
      throw DataError("image index " + std::to_string(i) + " is outside data set '" + set.name + "'");
  at::Tensor out = at::empty({n, out_c, set.height, set.width}, at::kFloat);
  float* dst = out.data_ptr<float>();
  const uint8_t* src = set.images.data();
  constexpr float k = 1.0f / 255.0f;
  at::parallel_for(0, n, 256, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const uint8_t* s = src + static_cast<size_t>(indices[i]) * in_c * hw;
      float* d = dst + i * out_c * hw;
      if (in_c == out_c) {
        for (int64_t p = 0; p < in_c * hw; ++p) d[p] = s[p] * k;
      } else if (in_c == 1) {
        for (int64_t p = 0; p < hw; ++p) d[p] = s[p] * k;
        std::memcpy(d + hw, d, sizeof(float) * hw);  // contiguous plane copies vectorise best
        std::memcpy(d + 2 * hw, d, sizeof(float) * hw);
      } else {
        for (int64_t p = 0; p < hw; ++p) d[p] = (0.299f * s[p] + 0.587f * s[hw + p] + 0.114f * s[2 * hw + p]) * k;
      }
    }
  });
  return out;
}

at::Tensor images_tensor(const ImageSet& set, int channels) {
  std::vector<int64_t> all(set.size());
  std::iota(all.begin(), all.end(), 0);
  return images_tensor(set, all, channels);
}

at::Tensor labels_tensor(const std::vector<int64_t>& labels) {
  return at::tensor(at::ArrayRef<int64_t>(labels), at::kLong);
}

}  // namespace zoobench
