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
// As pca(), keeping the fewest leading components that explain more than
// `frac` of the variance (scikit-learn's PCA(n_components=frac)).
at::Tensor pca_variance(const at::Tensor& f, double frac);
// X^T X (D x D) and X X^T (N x N) of a float64 matrix through BLAS dsyrk:
// half the flops of a general product, which is what numpy's A.T @ A does too.
at::Tensor gram_cols(const at::Tensor& x);
// X X^T with only the row-major lower triangle (diagonal included) filled.
at::Tensor gram_rows_lower(const at::Tensor& x);
at::Tensor gram_cols_lower(const at::Tensor& x);
// ||S||_F^2 of a symmetric S given by its lower triangle.
double symmetric_sq_norm(const at::Tensor& lower);
// The smaller of the two Grams, and whether it is X^T X.
at::Tensor small_gram(const at::Tensor& x, bool* is_cols = nullptr);
// tr(pinv(S) B) for a symmetric positive semi-definite S, pinv cut at rcond:
// a Cholesky solve when S is clearly non-singular (then pinv(S) = S^-1),
// else S's eigen-decomposition with the cut (numpy's pinv on a PSD matrix).
// B is given as its factor: B = Bf^T Bf (Bf r x D, r small: the H-scores' class means).
double trace_pinv_product(const at::Tensor& s, const at::Tensor& bf, double rcond);
// The eigenvalues of a symmetric S (ascending) and the projections of k
// vectors, the rows of B (k x n), on its eigenvectors: projected = B V (k x
// n), column j for eigenvalue j. V itself is never formed: Householder
// tridiagonalisation, the reflectors applied to B's k rows, and the
// tridiagonal matrix's eigenvectors by MRRR, where an eigh computes all of V
// (the back-transformation, 2 n^3 flops) for k small (LogME: the classes).
struct EigenProjection {
  at::Tensor values, projected;
};
EigenProjection eigh_project(const at::Tensor& s, const at::Tensor& b);
// log det of a symmetric positive definite matrix, by Cholesky.
double logdet_spd(const at::Tensor& a);
// Covariance of the rows, 1/(N - ddof).
at::Tensor covariance(const at::Tensor& x, int64_t ddof);
// Bf (C x D) with Bf^T Bf = the covariance (1/(N - ddof)) of the rows g_i =
// mean feature of sample i's class: rows sqrt(n_c / (N - ddof)) (mu_c - mu).
at::Tensor class_scatter_factor(const at::Tensor& f, const at::Tensor& labels, int64_t classes, int64_t ddof);

// Ledoit-Wolf shrinkage of the 1/N covariance towards (tr S / D) I, as
// scikit-learn's ledoit_wolf computes it (alpha clamped to [0, 1]).
struct Shrunk {
  at::Tensor cov;
  double alpha = 0;
};
Shrunk ledoit_wolf(const at::Tensor& x);
// A sample order that depends on the rows' values only (lexicographic), so a
// seeded choice made in this order is invariant to permuting the samples.
std::vector<int64_t> canonical_order(const at::Tensor& f);
// Representational dissimilarity, 1 - Pearson correlation between rows, as
// its N (N - 1) / 2 pairs (i > j, row by row) without the N x N matrix's other half.
std::vector<double> rdm_correlation(const at::Tensor& f);
// The peak bytes of an RDM Spearman correlation of N samples (RSA, PARC): two
// triangles of N (N - 1) / 2 doubles and, ranked side by side, each one's
// radix keys, positions and ranks: 64 bytes a pair, plus `per_sample` a sample.
double rdm_spearman_bytes(int64_t n, double per_sample);
// Rows [lo, hi) of x x^T, columns [0, cols): the N x N Gram matrix a block of
// rows at a time (kNN, DDS), so that memory stays O(block x N).
at::Tensor gram_block(const at::Tensor& x, int64_t lo, int64_t hi, int64_t cols);
// Rows a block of gram_block holds for N columns: about 256 MiB of doubles.
int64_t gram_block_rows(int64_t n);

}  // namespace zoobench::detail
