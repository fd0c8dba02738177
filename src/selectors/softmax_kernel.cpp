#include "softmax_kernel.h"

#include <algorithm>
#include <cmath>
#include <vector>

#pragma GCC diagnostic ignored "-Wpsabi"  // see simd.h

namespace zoobench::detail {
namespace {
using simd::lane_sum;
using simd::load;
using simd::store;
using v16 = simd::f32x16;
static_assert(simd::kLanes == kSoftmaxLanes);

// z[r][c0 + c] = x_r . w_{c0+c} for the block's 4 rows and 4 classes: 16
// running sums in registers, 8 loads per 16 multiply-adds.
ZB_INLINE void logits_tile(const float* x, const float* w, int64_t stride, int64_t chunks, float* z, int64_t zstride) {
  v16 acc[4][4] = {};
  for (int64_t k = 0; k < chunks; ++k) {
    const int64_t off = k * kSoftmaxLanes;
    v16 xv[4], wv[4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) xv[r] = load(x + r * stride + off);
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) wv[c] = load(w + c * stride + off);
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r)
#pragma GCC unroll 4
      for (int c = 0; c < 4; ++c) acc[r][c] += xv[r] * wv[c];
  }
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) z[r * zstride + c] = lane_sum(acc[r][c]);
}
}  // namespace

ZB_VECTOR_CLONES double softmax_rows(const SoftmaxProblem& p, const float* w, int64_t lo, int64_t hi, float* grad) {
  const int64_t stride = p.stride, chunks = stride / kSoftmaxLanes, classes = p.classes, cp = p.classes_padded;
  hi = std::min(hi, p.rows);
  std::vector<float> z(static_cast<size_t>(kSoftmaxBlock * cp));  // logits, then residuals, of the block's rows
  std::vector<double> e(static_cast<size_t>(classes));
  double loss = 0;
  for (int64_t i0 = lo; i0 < hi; i0 += kSoftmaxBlock) {
    const float* x = p.x + i0 * stride;
    for (int64_t c0 = 0; c0 < cp; c0 += 4) logits_tile(x, w + c0 * stride, stride, chunks, z.data() + c0, cp);
    for (int64_t r = 0; r < kSoftmaxBlock; ++r) {
      float* zr = z.data() + r * cp;
      if (i0 + r >= hi) {  // padding rows: no residual, nothing added
        std::fill(zr, zr + cp, 0.0f);
        continue;
      }
      const int64_t y = p.labels[i0 + r];
      const double m = *std::max_element(zr, zr + classes);
      double sum = 0;
      for (int64_t c = 0; c < classes; ++c) sum += (e[static_cast<size_t>(c)] = std::exp(double(zr[c]) - m));
      loss += std::log(sum) - (double(zr[y]) - m);
      for (int64_t c = 0; c < classes; ++c) zr[c] = static_cast<float>(e[static_cast<size_t>(c)] / sum);
      zr[y] -= 1.0f;
    }
    // The gradient's rows, class by class, the block's 4 rows in registers.
    const float *r0 = z.data(), *r1 = r0 + cp, *r2 = r1 + cp, *r3 = r2 + cp;
    for (int64_t k = 0; k < chunks; ++k) {
      const int64_t off = k * kSoftmaxLanes;
      const v16 x0 = load(x + off), x1 = load(x + stride + off), x2 = load(x + 2 * stride + off),
                x3 = load(x + 3 * stride + off);
      for (int64_t c = 0; c < classes; ++c) {
        float* g = grad + c * stride + off;
        store(g, load(g) + (r0[c] * x0 + r1[c] * x1) + (r2[c] * x2 + r3[c] * x3));
      }
    }
  }
  return loss;
}

}  // namespace zoobench::detail
