#include "lane_conv.h"

#include <algorithm>
#include <vector>

#include "zoobench/simd.h"

#pragma GCC diagnostic ignored "-Wpsabi"  // see simd.h

namespace zoobench::zoo::detail {
namespace {
using simd::load;
using simd::store;
using Vec = simd::f32x16;
static_assert(simd::kLanes == kConvLanes);

// Register tiles: B channels x P neighbouring pixels of one row, the B x P
// sums held in registers for the whole reduction. Each vector loaded feeds
// B sums and each weight broadcast feeds P: at B = P = 4, 8 loads per 16
// multiply-adds, where one pixel at a time took 5 per 4.
constexpr int64_t kBlock = 4;  // channels
constexpr int64_t kRun = 4;    // pixels

// One tap of a tile: P vectors from `in` (step floats apart) times the B
// weights w[b * wstride], added to the sums.
template <int64_t B, int64_t P>
ZB_INLINE void tap(Vec (&acc)[B][P], const float* in, int64_t step, const float* w, int64_t wstride) {
  Vec v[P];
#pragma GCC unroll 4
  for (int64_t q = 0; q < P; ++q) v[q] = load(in + q * step);
#pragma GCC unroll 4
  for (int64_t b = 0; b < B; ++b) {
    const float wb = w[b * wstride];
#pragma GCC unroll 4
    for (int64_t q = 0; q < P; ++q) acc[b][q] += wb * v[q];
  }
}

// Output pixels (oy, ox .. ox + P - 1) of channels co .. co + B - 1. Edge:
// some taps fall outside the image and are checked one by one (P = 1);
// otherwise none do and the taps are unrolled.
template <int64_t B, int64_t K, int64_t P, bool Edge>
ZB_INLINE void forward_tile(const LaneConv& s, const LaneEpilogue& e, const float* x, const float* weight, float* y,
                            int64_t co, int64_t oy, int64_t ox) {
  static_assert(!Edge || P == 1);
  const int64_t np = s.lanes, kk = K * K, step = s.stride * np;
  for (int64_t v = 0; v < np; v += kConvLanes) {
    Vec acc[B][P];
    for (int64_t b = 0; b < B; ++b)
      for (int64_t q = 0; q < P; ++q) acc[b][q] = Vec{} + (e.bias ? e.bias[co + b] : 0.0f);
    for (int64_t ci = 0; ci < s.cin; ++ci) {
      const float* wt = weight + (co * s.cin + ci) * kk;
#pragma GCC unroll 3
      for (int64_t ky = 0; ky < K; ++ky) {
        const int64_t iy = oy * s.stride + ky - s.pad;
        if (Edge && (iy < 0 || iy >= s.h)) continue;
#pragma GCC unroll 3
        for (int64_t kx = 0; kx < K; ++kx) {
          const int64_t ix = ox * s.stride + kx - s.pad;
          if (Edge && (ix < 0 || ix >= s.w)) continue;
          tap(acc, x + ((ci * s.h + iy) * s.w + ix) * np + v, step, wt + ky * K + kx, s.cin * kk);
        }
      }
    }
    for (int64_t b = 0; b < B; ++b)
      for (int64_t q = 0; q < P; ++q) {
        const int64_t at = (((co + b) * s.oh + oy) * s.ow + ox + q) * np + v;
        Vec r = acc[b][q];
        if (e.residual) r += load(e.residual + at);
        // Written so that a NaN passes through, as torch::relu lets it.
        if (e.relu) r = simd::select(r < Vec{}, Vec{}, r);
        store(y + at, r);
      }
  }
}

// Whether position t (input position + pad - tap) is a multiple of the
// stride, i.e. the tap covers it from an output; that output's index in
// *o. Edge: also whether it is inside [0, out), with the runtime stride;
// otherwise the caller knows it is, and the stride is S.
template <int64_t S, bool Edge>
ZB_INLINE bool covering_output(const LaneConv& s, int64_t t, int64_t out, int64_t* o) {
  if (Edge) {
    if (t < 0 || t % s.stride != 0 || t / s.stride >= out) return false;
    *o = t / s.stride;
    return true;
  }
  if (S > 1 && t % S != 0) return false;
  *o = t / S;
  return true;
}

// The gather form of the transposed convolution: input pixel (iy, ix) sums
// the outputs whose windows cover it, so each element has one writer.
// Pixels (iy, ix + q * S), q < P, of input channels ci .. ci + B - 1. Not
// Edge: stride S (1 or 2) and every covering output inside the output; at
// stride 2 the pixels of a run share their parity, so the same taps cover
// them, from neighbouring outputs.
template <int64_t B, int64_t K, int64_t P, int64_t S, bool Edge>
ZB_INLINE void backward_input_tile(const LaneConv& s, const float* gy, const float* weight, float* gx, int64_t ci,
                                   int64_t iy, int64_t ix) {
  static_assert(!Edge || P == 1);
  const int64_t np = s.lanes, kk = K * K;
  for (int64_t v = 0; v < np; v += kConvLanes) {
    Vec acc[B][P] = {};
    for (int64_t co = 0; co < s.cout; ++co) {
      const float* wt = weight + (co * s.cin + ci) * kk;
#pragma GCC unroll 3
      for (int64_t ky = 0; ky < K; ++ky) {
        int64_t ty;
        if (!covering_output<S, Edge>(s, iy + s.pad - ky, s.oh, &ty)) continue;
#pragma GCC unroll 3
        for (int64_t kx = 0; kx < K; ++kx) {
          int64_t tx;
          if (!covering_output<S, Edge>(s, ix + s.pad - kx, s.ow, &tx)) continue;
          tap(acc, gy + ((co * s.oh + ty) * s.ow + tx) * np + v, np, wt + ky * K + kx, kk);
        }
      }
    }
    for (int64_t b = 0; b < B; ++b)
      for (int64_t q = 0; q < P; ++q) store(gx + (((ci + b) * s.h + iy) * s.w + ix + q * S) * np + v, acc[b][q]);
  }
}

template <int64_t K>
struct ForwardRow {
  const LaneConv& s;
  const LaneEpilogue& e;
  const float *x, *weight;
  float* y;
  int64_t oy;
  template <int64_t B, int64_t P, bool Edge>
  ZB_INLINE void tile(int64_t co, int64_t ox) const {
    forward_tile<B, K, P, Edge>(s, e, x, weight, y, co, oy, ox);
  }
};

// Pixel i of the row is column first + i * S.
template <int64_t K, int64_t S>
struct BackwardInputRow {
  const LaneConv& s;
  const float *gy, *weight;
  float* gx;
  int64_t iy, first;
  template <int64_t B, int64_t P, bool Edge>
  ZB_INLINE void tile(int64_t ci, int64_t i) const {
    backward_input_tile<B, K, P, S, Edge>(s, gy, weight, gx, ci, iy, first + i * S);
  }
};

template <int64_t P, bool Edge, class Row>
ZB_INLINE void channel_blocks(const Row& row, int64_t channels, int64_t at) {
  int64_t c = 0;
  for (; c + kBlock <= channels; c += kBlock) row.template tile<kBlock, P, Edge>(c, at);
  for (; c < channels; ++c) row.template tile<1, P, Edge>(c, at);
}

// One row of n pixels, of which [lo, hi) are interior: those in runs of
// kRun, the rest one by one.
template <class Row>
ZB_INLINE void row_tiles(const Row& row, int64_t channels, int64_t n, int64_t lo, int64_t hi) {
  hi = std::max(lo, hi);
  int64_t i = 0;
  for (; i < lo; ++i) channel_blocks<1, true>(row, channels, i);
  for (; i + kRun <= hi; i += kRun) channel_blocks<kRun, false>(row, channels, i);
  for (; i < hi; ++i) channel_blocks<1, false>(row, channels, i);
  for (; i < n; ++i) channel_blocks<1, true>(row, channels, i);
}

// The interior output pixels of a dimension: windows [o * stride - pad,
// o * stride - pad + K) inside [0, size): o in [lo, hi).
ZB_INLINE void forward_interior(const LaneConv& s, int64_t size, int64_t out, int64_t* lo, int64_t* hi) {
  *lo = std::min(out, (s.pad + s.stride - 1) / s.stride);
  *hi = size + s.pad - s.k < 0 ? 0 : std::min(out, (size + s.pad - s.k) / s.stride + 1);
}

template <int64_t K>
ZB_INLINE void forward_rows(const LaneConv& s, const LaneEpilogue& e, const float* x, const float* weight, float* y,
                            int64_t row_lo, int64_t row_hi) {
  int64_t y_lo, y_hi, x_lo, x_hi;
  forward_interior(s, s.h, s.oh, &y_lo, &y_hi);
  forward_interior(s, s.w, s.ow, &x_lo, &x_hi);
  for (int64_t oy = row_lo; oy < row_hi; ++oy) {
    const bool inside = oy >= y_lo && oy < y_hi;
    row_tiles(ForwardRow<K>{s, e, x, weight, y, oy}, s.cout, s.ow, inside ? x_lo : 0, inside ? x_hi : 0);
  }
}

// Whether every output that covers input position i at stride S (t = i +
// pad - k a multiple of S, for the taps k < K) lies inside [0, out).
ZB_INLINE bool covered_inside(int64_t i, int64_t pad, int64_t K, int64_t S, int64_t out) {
  for (int64_t k = 0; k < K; ++k) {
    const int64_t t = i + pad - k;
    if (t % S != 0) continue;
    if (t < 0 || t / S >= out) return false;
  }
  return true;
}

// Stride S = 1 or 2 in interior runs; any other stride (edge: true) pixel
// by pixel with every check. At stride 2 a row is walked as its even
// columns, then its odd ones.
template <int64_t K, int64_t S>
ZB_INLINE void backward_input_rows(const LaneConv& s, const float* gy, const float* weight, float* gx, int64_t row_lo,
                                   int64_t row_hi, bool edge) {
  for (int64_t iy = row_lo; iy < row_hi; ++iy) {
    const bool row_inside = !edge && covered_inside(iy, s.pad, K, S, s.oh);
    for (int64_t first = 0; first < S && first < s.w; ++first) {
      const int64_t count = (s.w - first + S - 1) / S;
      int64_t lo = 0, hi = 0;
      if (row_inside) {
        lo = count;
        for (int64_t i = 0; i < count; ++i)
          if (covered_inside(first + i * S, s.pad, K, S, s.ow)) {
            if (lo == count) lo = i;
            hi = i + 1;
          }
      }
      row_tiles(BackwardInputRow<K, S>{s, gy, weight, gx, iy, first}, s.cin, count, lo, hi);
    }
  }
}

// Output channels in blocks of kWeightBlock: 18 sums at 3 x 3, within the
// 32 vector registers of AVX-512.
constexpr int64_t kWeightBlock = 2;

// Output pixel (oy, ox)'s share for B output channels (dL/dy at g_at, the
// channels gplane apart) against the input channel at x_ch, whose window
// starts at (iy0, ix0). Edge: some taps fall outside the image and are
// checked one by one; otherwise none do and the taps are unrolled.
template <int64_t K, int64_t B, bool Edge>
ZB_INLINE void backward_weight_pixel(const LaneConv& s, const float* g_at, int64_t gplane, const float* x_ch,
                                     int64_t iy0, int64_t ix0, Vec (&acc)[B][K * K]) {
  const int64_t np = s.lanes;
  for (int64_t v = 0; v < np; v += kConvLanes) {
    Vec g[B];
#pragma GCC unroll 4
    for (int64_t b = 0; b < B; ++b) g[b] = load(g_at + b * gplane + v);
#pragma GCC unroll 3
    for (int64_t ky = 0; ky < K; ++ky) {
      const int64_t iy = iy0 + ky;
      if (Edge && (iy < 0 || iy >= s.h)) continue;
#pragma GCC unroll 3
      for (int64_t kx = 0; kx < K; ++kx) {
        const int64_t ix = ix0 + kx;
        if (Edge && (ix < 0 || ix >= s.w)) continue;
        const Vec in = load(x_ch + (iy * s.w + ix) * np + v);
#pragma GCC unroll 4
        for (int64_t b = 0; b < B; ++b) acc[b][ky * K + kx] += g[b] * in;
      }
    }
  }
}

// Output row oy's share of dL/dweight for output channels co .. co + B - 1
// against input channel ci, added to acc_mem (B x K x K vectors): each input
// vector loaded feeds the B channels' sums.
template <int64_t K, int64_t B>
ZB_INLINE void backward_weight_row(const LaneConv& s, const float* gy, const float* x, float* acc_mem, int64_t co,
                                   int64_t ci, int64_t oy) {
  const int64_t np = s.lanes, gplane = s.oh * s.ow * np;
  Vec acc[B][K * K];
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < K * K; ++t) acc[b][t] = load(acc_mem + (b * K * K + t) * kConvLanes);
  const float* g_row = gy + co * gplane + oy * s.ow * np;
  const float* x_ch = x + ci * s.h * s.w * np;
  const int64_t iy0 = oy * s.stride - s.pad;
  const bool rows_inside = iy0 >= 0 && iy0 + K <= s.h;
  for (int64_t ox = 0; ox < s.ow; ++ox) {
    const int64_t ix0 = ox * s.stride - s.pad;
    if (rows_inside && ix0 >= 0 && ix0 + K <= s.w)
      backward_weight_pixel<K, B, false>(s, g_row + ox * np, gplane, x_ch, iy0, ix0, acc);
    else
      backward_weight_pixel<K, B, true>(s, g_row + ox * np, gplane, x_ch, iy0, ix0, acc);
  }
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < K * K; ++t) store(acc_mem + (b * K * K + t) * kConvLanes, acc[b][t]);
}

