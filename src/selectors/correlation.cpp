#include "correlation.h"

#include <ATen/ATen.h>

#include <cmath>

#include "linalg.h"
#include "zoobench/error.h"

namespace zoobench::detail {

double kernel_label_correlation(const at::Tensor& x_in, const at::Tensor& labels, int64_t classes) {
  at::Tensor x = x_in.to(at::kDouble);
  const double n = static_cast<double>(x.size(0));
  // Class sums by one scatter-add (O(N D)); the cross term and sum_i f_i follow from them.
  at::Tensor class_sums = at::zeros({classes, x.size(1)}, at::kDouble).index_add_(0, labels, x);  // C x D
  at::Tensor s = class_sums.sum(0);                                                                 // sum_i f_i
  double sum_theta = s.dot(s).item<double>();
  // sum Theta^2 = ||X^T X||_F^2 = ||X X^T||_F^2: the smaller Gram's triangle, O(N D min(N, D)).
  double sum_theta2 = symmetric_sq_norm(x.size(1) <= x.size(0) ? gram_cols_lower(x) : gram_rows_lower(x));
  at::Tensor counts = at::bincount(labels, {}, classes).to(at::kDouble);
  double sum_k = 2.0 * counts.pow(2).sum().item<double>() - n * n;  // K = 2 O O^T - 1
  double sum_k2 = n * n;
  double sum_theta_k = 2.0 * class_sums.pow(2).sum().item<double>() - sum_theta;  // 2 ||F^T O||_F^2 - ...
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
