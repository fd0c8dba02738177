#include "lane_net.h"

#include <cmath>

#include "zoobench/simd.h"

#pragma GCC diagnostic ignored "-Wpsabi"  // see simd.h

namespace zoobench::zoo::detail {
namespace {
using simd::load;
using simd::store;
using Vec = simd::f32x16;

// Lane by lane, for GCC's loop vectoriser: on vector types it made the
// selects of a NaN-aware maximum one scalar branch a lane.
ZB_VECTOR_CLONES void max_pool2(const LaneConv& s, const float* x, float* y) {
  for (int64_t c = 0; c < s.cin; ++c)
    for (int64_t oy = 0; oy < s.oh; ++oy)
      for (int64_t ox = 0; ox < s.ow; ++ox) {
        const float* p = x + ((c * s.h + 2 * oy) * s.w + 2 * ox) * kConvLanes;
        const int64_t below = s.w * kConvLanes;
        const float* const in[4] = {p, p + kConvLanes, p + below, p + below + kConvLanes};
        float* out = y + ((c * s.oh + oy) * s.ow + ox) * kConvLanes;
        for (int64_t i = 0; i < kConvLanes; ++i) {
          // The first maximum, a NaN taking over, as max_pool2d's scan does.
          float m = in[0][i];
          for (int q = 1; q < 4; ++q) m = (in[q][i] > m || std::isnan(in[q][i])) ? in[q][i] : m;
          out[i] = m;
        }
      }
}

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
      max_pool2(step.shape, buf[step.src], buf[step.dst]);
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
