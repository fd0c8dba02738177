// Small float64 helpers shared by the selectors.
#pragma once
#include <ATen/core/Tensor.h>

namespace zoobench::detail {

// Rows of F projected on its first k principal axes (k capped at min(N, D),
// and with drop_null at the rank of the centred F: a component without
// variance is rounding noise whose sign changes with the sample order), with
// scikit-learn's sign rule: in each component the entry of U with the largest
// magnitude is positive.
at::Tensor pca(const at::Tensor& f, int64_t k, bool drop_null = false);
// Pseudo-inverse by SVD, singular values below rcond * largest cut (numpy's rule).
at::Tensor pinv(const at::Tensor& a, double rcond);
// Covariance of the rows, 1/(N - ddof).
at::Tensor covariance(const at::Tensor& x, int64_t ddof);
// Each row replaced by the mean of its class.
at::Tensor class_means_per_row(const at::Tensor& f, const at::Tensor& labels, int64_t classes);

}  // namespace zoobench::detail
