#include "linalg.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "zoobench/process.h"

extern "C" {
void dsytrd_(const char* uplo, const int* n, double* a, const int* lda, double* d, double* e, double* tau, double* work,
             const int* lwork, int* info);
void dormtr_(const char* side, const char* uplo, const char* trans, const int* m, const int* n, const double* a,
             const int* lda, const double* tau, double* c, const int* ldc, double* work, const int* lwork, int* info);
void dstevr_(const char* jobz, const char* range, const int* n, double* d, double* e, const double* vl,
             const double* vu, const int* il, const int* iu, const double* abstol, int* m, double* w, double* z,
             const int* ldz, int* isuppz, double* work, const int* lwork, int* iwork, const int* liwork, int* info);
}
extern "C" void dsyrk_(const char* uplo, const char* trans, const int* n, const int* k, const double* alpha,
                       const double* a, const int* lda, const double* beta, double* c, const int* ldc);

namespace zoobench::detail {

namespace {
// An n x n matrix of zeros; a large one (the N x N Grams of the RDM scores) on
// huge pages (zoobench/process.h).
at::Tensor zeros_huge(int64_t n) {
  const size_t bytes = static_cast<size_t>(n) * static_cast<size_t>(n) * sizeof(double);
  if (bytes < (size_t{4} << 20)) return at::zeros({n, n}, at::kDouble);
  void* p = alloc_huge(bytes);
  std::memset(p, 0, bytes);
  return at::from_blob(p, {n, n}, [](void* q) { std::free(q); }, at::TensorOptions().dtype(at::kDouble));
}

// dsyrk on a row-major N x D matrix, which BLAS sees as the column-major D x N
// matrix A = X^T: trans 'N' gives A A^T = X^T X, trans 'T' gives A^T A = X X^T.
at::Tensor syrk(const at::Tensor& x_in, bool cols, bool symmetrise = true) {
  at::Tensor x = x_in.to(at::kDouble).contiguous();
  const int n_rows = static_cast<int>(x.size(0)), d = static_cast<int>(x.size(1));
  const int n = cols ? d : n_rows, k = cols ? n_rows : d, lda = std::max(1, d);
  at::Tensor c = zeros_huge(n);
  if (n == 0) return c;
  if (k == 0) return c;
  const double one = 1.0, zero = 0.0;
  const char uplo = 'U', trans = cols ? 'N' : 'T';
  // Column-major upper triangle = row-major lower triangle.
  dsyrk_(&uplo, &trans, &n, &k, &one, x.data_ptr<double>(), &lda, &zero, c.data_ptr<double>(), &n);
  if (symmetrise) {  // mirror in cache-sized tiles: a plain transpose loop strides through memory
    double* p = c.data_ptr<double>();
    constexpr int kTile = 64;
    for (int bi = 0; bi < n; bi += kTile)
      for (int bj = 0; bj <= bi; bj += kTile)
        for (int i = bi; i < std::min(n, bi + kTile); ++i)
          for (int j = bj; j < std::min({n, bj + kTile, i}); ++j)
            p[static_cast<size_t>(j) * n + i] = p[static_cast<size_t>(i) * n + j];
  }
  return c;
}

// a + b m_ij for every i > j, row by row: the pairs of an RDM, read from a lower triangle.
std::vector<double> strict_lower(const at::Tensor& m, double a, double b) {
  at::Tensor c = m.contiguous();
  const int64_t n = c.size(0);
  const double* p = c.data_ptr<double>();
  const auto pairs = static_cast<size_t>(n * (n - 1) / 2);
  std::vector<double> out;
  reserve_huge(out, pairs);
  out.resize(pairs);
  size_t k = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j) out[k++] = a + b * p[i * n + j];
  return out;
}

}  // namespace

at::Tensor gram_cols(const at::Tensor& x) { return syrk(x, true); }
at::Tensor gram_rows_lower(const at::Tensor& x) { return syrk(x, false, false); }
at::Tensor gram_cols_lower(const at::Tensor& x) { return syrk(x, true, false); }

double symmetric_sq_norm(const at::Tensor& lower) {
  at::Tensor c = lower.contiguous();
  const int64_t n = c.size(0);
  const double* p = c.data_ptr<double>();
  double diag = 0, off = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double* r = p + i * n;
    for (int64_t j = 0; j < i; ++j) off += r[j] * r[j];
    diag += r[i] * r[i];
  }
  return diag + 2 * off;
}

at::Tensor small_gram(const at::Tensor& x, bool* is_cols) {
  const bool cols = x.size(1) <= x.size(0);
  if (is_cols) *is_cols = cols;
  return syrk(x, cols);
}

