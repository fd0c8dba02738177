// Feature extraction of a folded network (zoo::FoldedNet) with the
// lane-major kernels of lane_conv.h, 16 images at a time from the input to
// the pooled features. oneDNN runs a network layer by layer over the whole
// batch: at batch 256 each activation of a width-4 ResNet is 4 MB, and every
// layer reorders it into oneDNN's blocked layout and back, so the narrow
// networks reached 14-43 % of the GEMM rate. Here a block of 16 images
// stays in the lane layout through every layer, its activations stay in one
// core's cache (a few hundred KB at width 4-8), and each layer's bias,
// shortcut and ReLU are applied as its sums are stored. Every block is
// independent: an image's features do not depend on the others in its
// batch, nor on the thread count.
// No torch here: the caller owns the weights, the threads and the tensors.
#pragma once
#include <cstdint>
#include <vector>

#include "lane_conv.h"

namespace zoobench::zoo::detail {

// The activations of a block live in three buffers, reused layer after
// layer: a residual block needs its input, its first convolution's output
// and its shortcut at once.
inline constexpr int kLaneNetBuffers = 3;

struct LaneStep {
  enum class Op { kConv, kMaxPool2 } op = Op::kConv;
  // kConv: the convolution (lanes = kConvLanes); kMaxPool2 (2 x 2, stride 2):
  // cin = cout channels, h x w in, oh x ow out.
  LaneConv shape;
  const float* weight = nullptr;  // cout x cin x k x k
  const float* bias = nullptr;    // cout
  bool relu = false;
  int src = 0, dst = 1, residual = -1;  // buffers; residual -1: none
};

// An activation the caller wants back: buffer buf once steps [0, at) have
// run, as n x channels x h x w (NCHW), or pooled: each channel's mean, n x
// channels.
struct LaneOutput {
  int64_t at = 0;
  int buf = 0;
  int64_t channels = 0, h = 0, w = 0;
  bool pool = false;
  int64_t floats_per_image() const { return pool ? channels : channels * h * w; }
};

struct LaneNetPlan {
  int64_t channels = 0, h = 0, w = 0;  // the input, buffer 0
  std::vector<LaneStep> steps;
  std::vector<LaneOutput> outputs;
  int64_t buffer_floats = 0;  // each buffer
};

// Runs n <= kConvLanes images (x: n x channels x h x w, NCHW) through the
// plan; outputs[k] receives plan.outputs[k] of the n images. scratch:
// kLaneNetBuffers * buffer_floats floats, 64-byte aligned.
void lane_net_run(const LaneNetPlan& plan, const float* x, int64_t n, float* const* outputs, float* scratch);

}  // namespace zoobench::zoo::detail