// Units [lo, hi) row by row: every unit takes its share of output row oy
// while that row of dL/dy and its input rows are in cache, where a unit at a
// time streamed whole channels from memory again for every unit (12 MB a
// call at 8 -> 8 channels, 32 x 32, batch 32). The running sums wait in
// acc between rows.
template <int64_t K>
ZB_INLINE void backward_weight_units(const LaneConv& s, const float* gy, const float* x, float* gweight, int64_t lo,
                                     int64_t hi) {
  constexpr int64_t kUnitSums = kWeightBlock * K * K * kConvLanes;  // floats
  std::vector<float> acc(static_cast<size_t>((hi - lo) * kUnitSums));
  for (int64_t oy = 0; oy < s.oh; ++oy)
    for (int64_t u = lo; u < hi; ++u) {
      const int64_t ci = u % s.cin, co = u / s.cin * kWeightBlock;
      float* a = acc.data() + (u - lo) * kUnitSums;
      if (co + kWeightBlock <= s.cout)
        backward_weight_row<K, kWeightBlock>(s, gy, x, a, co, ci, oy);
      else
        for (int64_t c = co; c < s.cout; ++c)
          backward_weight_row<K, 1>(s, gy, x, a + (c - co) * K * K * kConvLanes, c, ci, oy);
    }
  for (int64_t u = lo; u < hi; ++u) {
    const int64_t ci = u % s.cin, co = u / s.cin * kWeightBlock;
    for (int64_t c = co; c < std::min(co + kWeightBlock, s.cout); ++c)
      for (int64_t t = 0; t < K * K; ++t)
        gweight[(c * s.cin + ci) * K * K + t] =
            simd::lane_sum(load(acc.data() + (u - lo) * kUnitSums + ((c - co) * K * K + t) * kConvLanes));
  }
}

}  // namespace