double trace_pinv_product(const at::Tensor& s, const at::Tensor& bf, double rcond) {
  const int64_t d = s.size(0);
  // Provably above the cut: with S = L L^T, ||S^-1||_2 <= ||L^-1||_F^2 and
  // lambda_max <= tr S, so 1 / ||L^-1||_F^2 > rcond tr S means every
  // eigenvalue exceeds rcond lambda_max and pinv(S) = S^-1.
  auto [l, info] = at::linalg_cholesky_ex(s);
  if (info.item<int64_t>() == 0 && d > 0) {
    at::Tensor li = at::linalg_solve_triangular(l, at::eye(d, s.options()), /*upper=*/false);
    const double inv_norm = li.pow(2).sum().item<double>();
    if (std::isfinite(inv_norm) && 1.0 / inv_norm > rcond * at::trace(s).item<double>())
      return at::mm(li, bf.t()).pow(2).sum().item<double>();  // tr(S^-1 Bf^T Bf) = ||L^-1 Bf^T||_F^2
  }
  auto [evals, evecs] = at::linalg_eigh(s);
  const double cut = rcond * evals.abs().max().item<double>();
  at::Tensor inv = at::where(evals.abs() > cut, 1.0 / evals, at::zeros_like(evals));
  at::Tensor z = at::mm(bf, evecs);  // r x D in the eigenbasis
  return (z.pow(2) * inv).sum().item<double>();
}

double logdet_spd(const at::Tensor& a) {
  return 2.0 * at::log(at::diagonal(at::linalg_cholesky(a))).sum().item<double>();
}

namespace {
// PCA from the eigen-decomposition of the smaller Gram instead of an SVD of
// X: the same axes at a fraction of the cost (X^T X when N >= D, else X X^T).
// k < 0 picks the number of components from the variance fraction `frac`.
at::Tensor pca_impl(const at::Tensor& f, int64_t k, bool drop_null, double frac) {
  at::Tensor x = f - f.mean(0, true);
  bool cols = true;
  auto [evals, evecs] = at::linalg_eigh(small_gram(x, &cols));
  evals = evals.flip(0).clamp_min(0);
  evecs = evecs.flip(1);
  const double lmax = evals.numel() ? evals[0].item<double>() : 0.0;
  if (k < 0) {
    const double total = evals.sum().item<double>();
    k = evals.numel();
    if (total > 0) {
      at::Tensor cum = evals.cumsum(0) / total;
      auto ca = cum.accessor<double, 1>();
      for (int64_t i = 0; i < cum.size(0); ++i)
        if (ca[i] > frac) {
          k = i + 1;
          break;
        }
    }
  }
  k = std::min({k, x.size(0), x.size(1)});
  // Components without variance (N <= D leaves at least one) are rounding
  // noise whose sign and direction change with the sample order: drop them.
  if (drop_null) k = std::min<int64_t>(k, (evals > 1e-12 * lmax).sum().item<int64_t>());
  at::Tensor proj = cols ? at::mm(x, evecs.narrow(1, 0, k)) : evecs.narrow(1, 0, k) * evals.narrow(0, 0, k).sqrt();
  at::Tensor rows = proj.abs().argmax(0);
  at::Tensor signs = proj.gather(0, rows.unsqueeze(0)).squeeze(0).sign();
  signs = at::where(signs == 0, at::ones_like(signs), signs);
  return proj * signs;
}
}  // namespace

at::Tensor pca(const at::Tensor& f, int64_t k, bool drop_null) { return pca_impl(f, k, drop_null, 0); }
at::Tensor pca_variance(const at::Tensor& f, double frac) { return pca_impl(f, -1, true, frac); }

at::Tensor covariance(const at::Tensor& x, int64_t ddof) {
  return gram_cols(x - x.mean(0, true)) / static_cast<double>(x.size(0) - ddof);
}

at::Tensor class_scatter_factor(const at::Tensor& f, const at::Tensor& labels, int64_t classes, int64_t ddof) {
  at::Tensor onehot = at::one_hot(labels, classes).to(at::kDouble);  // N x C
  at::Tensor counts = onehot.sum(0);
  at::Tensor means = at::mm(onehot.t(), f) / counts.clamp_min(1).unsqueeze(1);
  at::Tensor mu = f.mean(0, true);
  return (means - mu) * (counts / static_cast<double>(f.size(0) - ddof)).sqrt().unsqueeze(1);
}



