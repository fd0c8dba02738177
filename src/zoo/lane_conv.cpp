#include "lane_conv.h"

#include <algorithm>
#include <cstring>

#include "zoobench/simd.h"

// The helpers taking and returning vectors are always inlined into the
// clones, so the ABI of passing a 64-byte vector in a baseline function,
// which GCC warns of, never applies.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace zoobench::zoo::detail {
namespace {

// GCC's generic vectors: one zmm register in the AVX-512 clone, two ymm in
// the AVX2 one, four xmm in the baseline, from the same source.
typedef float Vec __attribute__((vector_size(kConvLanes * sizeof(float))));

#define ZB_INLINE inline __attribute__((always_inline))
ZB_INLINE Vec load(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
ZB_INLINE void store(float* p, const Vec& v) { std::memcpy(p, &v, sizeof v); }

// Channel blocks: one input vector feeds kBlock output channels' sums, which
// stay in registers for the whole reduction.
constexpr int64_t kBlock = 4;

template <int64_t B>
ZB_INLINE void forward_pixel(const LaneConv& s, const float* x, const float* weight, float* y, int64_t co, int64_t oy,
                             int64_t ox) {
  const int64_t kk = s.k * s.k, np = s.lanes;
  for (int64_t v = 0; v < np; v += kConvLanes) {
    Vec acc[B] = {};
    for (int64_t ci = 0; ci < s.cin; ++ci)
      for (int64_t ky = 0; ky < s.k; ++ky) {
        const int64_t iy = oy * s.stride + ky - s.pad;
        if (iy < 0 || iy >= s.h) continue;
        for (int64_t kx = 0; kx < s.k; ++kx) {
          const int64_t ix = ox * s.stride + kx - s.pad;
          if (ix < 0 || ix >= s.w) continue;
          const Vec in = load(x + ((ci * s.h + iy) * s.w + ix) * np + v);
          const float* wt = weight + (co * s.cin + ci) * kk + ky * s.k + kx;
#pragma GCC unroll 4
          for (int64_t b = 0; b < B; ++b) acc[b] += wt[b * s.cin * kk] * in;
        }
      }
    for (int64_t b = 0; b < B; ++b) store(y + (((co + b) * s.oh + oy) * s.ow + ox) * np + v, acc[b]);
  }
}

// forward_pixel where every tap is inside the image: no bounds checks, the
// taps unrolled.
template <int64_t B, int64_t K>
ZB_INLINE void forward_interior(const LaneConv& s, const float* x, const float* weight, float* y, int64_t co,
                                int64_t oy, int64_t ox) {
  const int64_t np = s.lanes, row = s.w * np, plane = s.h * row, kk = K * K;
  const float* base = x + ((oy * s.stride - s.pad) * s.w + ox * s.stride - s.pad) * np;
  for (int64_t v = 0; v < np; v += kConvLanes) {
    Vec acc[B] = {};
    for (int64_t ci = 0; ci < s.cin; ++ci) {
      const float* p = base + ci * plane + v;
      const float* wt = weight + (co * s.cin + ci) * kk;
#pragma GCC unroll 3
      for (int64_t ky = 0; ky < K; ++ky)
#pragma GCC unroll 3
        for (int64_t kx = 0; kx < K; ++kx) {
          const Vec in = load(p + ky * row + kx * np);
#pragma GCC unroll 4
          for (int64_t b = 0; b < B; ++b) acc[b] += wt[b * s.cin * kk + ky * K + kx] * in;
        }
    }
    for (int64_t b = 0; b < B; ++b) store(y + (((co + b) * s.oh + oy) * s.ow + ox) * np + v, acc[b]);
  }
}

// Whether output pixel (oy, ox) reads only inside the image.
ZB_INLINE bool interior(const LaneConv& s, int64_t oy, int64_t ox) {
  const int64_t iy = oy * s.stride - s.pad, ix = ox * s.stride - s.pad;
  return iy >= 0 && ix >= 0 && iy + s.k <= s.h && ix + s.k <= s.w;
}

template <int64_t K>
ZB_INLINE void forward_rows(const LaneConv& s, const float* x, const float* weight, float* y, int64_t row_lo,
                            int64_t row_hi) {
  for (int64_t oy = row_lo; oy < row_hi; ++oy)
    for (int64_t ox = 0; ox < s.ow; ++ox) {
      const bool inside = interior(s, oy, ox);
      int64_t co = 0;
      for (; co + kBlock <= s.cout; co += kBlock)
        if (inside)
          forward_interior<kBlock, K>(s, x, weight, y, co, oy, ox);
        else
          forward_pixel<kBlock>(s, x, weight, y, co, oy, ox);
      for (; co < s.cout; ++co)
        if (inside)
          forward_interior<1, K>(s, x, weight, y, co, oy, ox);
        else
          forward_pixel<1>(s, x, weight, y, co, oy, ox);
    }
}

// The gather form of the transposed convolution: input pixel (iy, ix) sums
// the outputs whose windows cover it, so each element has one writer.
template <int64_t B>
ZB_INLINE void backward_input_pixel(const LaneConv& s, const float* gy, const float* weight, float* gx, int64_t ci,
                                    int64_t iy, int64_t ix) {
  const int64_t kk = s.k * s.k, np = s.lanes;
  for (int64_t v = 0; v < np; v += kConvLanes) {
    Vec acc[B] = {};
    for (int64_t ky = 0; ky < s.k; ++ky) {
      const int64_t ty = iy + s.pad - ky;
      if (ty < 0 || ty % s.stride != 0 || ty / s.stride >= s.oh) continue;
      for (int64_t kx = 0; kx < s.k; ++kx) {
        const int64_t tx = ix + s.pad - kx;
        if (tx < 0 || tx % s.stride != 0 || tx / s.stride >= s.ow) continue;
        const int64_t at = (ty / s.stride) * s.ow + tx / s.stride;
        for (int64_t co = 0; co < s.cout; ++co) {
          const Vec g = load(gy + (co * s.oh * s.ow + at) * np + v);
          const float* wt = weight + (co * s.cin + ci) * kk + ky * s.k + kx;
#pragma GCC unroll 4
          for (int64_t b = 0; b < B; ++b) acc[b] += wt[b * kk] * g;
        }
      }
    }
    for (int64_t b = 0; b < B; ++b) store(gx + (((ci + b) * s.h + iy) * s.w + ix) * np + v, acc[b]);
  }
}

// backward_input_pixel for stride 1 where every covering output is inside
// the output: no checks, the taps unrolled.
template <int64_t B, int64_t K>
ZB_INLINE void backward_input_interior(const LaneConv& s, const float* gy, const float* weight, float* gx, int64_t ci,
                                       int64_t iy, int64_t ix) {
  const int64_t np = s.lanes, row = s.ow * np, plane = s.oh * row, kk = K * K;
  const float* base = gy + ((iy + s.pad) * s.ow + ix + s.pad) * np;
  for (int64_t v = 0; v < np; v += kConvLanes) {
    Vec acc[B] = {};
    for (int64_t co = 0; co < s.cout; ++co) {
      const float* p = base + co * plane + v;
      const float* wt = weight + (co * s.cin + ci) * kk;
#pragma GCC unroll 3
      for (int64_t ky = 0; ky < K; ++ky)
#pragma GCC unroll 3
        for (int64_t kx = 0; kx < K; ++kx) {
          const Vec g = load(p - ky * row - kx * np);
#pragma GCC unroll 4
          for (int64_t b = 0; b < B; ++b) acc[b] += wt[b * kk + ky * K + kx] * g;
        }
    }
    for (int64_t b = 0; b < B; ++b) store(gx + (((ci + b) * s.h + iy) * s.w + ix) * np + v, acc[b]);
  }
}

template <int64_t K>
ZB_INLINE void backward_input_rows(const LaneConv& s, const float* gy, const float* weight, float* gx, int64_t row_lo,
                                   int64_t row_hi) {
  for (int64_t iy = row_lo; iy < row_hi; ++iy)
    for (int64_t ix = 0; ix < s.w; ++ix) {
      const bool inside = s.stride == 1 && iy + s.pad - (K - 1) >= 0 && iy + s.pad < s.oh &&
                          ix + s.pad - (K - 1) >= 0 && ix + s.pad < s.ow;
      int64_t ci = 0;
      for (; ci + kBlock <= s.cin; ci += kBlock)
        if (inside)
          backward_input_interior<kBlock, K>(s, gy, weight, gx, ci, iy, ix);
        else
          backward_input_pixel<kBlock>(s, gy, weight, gx, ci, iy, ix);
      for (; ci < s.cin; ++ci)
        if (inside)
          backward_input_interior<1, K>(s, gy, weight, gx, ci, iy, ix);
        else
          backward_input_pixel<1>(s, gy, weight, gx, ci, iy, ix);
    }
}

template <int64_t K>
ZB_INLINE void backward_weight_pair(const LaneConv& s, const float* gy, const float* x, float* gweight, int64_t co,
                                    int64_t ci) {
  const int64_t np = s.lanes;
  Vec acc[K * K] = {};
  const float* g_ch = gy + co * s.oh * s.ow * np;
  const float* x_ch = x + ci * s.h * s.w * np;
  const int64_t row = s.w * np;
  for (int64_t oy = 0; oy < s.oh; ++oy)
    for (int64_t ox = 0; ox < s.ow; ++ox) {
      if (interior(s, oy, ox)) {
        const float* p = x_ch + ((oy * s.stride - s.pad) * s.w + ox * s.stride - s.pad) * np;
        for (int64_t v = 0; v < np; v += kConvLanes) {
          const Vec g = load(g_ch + (oy * s.ow + ox) * np + v);
#pragma GCC unroll 3
          for (int64_t ky = 0; ky < K; ++ky)
#pragma GCC unroll 3
            for (int64_t kx = 0; kx < K; ++kx) acc[ky * K + kx] += g * load(p + ky * row + kx * np + v);
        }
        continue;
      }
      for (int64_t v = 0; v < np; v += kConvLanes) {
        const Vec g = load(g_ch + (oy * s.ow + ox) * np + v);
        for (int64_t ky = 0; ky < K; ++ky) {
          const int64_t iy = oy * s.stride + ky - s.pad;
          if (iy < 0 || iy >= s.h) continue;
          for (int64_t kx = 0; kx < K; ++kx) {
            const int64_t ix = ox * s.stride + kx - s.pad;
            if (ix < 0 || ix >= s.w) continue;
            acc[ky * K + kx] += g * load(x_ch + (iy * s.w + ix) * np + v);
          }
        }
      }
    }
  for (int64_t t = 0; t < K * K; ++t) {
    float sum = 0;
    for (int64_t l = 0; l < kConvLanes; ++l) sum += acc[t][l];
    gweight[(co * s.cin + ci) * K * K + t] = sum;
  }
}

}  // namespace

ZB_VECTOR_CLONES void lane_conv_forward(const LaneConv& s, const float* x, const float* weight, float* y,
                                        int64_t row_lo, int64_t row_hi) {
  if (s.k == 3)
    forward_rows<3>(s, x, weight, y, row_lo, row_hi);
  else
    forward_rows<1>(s, x, weight, y, row_lo, row_hi);
}

ZB_VECTOR_CLONES void lane_conv_backward_input(const LaneConv& s, const float* gy, const float* weight, float* gx,
                                               int64_t row_lo, int64_t row_hi) {
  if (s.k == 3)
    backward_input_rows<3>(s, gy, weight, gx, row_lo, row_hi);
  else
    backward_input_rows<1>(s, gy, weight, gx, row_lo, row_hi);
}

ZB_VECTOR_CLONES void lane_conv_backward_weight(const LaneConv& s, const float* gy, const float* x, float* gweight,
                                                int64_t pair_lo, int64_t pair_hi) {
  for (int64_t p = pair_lo; p < pair_hi; ++p) {
    if (s.k == 3)
      backward_weight_pair<3>(s, gy, x, gweight, p / s.cin, p % s.cin);
    else
      backward_weight_pair<1>(s, gy, x, gweight, p / s.cin, p % s.cin);
  }
}

// In tiles of 16 pixels x every image: the reads are whole 64-byte lines of
// each image, the writes fill the tile's 16 lane rows, which stay in L1.
ZB_VECTOR_CLONES void to_lanes(const float* x, int64_t n, int64_t c, int64_t hw, int64_t lanes, float* t, int64_t c_lo,
                               int64_t c_hi) {
  constexpr int64_t kTile = 16;
  for (int64_t ch = c_lo; ch < c_hi; ++ch)
    for (int64_t p0 = 0; p0 < hw; p0 += kTile) {
      const int64_t pn = std::min(kTile, hw - p0);
      float* out = t + (ch * hw + p0) * lanes;
      for (int64_t i = 0; i < n; ++i) {
        const float* in = x + (i * c + ch) * hw + p0;
        for (int64_t j = 0; j < pn; ++j) out[j * lanes + i] = in[j];
      }
      for (int64_t j = 0; j < pn; ++j) std::fill(out + j * lanes + n, out + (j + 1) * lanes, 0.0f);
    }
}

ZB_VECTOR_CLONES void from_lanes(const float* t, int64_t n, int64_t c, int64_t hw, int64_t lanes, float* x,
                                 int64_t c_lo, int64_t c_hi) {
  constexpr int64_t kTile = 16;
  for (int64_t ch = c_lo; ch < c_hi; ++ch)
    for (int64_t p0 = 0; p0 < hw; p0 += kTile) {
      const int64_t pn = std::min(kTile, hw - p0);
      const float* in = t + (ch * hw + p0) * lanes;
      for (int64_t i = 0; i < n; ++i) {
        float* out = x + (i * c + ch) * hw + p0;
        for (int64_t j = 0; j < pn; ++j) out[j] = in[j * lanes + i];
      }
    }
}

}  // namespace zoobench::zoo::detail
