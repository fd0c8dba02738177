#include "linalg.h"

#include <ATen/ATen.h>

#include <algorithm>

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

namespace zoobench::detail {

Shrunk ledoit_wolf(const at::Tensor& x_in) {
  at::Tensor x = x_in - x_in.mean(0, true);
  const double n = static_cast<double>(x.size(0)), d = static_cast<double>(x.size(1));
  at::Tensor s = at::mm(x.t(), x) / n;
  at::Tensor x2 = x * x;
  at::Tensor trace_terms = x2.sum(0) / n;
  const double mu = trace_terms.sum().item<double>() / d;
  const double beta_ = at::mm(x2.t(), x2).sum().item<double>();
  const double delta_ = s.pow(2).sum().item<double>();
  double beta = (beta_ / n - delta_) / (d * n);
  const double delta = (delta_ - 2 * mu * trace_terms.sum().item<double>() + d * mu * mu) / d;
  beta = std::min(beta, delta);
  const double alpha = beta == 0 ? 0.0 : std::clamp(beta / delta, 0.0, 1.0);
  return {(1 - alpha) * s + alpha * mu * at::eye(x.size(1), at::kDouble), alpha};
}

int64_t components_for_variance(const at::Tensor& f, double frac) {
  at::Tensor s = at::linalg_svdvals(f - f.mean(0, true));
  at::Tensor var = s * s;
  const double total = var.sum().item<double>();
  if (total <= 0) return 1;
  at::Tensor cum = var.cumsum(0) / total;
  auto ca = cum.accessor<double, 1>();
  for (int64_t k = 0; k < cum.size(0); ++k)
    if (ca[k] > frac) return k + 1;
  return cum.size(0);
}

std::vector<int64_t> canonical_order(const at::Tensor& f) {
  at::Tensor c = f.to(at::kDouble).contiguous();
  const int64_t n = c.size(0), d = c.size(1);
  const double* p = c.data_ptr<double>();
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return std::lexicographical_compare(p + a * d, p + (a + 1) * d, p + b * d, p + (b + 1) * d);
  });
  return order;
}

at::Tensor rdm_correlation(const at::Tensor& f) {
  at::Tensor r = f.to(at::kDouble);
  r = r - r.mean(1, true);
  // A constant row correlates with nothing: its norm is floored so it gets similarity 0, not NaN.
  r = r / r.norm(2, 1, true).clamp_min(1e-300);
  return 1 - at::mm(r, r.t());
}

std::vector<double> upper_triangle(const at::Tensor& m) {
  at::Tensor c = m.contiguous();
  const int64_t n = c.size(0);
  auto a = c.accessor<double, 2>();
  std::vector<double> out;
  out.reserve(static_cast<size_t>(n * (n - 1) / 2));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) out.push_back(a[i][j]);
  return out;
}

}  // namespace zoobench::detail
