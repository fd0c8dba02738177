// Small float64 helpers shared by the selectors.
#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

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

namespace zoobench::detail {

// Ledoit-Wolf shrinkage of the 1/N covariance towards (tr S / D) I, as
// scikit-learn's ledoit_wolf computes it (alpha clamped to [0, 1]).
struct Shrunk {
  at::Tensor cov;
  double alpha = 0;
};
Shrunk ledoit_wolf(const at::Tensor& x);
// The number of leading principal components that explain more than `frac`
// of the variance (scikit-learn's PCA(n_components=frac)).
int64_t components_for_variance(const at::Tensor& f, double frac);
// A sample order that depends on the rows' values only (lexicographic), so a
// seeded choice made in this order is invariant to permuting the samples.
std::vector<int64_t> canonical_order(const at::Tensor& f);
// Representational dissimilarity: 1 - Pearson correlation between rows (N x N).
at::Tensor rdm_correlation(const at::Tensor& f);
// The entries above the diagonal, row by row.
std::vector<double> upper_triangle(const at::Tensor& m);

}  // namespace zoobench::detail