ZB_VECTOR_CLONES void lane_conv_forward(const LaneConv& s, const float* x, const float* weight, float* y,
                                        int64_t row_lo, int64_t row_hi, const LaneEpilogue& epilogue) {
  if (s.k == 3)
    forward_rows<3>(s, epilogue, x, weight, y, row_lo, row_hi);
  else
    forward_rows<1>(s, epilogue, x, weight, y, row_lo, row_hi);
}

ZB_VECTOR_CLONES void lane_conv_backward_input(const LaneConv& s, const float* gy, const float* weight, float* gx,
                                               int64_t row_lo, int64_t row_hi) {
  const bool edge = s.stride > 2;
  if (s.k == 3 && s.stride == 2)
    backward_input_rows<3, 2>(s, gy, weight, gx, row_lo, row_hi, edge);
  else if (s.k == 3)
    backward_input_rows<3, 1>(s, gy, weight, gx, row_lo, row_hi, edge);
  else if (s.stride == 2)
    backward_input_rows<1, 2>(s, gy, weight, gx, row_lo, row_hi, edge);
  else
    backward_input_rows<1, 1>(s, gy, weight, gx, row_lo, row_hi, edge);
}

int64_t lane_conv_weight_units(const LaneConv& s) { return (s.cout + kWeightBlock - 1) / kWeightBlock * s.cin; }