Shrunk ledoit_wolf(const at::Tensor& x_in) {
  at::Tensor x = x_in - x_in.mean(0, true);
  const double n = static_cast<double>(x.size(0)), d = static_cast<double>(x.size(1));
  at::Tensor s = gram_cols(x) / n;
  at::Tensor x2 = x * x;
  at::Tensor trace_terms = x2.sum(0) / n;
  const double mu = trace_terms.sum().item<double>() / d;
  // sum_ij (X2^T X2)_ij = sum_n (sum_i x_ni^2)^2: O(N D), not O(N D^2).
  const double beta_ = x2.sum(1).pow(2).sum().item<double>();
  const double delta_ = s.pow(2).sum().item<double>();
  double beta = (beta_ / n - delta_) / (d * n);
  const double delta = (delta_ - 2 * mu * trace_terms.sum().item<double>() + d * mu * mu) / d;
  beta = std::min(beta, delta);
  // When S already is its target (one feature, or an isotropic S) delta is 0
  // up to rounding, and beta / delta would be rounding noise over rounding
  // noise (1 in one sample order, 0 in another): no shrinkage, as
  // scikit-learn's ledoit_wolf does for one feature.
  const bool at_target = x.size(1) == 1 || delta <= 1e-12 * mu * mu;
  const double alpha = beta == 0 || at_target ? 0.0 : std::clamp(beta / delta, 0.0, 1.0);
  return {(1 - alpha) * s + alpha * mu * at::eye(x.size(1), at::kDouble), alpha};
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

std::vector<double> rdm_correlation(const at::Tensor& f) {
  at::Tensor r = f.to(at::kDouble);
  r = r - r.mean(1, true);
  // A constant row correlates with nothing: its norm is floored so it gets similarity 0, not NaN.
  r = r / r.norm(2, 1, true).clamp_min(1e-300);
  return strict_lower(gram_rows_lower(r), 1.0, -1.0);
}

double rdm_spearman_bytes(int64_t n, double per_sample) {
  const double pairs = static_cast<double>(n) * static_cast<double>(n - 1) / 2.0;
  return 64.0 * pairs + per_sample * static_cast<double>(n);
}

at::Tensor gram_block(const at::Tensor& x, int64_t lo, int64_t hi, int64_t cols) {
  return at::mm(x.narrow(0, lo, hi - lo), x.narrow(0, 0, cols).t());
}

int64_t gram_block_rows(int64_t n) { return std::max<int64_t>(64, (int64_t{256} << 20) / 8 / std::max<int64_t>(1, n)); }

EigenProjection eigh_project(const at::Tensor& s, const at::Tensor& b) {
  const int n = static_cast<int>(s.size(0)), k = static_cast<int>(b.size(0));
  EigenProjection out{at::empty({n}, at::kDouble), at::empty({k, n}, at::kDouble)};
  if (n == 0) return out;
  // Row-major and column-major agree for a symmetric matrix; b's rows are the
  // columns of a column-major n x k matrix.
  at::Tensor a = s.to(at::kDouble).contiguous().clone(), c = b.to(at::kDouble).contiguous().clone();
  std::vector<double> diag(static_cast<size_t>(n)), off(static_cast<size_t>(n)), tau(static_cast<size_t>(n));
  std::vector<double> work(1);
  std::vector<int> iwork(1);
  int lwork = 0, liwork = 0, info = 0;
  // LAPACK's convention: a first call with lwork = -1 only reports the
  // workspace it needs; the second does the work.
  auto run = [&](const char* routine, auto&& call) {
    lwork = liwork = -1;
    call();
    lwork = std::max(1, static_cast<int>(work[0]));
    liwork = std::max(1, iwork[0]);
    work.resize(static_cast<size_t>(lwork));
    iwork.resize(static_cast<size_t>(liwork));
    call();
    if (info != 0) throw std::runtime_error(std::string("LAPACK ") + routine + " failed, info " + std::to_string(info));
  };
  // A = Q T Q^T, Q as Householder reflectors in a and tau.
  run("dsytrd", [&] {
    dsytrd_("L", &n, a.data_ptr<double>(), &n, diag.data(), off.data(), tau.data(), work.data(), &lwork, &info);
  });
  if (k > 0)  // Q^T B, the reflectors applied to k vectors rather than to n
    run("dormtr", [&] {
      dormtr_("L", "L", "T", &n, &k, a.data_ptr<double>(), &n, tau.data(), c.data_ptr<double>(), &n, work.data(),
              &lwork, &info);
    });
  // T = Z diag(w) Z^T by relatively robust representations (O(n^2) for all
  // the eigenvectors); Z column-major is z^T row-major.
  at::Tensor zt = at::empty({n, n}, at::kDouble);
  std::vector<int> isuppz(2 * static_cast<size_t>(n));
  const double none = 0.0;
  const int ione = 1;
  int found = 0;
  run("dstevr", [&] {
    dstevr_("V", "A", &n, diag.data(), off.data(), &none, &none, &ione, &n, &none, &found,
            out.values.data_ptr<double>(), zt.data_ptr<double>(), &n, isuppz.data(), work.data(), &lwork, iwork.data(),
            &liwork, &info);
  });
  if (k > 0) out.projected = at::mm(c, zt.t());  // (Q^T B)^T Z = (V^T B)^T
  return out;
}

}  // namespace zoobench::detail
