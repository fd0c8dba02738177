#include "correlation.h"

#include <ATen/ATen.h>

#include <cmath>

#include "linalg.h"
#include "zoobench/error.h"

namespace zoobench::detail {

double kernel_label_correlation(const at::Tensor& x_in, const at::Tensor& labels, int64_t classes) {
  at::Tensor x = x_in.to(at::kDouble);
  const double n = static_cast<double>(x.size(0));
  at::Tensor onehot = at::one_hot(labels, classes).to(at::kDouble);  // N x C
  at::Tensor s = x.sum(0);                                           // sum_i f_i
  double sum_theta = s.dot(s).item<double>();
  // sum Theta^2 = ||X^T X||_F^2 = ||X X^T||_F^2: take the smaller Gram, O(N D min(N, D)).
  double sum_theta2 = symmetric_sq_norm(x.size(1) <= x.size(0) ? gram_cols_lower(x) : gram_rows_lower(x));
  at::Tensor counts = onehot.sum(0);
  double sum_k = 2.0 * counts.pow(2).sum().item<double>() - n * n;  // K = 2 O O^T - 1
  double sum_k2 = n * n;
  double sum_theta_k = 2.0 * at::mm(x.t(), onehot).pow(2).sum().item<double>() - sum_theta;
  double n2 = n * n;
  double mu_t = sum_theta / n2, mu_k = sum_k / n2;
  double num = sum_theta_k - n2 * mu_t * mu_k;
  double var_t = sum_theta2 - n2 * mu_t * mu_t, var_k = sum_k2 - n2 * mu_k * mu_k;
  if (var_k <= 0) throw DataError("kernel-label correlation needs at least 2 classes present");
  // Constant kernel (e.g. all-zero features): no correlation to measure.
  if (var_t <= 1e-300 * std::max(1.0, sum_theta2)) return 0.0;
  return num / std::sqrt(var_t * var_k);
}

}  // namespace zoobench::detail
