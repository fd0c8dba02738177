#include "train_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "zoobench/simd.h"

#pragma GCC diagnostic ignored "-Wpsabi"  // see simd.h

namespace zoobench::zoo::detail {
namespace {
using simd::load;
using simd::store;
using Vec = simd::f32x16;
using Mask = simd::i32x16;
constexpr int64_t kL = simd::kLanes;

// Sums run in float vectors and are moved into a double every this many
// vectors: no float sum adds more than 64 values, whatever the channel's
// size (32 x 32 x 32 = 32,768 values at batch 32).
constexpr int kFlushEvery = 64;

// GCC turns a comparison of a vector with a scalar, an | of two comparisons
// and chains of selects into one scalar branch a lane (objdump: seta, cmov).
// This mask compares two vectors, and serves only the part vector at the
// end of a run.
ZB_INLINE Mask first_lanes(int64_t k) {
  const Mask iota = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  return iota < (Mask{} + static_cast<int32_t>(k));
}

// The first k floats at p, zeros after them.
ZB_INLINE Vec load_part(const float* p, int64_t k) {
  if (k == kL) return load(p);
  Vec v{};
  if (k > 0) std::memcpy(&v, p, static_cast<size_t>(k) * sizeof(float));
  return v;
}

// Calls f(offset, k) for every vector of channel c, k its real values (the
// rest: padding lanes or past a run's end). Lane-major runs are whole
// vectors; an NCHW run may end in a part of one.
template <class F>
ZB_INLINE void each_vector(const BnLayout& l, int64_t c, F&& f) {
  const int64_t base = c * l.chan_stride;
  if (l.lanes) {
    for (int64_t p = 0; p < l.length; p += l.lanes)
      for (int64_t v = 0; v < l.lanes; v += kL) f(base + p + v, std::clamp<int64_t>(l.valid - v, 0, kL));
  } else {
    for (int64_t r = 0; r < l.segments; ++r)
      for (int64_t j = 0; j < l.length; j += kL) f(base + r * l.seg_stride + j, std::min(kL, l.length - j));
  }
}

// Writes v's first k lanes; the rest too, as zeros, where the layout holds
// padding lanes there.
ZB_INLINE void store_part(const BnLayout& l, float* p, const Vec& v, int64_t k) {
  if (k == kL) return store(p, v);
  std::memcpy(p, &v, static_cast<size_t>(k) * sizeof(float));
  if (l.lanes) std::fill(p + k, p + kL, 0.0f);
}

// A sum of vectors, in double every kFlushEvery vectors.
struct Summer {
  Vec acc{};
  double total = 0;
  int pending = 0;
  ZB_INLINE void add(const Vec& v) {
    acc += v;
    if (++pending == kFlushEvery) flush();
  }
  ZB_INLINE void flush() {
    for (int64_t q = 0; q < kL; ++q) total += acc[q];
    acc = Vec{};
    pending = 0;
  }
  ZB_INLINE double sum() {
    flush();
    return total;
  }
};

// The ReLU's gradient: 0 where the output is at most 0, else g (a NaN
// output passes g, as torch's threshold_backward does).
ZB_INLINE Vec relu_grad(const Vec& g, const float* y, int64_t at, int64_t k) {
  return y ? simd::select(load_part(y + at, k) <= Vec{}, Vec{}, g) : g;
}

}  // namespace

BnLayout bn_nchw(int64_t n, int64_t c, int64_t hw) {
  BnLayout l;
  l.segments = n;
  l.length = hw;
  l.seg_stride = c * hw;
  l.chan_stride = hw;
  return l;
}

BnLayout bn_lanes(int64_t hw, int64_t lanes, int64_t valid) {
  BnLayout l;
  l.length = hw * lanes;
  l.chan_stride = l.length;
  l.lanes = lanes;
  l.valid = valid;
  return l;
}

ZB_VECTOR_CLONES void bn_act_forward(const BnLayout& l, const float* x, const float* gamma, const float* beta,
                                     const float* residual, bool relu, double eps, float* y, float* mean, float* var,
                                     int64_t c_lo, int64_t c_hi) {
  const double count = static_cast<double>(l.count());
  for (int64_t c = c_lo; c < c_hi; ++c) {
    Summer s1;
    each_vector(l, c, [&](int64_t at, int64_t k) { s1.add(load_part(x + at, k)); });
    const double mu = s1.sum() / count;
    // Centred, in a second pass: E[x^2] - E[x]^2 cancels when the mean is
    // large against the spread.
    const Vec vmu = Vec{} + static_cast<float>(mu);
    Summer s2;
    each_vector(l, c, [&](int64_t at, int64_t k) {
      Vec d = load_part(x + at, k) - vmu;
      if (k < kL) d = simd::select(first_lanes(k), d, Vec{});
      s2.add(d * d);
    });
    const double v = s2.sum() / count;
    const double invstd = 1.0 / std::sqrt(v + eps);
    mean[c] = static_cast<float>(mu);
    var[c] = static_cast<float>(v);
    const Vec scale = Vec{} + static_cast<float>(gamma[c] * invstd);
    const Vec shift = Vec{} + static_cast<float>(beta[c] - mu * gamma[c] * invstd);
    each_vector(l, c, [&](int64_t at, int64_t k) {
      Vec r = load_part(x + at, k) * scale + shift;
      if (residual) r += load_part(residual + at, k);
      // Written so that a NaN passes through, as torch::relu lets it.
      if (relu) r = simd::select(r < Vec{}, Vec{}, r);
      store_part(l, y + at, r, k);
    });
  }
}

ZB_VECTOR_CLONES void bn_act_backward(const BnLayout& l, const float* gy, const float* x, const float* y,
                                      const float* mean, const float* invstd, const float* gamma, float* gx,
                                      float* gskip, float* dgamma, float* dbeta, int64_t c_lo, int64_t c_hi) {
  const double count = static_cast<double>(l.count());
  for (int64_t c = c_lo; c < c_hi; ++c) {
    const Vec vmu = Vec{} + mean[c];
    Summer sg, sgx;
    each_vector(l, c, [&](int64_t at, int64_t k) {
      const Vec g = relu_grad(load_part(gy + at, k), y, at, k);
      if (gskip) store_part(l, gskip + at, g, k);
      sg.add(g);
      sgx.add(g * (load_part(x + at, k) - vmu));  // g is 0 past k
    });
    const double sum_g = sg.sum(), sum_gx = sgx.sum();
    dbeta[c] = static_cast<float>(sum_g);
    dgamma[c] = static_cast<float>(sum_gx * invstd[c]);
    // gx = a (g - mean(g) - (x - mean) invstd^2 mean(g (x - mean))), a = gamma invstd
    const double a = static_cast<double>(gamma[c]) * invstd[c];
    const double k2 = static_cast<double>(invstd[c]) * invstd[c] * sum_gx / count;
    const Vec va = Vec{} + static_cast<float>(a), vxk = Vec{} + static_cast<float>(-a * k2);
    const Vec vc = Vec{} + static_cast<float>(a * (k2 * mean[c] - sum_g / count));
    each_vector(l, c, [&](int64_t at, int64_t k) {
      const Vec g = gskip ? load_part(gskip + at, k) : relu_grad(load_part(gy + at, k), y, at, k);
      store_part(l, gx + at, va * g + vxk * load_part(x + at, k) + vc, k);
    });
  }
}

namespace {
// One 2 x 2 window's gradient for kL lanes: all of it to the first input
// whose bits are the output's (the one the forward pass chose, or an equal
// one before it), none to the others. Lane by lane on distinct arrays, for
// GCC's loop vectoriser: on vector types it made the selects one scalar
// branch a lane.
ZB_INLINE void route(const float* __restrict x, const float* __restrict y, const float* __restrict gy,
                     float* __restrict gx, int64_t right, int64_t down) {
  for (int64_t l = 0; l < kL; ++l) {
    float rest = gy[l];
    int32_t m;
    std::memcpy(&m, y + l, sizeof m);
    for (int q = 0; q < 4; ++q) {
      const int64_t at = (q & 1 ? right : 0) + (q & 2 ? down : 0) + l;
      int32_t v;
      std::memcpy(&v, x + at, sizeof v);
      gx[at] = v == m ? rest : 0.0f;
      rest = v == m ? 0.0f : rest;
    }
  }
}
}  // namespace

// The forward pool lane by lane, for GCC's loop vectoriser: on vector
// types it made a NaN-aware maximum one scalar branch a lane.
ZB_VECTOR_CLONES void lane_max_pool2_forward(const float* x, int64_t h, int64_t w, int64_t lanes, float* y,
                                             int64_t c_lo, int64_t c_hi) {
  const int64_t oh = h / 2, ow = w / 2, row = w * lanes;
  for (int64_t c = c_lo; c < c_hi; ++c)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox) {
        const float* p = x + ((c * h + 2 * oy) * w + 2 * ox) * lanes;
        const float* const in[4] = {p, p + lanes, p + row, p + row + lanes};
        float* out = y + ((c * oh + oy) * ow + ox) * lanes;
        for (int64_t i = 0; i < lanes; ++i) {
          // The first maximum, a NaN taking over, as max_pool2d's scan does.
          float m = in[0][i];
          for (int q = 1; q < 4; ++q) m = (in[q][i] > m || std::isnan(in[q][i])) ? in[q][i] : m;
          out[i] = m;
        }
      }
}

ZB_VECTOR_CLONES void lane_max_pool2_backward(const float* x, const float* y, const float* gy, int64_t h, int64_t w,
                                              int64_t lanes, float* gx, int64_t c_lo, int64_t c_hi) {
  const int64_t oh = h / 2, ow = w / 2, row = w * lanes;
  // Every input of a window is written below; a last odd row or column is not.
  if (h % 2 || w % 2) std::fill(gx + c_lo * h * w * lanes, gx + c_hi * h * w * lanes, 0.0f);
  for (int64_t c = c_lo; c < c_hi; ++c)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox) {
        const int64_t at = ((c * oh + oy) * ow + ox) * lanes, from = ((c * h + 2 * oy) * w + 2 * ox) * lanes;
        for (int64_t v = 0; v < lanes; v += kL) route(x + from + v, y + at + v, gy + at + v, gx + from + v, lanes, row);
      }
}

}  // namespace zoobench::zoo::detail
