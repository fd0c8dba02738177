#include "lane_net.h"

#include "train_kernels.h"
#include "zoobench/simd.h"

#pragma GCC diagnostic ignored "-Wpsabi"  // see simd.h

namespace zoobench::zoo::detail {
namespace {
using simd::load;
using Vec = simd::f32x16;

// The mean over each channel's pixels, image i's in lane i.
ZB_VECTOR_CLONES void average(const float* x, int64_t channels, int64_t hw, int64_t n, float* features) {
  for (int64_t c = 0; c < channels; ++c) {
    Vec sum{};
    for (int64_t p = 0; p < hw; ++p) sum += load(x + (c * hw + p) * kConvLanes);
    for (int64_t i = 0; i < n; ++i) features[i * channels + c] = sum[i] / static_cast<float>(hw);
  }
}

}  // namespace

void lane_net_run(const LaneNetPlan& plan, const float* x, int64_t n, float* const* outputs, float* scratch) {
  float* buf[kLaneNetBuffers];
  for (int b = 0; b < kLaneNetBuffers; ++b) buf[b] = scratch + b * plan.buffer_floats;
  auto hand_out = [&](int64_t at) {
    for (size_t k = 0; k < plan.outputs.size(); ++k) {
      const LaneOutput& o = plan.outputs[k];
      if (o.at != at) continue;
      if (o.pool)
        average(buf[o.buf], o.channels, o.h * o.w, n, outputs[k]);
      else
        from_lanes(buf[o.buf], n, o.channels, o.h * o.w, kConvLanes, outputs[k], 0, o.channels);
    }
  };
  to_lanes(x, n, plan.channels, plan.h * plan.w, kConvLanes, buf[0], 0, plan.channels);
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    hand_out(static_cast<int64_t>(i));
    const LaneStep& step = plan.steps[i];
    if (step.op == LaneStep::Op::kMaxPool2) {
      lane_max_pool2_forward(buf[step.src], step.shape.h, step.shape.w, kConvLanes, buf[step.dst], 0, step.shape.cin);
      continue;
    }
    LaneEpilogue e;
    e.bias = step.bias;
    e.residual = step.residual >= 0 ? buf[step.residual] : nullptr;
    e.relu = step.relu;
    lane_conv_forward(step.shape, buf[step.src], step.weight, buf[step.dst], 0, step.shape.oh, e);
  }
  hand_out(static_cast<int64_t>(plan.steps.size()));
}

}  // namespace zoobench::zoo::detail
