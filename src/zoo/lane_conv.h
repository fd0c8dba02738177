// Convolutions for networks a few channels wide, in training. oneDNN's
// kernels vectorise over channels: at 4-16 channels most of each vector is
// padding, and every call reorders the activations from NCHW into oneDNN's
// blocked layout and back. Fine-tuning the mini zoo's networks spent 56-72 %
// of each step in oneDNN's convolutions at 8-14 GFLOP/s (libtorch's profiler,
// resnet8 w4, batch 32, one thread). These kernels vectorise over the batch
// instead: activations are stored "lane-major", C x H x W x Np with the batch
// innermost (Np: the batch rounded up to 16 lanes, the padding zero), so that
// every tap of every convolution is one aligned vector load, whatever the
// channel count, stride or image size.
// The kernels hold tiles of 4 channels x 4 neighbouring pixels in registers
// (dL/dweight: 2 output channels x the k x k taps). dL/dweight walks the
// image a row at a time, every channel pair taking its share of the row
// while it is in cache; a pair at a time read the whole image from memory
// again for every pair.
// No torch here: plain float arrays, compiled for AVX-512, AVX2 and the
// baseline, the copy for the CPU chosen at load (ZB_VECTOR_CLONES).
#pragma once
#include <cstdint>

namespace zoobench::zoo::detail {

inline constexpr int64_t kConvLanes = 16;

// A square k x k convolution (k = 1 or 3), no bias, no groups or dilation.
struct LaneConv {
  int64_t cin = 0, cout = 0;
  int64_t h = 0, w = 0;    // input
  int64_t oh = 0, ow = 0;  // output
  int64_t k = 3, stride = 1, pad = 1;
  int64_t lanes = 0;  // Np, a multiple of kConvLanes
};

// A k x k convolution of cin -> cout channels at stride, padding k / 2, on
// h x w inputs stored with `lanes` lanes.
inline LaneConv lane_conv_shape(int64_t cin, int64_t cout, int64_t k, int64_t stride, int64_t h, int64_t w,
                                int64_t lanes) {
  LaneConv s;
  s.cin = cin;
  s.cout = cout;
  s.k = k;
  s.stride = stride;
  s.pad = k / 2;
  s.h = h;
  s.w = w;
  s.oh = (h + 2 * s.pad - k) / stride + 1;
  s.ow = (w + 2 * s.pad - k) / stride + 1;
  s.lanes = lanes;
  return s;
}

// What the forward pass does to each sum before it stores it, in this
// order: adds bias[co], adds the residual (laid out as y), clamps at zero.
// Inference folds each BatchNorm into a bias, so that a layer, its shortcut
// and its ReLU are one pass over the activations instead of three or four.
struct LaneEpilogue {
  const float* bias = nullptr;      // cout
  const float* residual = nullptr;  // cout x oh x ow x Np
  bool relu = false;
};

// x: cin x h x w x Np, weight: cout x cin x k x k (PyTorch's order),
// y: cout x oh x ow x Np. Output rows [row_lo, row_hi) of every channel.
void lane_conv_forward(const LaneConv& s, const float* x, const float* weight, float* y, int64_t row_lo,
                       int64_t row_hi, const LaneEpilogue& epilogue = {});
// dL/dx from dL/dy (gy: cout x oh x ow x Np) into gx (cin x h x w x Np),
// input rows [row_lo, row_hi) of every channel; every element written.
void lane_conv_backward_input(const LaneConv& s, const float* gy, const float* weight, float* gx, int64_t row_lo,
                              int64_t row_hi);
// dL/dweight for the work units [unit_lo, unit_hi) of
// lane_conv_weight_units(s): each unit writes the k x k blocks of a few
// output channels against one input channel, whole.
int64_t lane_conv_weight_units(const LaneConv& s);
void lane_conv_backward_weight(const LaneConv& s, const float* gy, const float* x, float* gweight, int64_t unit_lo,
                               int64_t unit_hi);

// The layout changes, for channels [c_lo, c_hi): x (n x c x hw, NCHW) into
// t (c x hw x lanes, the lanes past n zeroed), and back.
void to_lanes(const float* x, int64_t n, int64_t c, int64_t hw, int64_t lanes, float* t, int64_t c_lo, int64_t c_hi);
void from_lanes(const float* t, int64_t n, int64_t c, int64_t hw, int64_t lanes, float* x, int64_t c_lo, int64_t c_hi);

}  // namespace zoobench::zoo::detail
