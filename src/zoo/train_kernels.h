// The layers between the convolutions in training, for either layout the
// training pass keeps its activations in (NCHW, or lane_conv.h's lane-major
// C x H x W x Np): batch normalisation with the batch's statistics, fused
// with the shortcut's addition and the ReLU after it, and the CNN's 2 x 2
// max-pool. libtorch's BatchNorm collected its statistics in a scalar loop
// (perf on a width-8 ResNet's fine-tune: 11 % of the samples in that loop
// alone) and then spent a pass each on the normalisation, the addition and
// the ReLU, and their gradients. No torch here: plain float arrays, compiled
// for AVX-512, AVX2 and the baseline (ZB_VECTOR_CLONES).
#pragma once
#include <cstdint>

namespace zoobench::zoo::detail {

// Where one channel's values lie: `segments` runs of `length` floats, run r
// of channel c starting at c * chan_stride + r * seg_stride.
// NCHW: segments = N, length = H x W, seg_stride = C x H x W, chan_stride =
// H x W. Lane-major: one run of H x W x lanes, lanes the padded batch and
// `valid` its real images: the lanes past `valid` are left out of every sum
// and written as zeros, so that padding stays zero through the network.
struct BnLayout {
  int64_t segments = 1, length = 0, seg_stride = 0, chan_stride = 0;
  int64_t lanes = 0, valid = 0;  // lanes = 0: NCHW
  int64_t count() const { return lanes ? length / lanes * valid : segments * length; }
};
BnLayout bn_nchw(int64_t n, int64_t c, int64_t hw);
BnLayout bn_lanes(int64_t hw, int64_t lanes, int64_t valid);

// Channels [c_lo, c_hi): the batch's mean and biased variance of x, then
// y = relu?((x - mean) / sqrt(var + eps) x gamma + beta + residual?).
// residual: laid out as x, or null. mean, var: out, one per channel.
void bn_act_forward(const BnLayout& l, const float* x, const float* gamma, const float* beta, const float* residual,
                    bool relu, double eps, float* y, float* mean, float* var, int64_t c_lo, int64_t c_hi);
// The gradients of bn_act_forward from gy: gx; gskip (the residual's: the
// gradient after the ReLU; null when not wanted); dgamma, dbeta. y is the
// forward output, whose sign is the ReLU's mask (null without a ReLU).
void bn_act_backward(const BnLayout& l, const float* gy, const float* x, const float* y, const float* mean,
                     const float* invstd, const float* gamma, float* gx, float* gskip, float* dgamma, float* dbeta,
                     int64_t c_lo, int64_t c_hi);

// 2 x 2 max-pool at stride 2 (odd rows and columns dropped, as
// max_pool2d), lane-major with `lanes` lanes, channels [c_lo, c_hi).
void lane_max_pool2_forward(const float* x, int64_t h, int64_t w, int64_t lanes, float* y, int64_t c_lo, int64_t c_hi);
// Each output's gradient to the first input of its window (in row-major
// order) that equals the output, as max_pool2d's index does (but for a
// window with two NaNs: torch's goes to the last); every element of gx
// written.
void lane_max_pool2_backward(const float* x, const float* y, const float* gy, int64_t h, int64_t w, int64_t lanes,
                             float* gx, int64_t c_lo, int64_t c_hi);

}  // namespace zoobench::zoo::detail
