#include "zoobench/augment.h"

#include <torch/torch.h>

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

}  // namespace zoobench
