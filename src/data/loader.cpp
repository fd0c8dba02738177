#include "zoobench/loader.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdlib>
#include <cstring>
#include <numeric>

#include "zoobench/error.h"
#include "zoobench/process.h"

namespace zoobench {
namespace {

// A float tensor whose pages the kernel may back with 2 MiB huge pages: a
// whole data set is hundreds of MB written once, and first-touch faults on
// 4 KiB pages cost more than the conversion itself (numpy does the same).
at::Tensor empty_huge(std::vector<int64_t> sizes) {
  int64_t numel = 1;
  for (auto s : sizes) numel *= s;
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(numel, 1)) * sizeof(float);
  if (bytes < (size_t{2} << 20)) return at::empty(sizes, at::kFloat);
  return at::from_blob(alloc_huge(bytes), sizes, [](void* q) { std::free(q); }, at::TensorOptions().dtype(at::kFloat));
}

}  // namespace

at::Tensor images_tensor(const ImageSet& set, const std::vector<int64_t>& indices, int channels) {
  const int in_c = set.channels;
  const int out_c = channels == 0 ? in_c : channels;
  if (out_c != 1 && out_c != 3) throw DataError("channels must be 1 or 3, got " + std::to_string(channels));
  const int64_t n = static_cast<int64_t>(indices.size());
  const int64_t hw = static_cast<int64_t>(set.height) * set.width;
  for (int64_t i : indices)
    if (i < 0 || static_cast<size_t>(i) >= set.size())
      throw DataError("image index " + std::to_string(i) + " is outside data set '" + set.name + "'");
  at::Tensor out = empty_huge({n, out_c, set.height, set.width});
  float* dst = out.data_ptr<float>();
  const uint8_t* src = set.images.data();
  const int64_t* idx = indices.data();
  at::parallel_for(0, n, 256, [=](int64_t lo, int64_t hi) {
    // Everything by value: a write through float* could alias a captured
    // reference and would stop the loops from vectorising.
    constexpr float k = 1.0f / 255.0f;
    for (int64_t i = lo; i < hi; ++i) {
      const uint8_t* __restrict s = src + static_cast<size_t>(idx[i]) * in_c * hw;
      float* __restrict d = dst + i * out_c * hw;
      if (in_c == out_c) {
        for (int64_t p = 0; p < in_c * hw; ++p) d[p] = s[p] * k;
      } else if (in_c == 1) {
        for (int64_t p = 0; p < hw; ++p) d[p] = s[p] * k;
        std::memcpy(d + hw, d, sizeof(float) * hw);
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
