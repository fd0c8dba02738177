#include "zoobench/augment.h"

#include <torch/torch.h>

#include <algorithm>
#include <stdexcept>

namespace zoobench {

at::Tensor augment(const at::Tensor& batch, int pad, bool flip, at::Generator& gen) {
  if (pad == 0 && !flip) return batch;
  namespace F = torch::nn::functional;
  const int64_t n = batch.size(0), h = batch.size(2), w = batch.size(3);
  at::Tensor padded = pad > 0 ? F::pad(batch, F::PadFuncOptions({pad, pad, pad, pad}).mode(torch::kReplicate)) : batch;
  at::Tensor offs = at::randint(0, 2 * pad + 1, {n, 2}, gen, at::kLong);
  at::Tensor flips = at::randint(0, 2, {n}, gen, at::kLong);
  auto o = offs.accessor<int64_t, 2>();
  auto fl = flips.accessor<int64_t, 1>();
  std::vector<at::Tensor> out;
  out.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    at::Tensor x = padded[i].narrow(1, o[i][0], h).narrow(2, o[i][1], w);
    if (flip && fl[i]) x = x.flip({2});
    out.push_back(x);
  }
  return at::stack(out);
}

void assemble_batch(at::Tensor& out, const at::Tensor& images, const at::Tensor& idx, int pad, bool flip,
                    at::Generator& gen) {
  if (images.dim() != 4 || images.scalar_type() != at::kFloat || !images.is_contiguous() || images.is_cuda())
    throw std::invalid_argument("assemble_batch: images must be a contiguous N x C x H x W float32 CPU tensor");
  const int64_t n = idx.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  if (!out.defined()) out = at::empty({n, c, h, w}, images.options());
  out.resize_({n, c, h, w});
  const at::Tensor rows = idx.to(at::kLong).contiguous();
  const int64_t* row = rows.data_ptr<int64_t>();
  const float* src = images.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const int64_t plane = h * w, image = c * plane;
  if (pad == 0 && !flip) {  // augment() draws nothing then
    for (int64_t i = 0; i < n; ++i) std::copy_n(src + row[i] * image, image, dst + i * image);
    return;
  }
  // The same draws, in the same order, as augment().
  at::Tensor offs = at::randint(0, 2 * pad + 1, {n, 2}, gen, at::kLong);
  at::Tensor flips = at::randint(0, 2, {n}, gen, at::kLong);
  const int64_t* o = offs.data_ptr<int64_t>();
  const int64_t* fl = flips.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t dy = o[2 * i] - pad, dx = o[2 * i + 1] - pad;
    const bool mirror = flip && fl[i];
    // Columns [x0, x1) of the crop read inside the image; the rest repeat its edge (replicate padding).
    const int64_t x0 = std::clamp<int64_t>(-dx, 0, w), x1 = std::clamp<int64_t>(w - dx, x0, w);
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t y = 0; y < h; ++y) {
        const float* in = src + row[i] * image + ch * plane + std::clamp<int64_t>(y + dy, 0, h - 1) * w;
        float* line = dst + i * image + ch * plane + y * w;
        std::fill(line, line + x0, in[0]);
        std::copy(in + x0 + dx, in + x1 + dx, line + x0);
        std::fill(line + x1, line + w, in[w - 1]);
        if (mirror) std::reverse(line, line + w);
      }
  }
}

}  // namespace zoobench
