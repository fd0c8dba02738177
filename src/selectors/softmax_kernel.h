// The linear probe's objective, multinomial logistic regression, as one fused
// pass over the rows: logits, softmax and the gradient's sum for a block of
// rows while the block is in L1, instead of two GEMMs that each pack and
// stream the whole N x (D + 1) matrix. The probe's fits are chains of a few
// hundred such evaluations on a matrix that stays the same, where BLAS's
// per-call packing and its threads' wake-ups were most of the time (perf).
// No torch here: plain float arrays, vectorised by the compiler for AVX-512,
// AVX2 or SSE2, chosen at load time.
#pragma once
#include <cstdint>

#include "zoobench/simd.h"

namespace zoobench::detail {

// Widths the kernel works in: a row's columns in vectors of 16 floats, rows in
// blocks of 4, classes in blocks of 4. Callers pad to these with zeros.
inline constexpr int64_t kSoftmaxLanes = 16;
inline constexpr int64_t kSoftmaxBlock = 4;
inline constexpr int64_t round_up(int64_t n, int64_t to) { return (n + to - 1) / to * to; }

// x: rows_padded x stride floats, row-major (stride a multiple of 16,
// rows_padded of 4; padding zero). w: classes_padded x stride floats, the
// weights class by class (classes_padded a multiple of 4; padding zero).
struct SoftmaxProblem {
  const float* x = nullptr;
  int64_t rows = 0;    // real rows; labels[0..rows)
  int64_t stride = 0;  // floats a row of x or w
  const int64_t* labels = nullptr;
  int64_t classes = 0, classes_padded = 0;
};

// For rows [lo, hi) (lo a multiple of 4; hi clamped to the real rows): adds
// sum_i (softmax(W x_i) - onehot(y_i)) x_i^T into grad (classes_padded x
// stride floats) and returns sum_i -log softmax(W x_i)[y_i], in double.
double softmax_rows(const SoftmaxProblem& p, const float* w, int64_t lo, int64_t hi, float* grad);

}  // namespace zoobench::detail
