#include "linalg.h"

#include <ATen/ATen.h>

namespace zoobench::detail {

at::Tensor pca(const at::Tensor& f, int64_t k, bool drop_null) {
  at::Tensor x = f - f.mean(0, true);
  k = std::min({k, x.size(0), x.size(1)});
  auto [u, s, vh] = at::linalg_svd(x, /*full_matrices=*/false);
  // Components without variance (N <= D leaves at least one) are rounding
  // noise whose sign and direction change with the sample order: drop them.
  const double smax = s.numel() ? s.max().item<double>() : 0.0;
  if (drop_null) k = std::min<int64_t>(k, (s > 1e-12 * smax).sum().item<int64_t>());
  u = u.narrow(1, 0, k);
  s = s.narrow(0, 0, k);
  at::Tensor rows = u.abs().argmax(0);
  at::Tensor signs = u.gather(0, rows.unsqueeze(0)).squeeze(0).sign();
  signs = at::where(signs == 0, at::ones_like(signs), signs);
  return u * signs * s;
}

at::Tensor pinv(const at::Tensor& a, double rcond) {
  auto [u, s, vh] = at::linalg_svd(a, false);
  double cut = rcond * s.max().item<double>();
  at::Tensor inv = at::where(s > cut, 1.0 / s, at::zeros_like(s));
  return at::mm(vh.t() * inv, u.t());
}

at::Tensor covariance(const at::Tensor& x, int64_t ddof) {
  at::Tensor c = x - x.mean(0, true);
  return at::mm(c.t(), c) / static_cast<double>(x.size(0) - ddof);
}

at::Tensor class_means_per_row(const at::Tensor& f, const at::Tensor& labels, int64_t classes) {
  at::Tensor onehot = at::one_hot(labels, classes).to(at::kDouble);  // N x C
  at::Tensor counts = onehot.sum(0).clamp_min(1).unsqueeze(1);
  at::Tensor means = at::mm(onehot.t(), f) / counts;               // C x D
  return means.index_select(0, labels);
}

}  // namespace zoobench::detail