ZB_VECTOR_CLONES void lane_conv_backward_weight(const LaneConv& s, const float* gy, const float* x, float* gweight,
                                                int64_t unit_lo, int64_t unit_hi) {
  if (s.k == 3)
    backward_weight_units<3>(s, gy, x, gweight, unit_lo, unit_hi);
  else
    backward_weight_units<1>(s, gy, x, gweight, unit_lo, unit_hi);
}

// In tiles of 16 pixels x 16 images, transposed in registers: 16 vector
// loads, 64 shuffles and 16 vector stores where the scalar loop moved 256
// floats one by one. A tail of pixels (hw not a multiple of 16) goes
// element by element.
ZB_VECTOR_CLONES void to_lanes(const float* x, int64_t n, int64_t c, int64_t hw, int64_t lanes, float* t, int64_t c_lo,
                               int64_t c_hi) {
  const int64_t full = hw / kConvLanes * kConvLanes;
  for (int64_t ch = c_lo; ch < c_hi; ++ch) {
    for (int64_t p0 = 0; p0 < full; p0 += kConvLanes)
      for (int64_t i0 = 0; i0 < lanes; i0 += kConvLanes) {
        Vec r[kConvLanes];
        for (int64_t i = 0; i < kConvLanes; ++i) r[i] = i0 + i < n ? load(x + ((i0 + i) * c + ch) * hw + p0) : Vec{};
        simd::transpose16(r);
        for (int64_t j = 0; j < kConvLanes; ++j) store(t + (ch * hw + p0 + j) * lanes + i0, r[j]);
      }
    for (int64_t p = full; p < hw; ++p) {
      float* out = t + (ch * hw + p) * lanes;
      for (int64_t i = 0; i < n; ++i) out[i] = x[(i * c + ch) * hw + p];
      std::fill(out + n, out + lanes, 0.0f);
    }
  }
}

ZB_VECTOR_CLONES void from_lanes(const float* t, int64_t n, int64_t c, int64_t hw, int64_t lanes, float* x,
                                 int64_t c_lo, int64_t c_hi) {
  const int64_t full = hw / kConvLanes * kConvLanes;
  for (int64_t ch = c_lo; ch < c_hi; ++ch) {
    for (int64_t p0 = 0; p0 < full; p0 += kConvLanes)
      for (int64_t i0 = 0; i0 < n; i0 += kConvLanes) {
        Vec r[kConvLanes];
        for (int64_t j = 0; j < kConvLanes; ++j) r[j] = load(t + (ch * hw + p0 + j) * lanes + i0);
        simd::transpose16(r);
        for (int64_t i = 0; i < kConvLanes && i0 + i < n; ++i) store(x + ((i0 + i) * c + ch) * hw + p0, r[i]);
      }
    for (int64_t p = full; p < hw; ++p) {
      const float* in = t + (ch * hw + p) * lanes;
      for (int64_t i = 0; i < n; ++i) x[(i * c + ch) * hw + p] = in[i];
    }
  }
}

}  // namespace zoobench::zoo::detail
