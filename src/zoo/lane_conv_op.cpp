// The autograd side of lane_conv.h: layout changes, threads, and the
// backward pass as torch::autograd::Functions.
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <cstdlib>
#include <cstring>

#include "lane_conv.h"
#include "nets.h"
#include "train_ops.h"

namespace zoobench::zoo {
namespace {
using detail::kConvLanes;
using detail::LaneConv;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

LaneConv shape_of(const torch::Tensor& xt, const torch::Tensor& weight, int64_t stride) {
  return detail::lane_conv_shape(weight.size(1), weight.size(0), weight.size(2), stride, xt.size(1), xt.size(2),
                                 xt.size(3));
}

// N x C x H x W -> C x H x W x lanes, the lanes past N zero.
torch::Tensor nchw_to_lanes(const torch::Tensor& x, int64_t lanes) {
  const torch::Tensor xc = x.contiguous();
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  torch::Tensor t = torch::empty({c, x.size(2), x.size(3), lanes}, x.options());
  const float* in = xc.data_ptr<float>();
  float* out = t.data_ptr<float>();
  at::parallel_for(0, c, 1, [&](int64_t lo, int64_t hi) { detail::to_lanes(in, n, c, hw, lanes, out, lo, hi); });
  return t;
}

torch::Tensor lanes_to_nchw(const torch::Tensor& t, int64_t n) {
  const torch::Tensor tc = t.contiguous();
  const int64_t c = t.size(0), hw = t.size(1) * t.size(2), lanes = t.size(3);
  torch::Tensor x = torch::empty({n, c, t.size(1), t.size(2)}, t.options());
  const float* in = tc.data_ptr<float>();
  float* out = x.data_ptr<float>();
  at::parallel_for(0, c, 1, [&](int64_t lo, int64_t hi) { detail::from_lanes(in, n, c, hw, lanes, out, lo, hi); });
  return x;
}

struct ToLanesFunction : torch::autograd::Function<ToLanesFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, int64_t lanes) {
    ctx->saved_data["n"] = x.size(0);
    return nchw_to_lanes(x, lanes);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {lanes_to_nchw(grads[0], ctx->saved_data["n"].toInt()), torch::Tensor()};
  }
};

struct FromLanesFunction : torch::autograd::Function<FromLanesFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& t, int64_t n) {
    ctx->saved_data["lanes"] = t.size(3);
    return lanes_to_nchw(t, n);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {nchw_to_lanes(grads[0], ctx->saved_data["lanes"].toInt()), torch::Tensor()};
  }
};

// Lane-major in and out: C x H x W x lanes.
struct LaneConvFunction : torch::autograd::Function<LaneConvFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& xt, const torch::Tensor& weight,
                               int64_t stride) {
    const torch::Tensor w = weight.contiguous(), x = xt.contiguous();
    const LaneConv s = shape_of(x, w, stride);
    torch::Tensor yt = torch::empty({s.cout, s.oh, s.ow, s.lanes}, x.options());
    const float *xp = x.data_ptr<float>(), *wp = w.data_ptr<float>();
    float* yp = yt.data_ptr<float>();
    at::parallel_for(0, s.oh, 1, [&](int64_t lo, int64_t hi) { detail::lane_conv_forward(s, xp, wp, yp, lo, hi); });
    ctx->save_for_backward({x, w});
    ctx->saved_data["stride"] = stride;
    return yt;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &xt = saved[0], &w = saved[1];
    const LaneConv s = shape_of(xt, w, ctx->saved_data["stride"].toInt());
    const torch::Tensor gt = grads[0].contiguous();
    const float *gp = gt.data_ptr<float>(), *wp = w.data_ptr<float>(), *xp = xt.data_ptr<float>();
    torch::Tensor gx, gw;
    if (ctx->needs_input_grad(0)) {
      gx = torch::empty_like(xt);
      float* out = gx.data_ptr<float>();
      at::parallel_for(0, s.h, 1,
                       [&](int64_t lo, int64_t hi) { detail::lane_conv_backward_input(s, gp, wp, out, lo, hi); });
    }
    if (ctx->needs_input_grad(1)) {
      gw = torch::empty_like(w);
      float* out = gw.data_ptr<float>();
      at::parallel_for(0, detail::lane_conv_weight_units(s), 1,
                       [&](int64_t lo, int64_t hi) { detail::lane_conv_backward_weight(s, gp, xp, out, lo, hi); });
    }
    return {gx, gw, torch::Tensor()};
  }
};

// What torch::conv2d would refuse, before a kernel reads past an array.
void check_conv(const torch::Tensor& weight, int64_t cin) {
  TORCH_CHECK(weight.dim() == 4 && weight.size(1) == cin && weight.size(2) == weight.size(3) &&
                  (weight.size(2) == 1 || weight.size(2) == 3),
              "lane_conv2d: weight must be cout x ", cin, " x k x k with k = 1 or 3");
}

}  // namespace

bool lane_kernels_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("ZOOBENCH_LANE_CONV");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return on;
}

int64_t lanes_for(int64_t n) { return (n + kConvLanes - 1) / kConvLanes * kConvLanes; }

torch::Tensor to_lanes_op(const torch::Tensor& x) { return ToLanesFunction::apply(x, lanes_for(x.size(0))); }
torch::Tensor from_lanes_op(const torch::Tensor& t, int64_t n) { return FromLanesFunction::apply(t, n); }

torch::Tensor lane_conv_on_lanes(const torch::Tensor& xt, const torch::Tensor& weight, int64_t stride) {
  TORCH_CHECK(xt.dim() == 4 && xt.size(3) % kConvLanes == 0, "lane_conv2d: x must be C x H x W x lanes");
  check_conv(weight, xt.size(0));
  return LaneConvFunction::apply(xt, weight, stride);
}

torch::Tensor lane_conv2d(const torch::Tensor& x, const torch::Tensor& weight, int64_t stride) {
  TORCH_CHECK(x.dim() == 4 && x.scalar_type() == torch::kFloat && x.device().is_cpu(),
              "lane_conv2d: x must be N x C x H x W float32 on the CPU");
  check_conv(weight, x.size(1));
  return from_lanes_op(LaneConvFunction::apply(to_lanes_op(x), weight, stride), x.size(0));
}

bool lane_conv_applies(const torch::nn::Conv2d& conv) {
  const auto& o = conv->options;
  const int64_t k = (*o.kernel_size())[0];
  const bool square = (*o.kernel_size())[1] == k && (*o.stride())[0] == (*o.stride())[1];
  const auto* pad = c10::get_if<torch::ExpandingArray<2>>(&o.padding());
  return lane_kernels_enabled() && conv->is_training() && square && (k == 1 || k == 3) && pad && (**pad)[0] == k / 2 &&
         (**pad)[1] == k / 2 && c10::get_if<torch::enumtype::kZeros>(&o.padding_mode()) && !o.bias() &&
         o.groups() == 1 && (*o.dilation())[0] == 1 && (*o.dilation())[1] == 1 &&
         lane_conv_wins(o.in_channels(), o.out_channels());
}

torch::Tensor train_conv(torch::nn::Conv2d& conv, const torch::Tensor& x) {
  const bool applies = lane_conv_applies(conv) && x.device().is_cpu() && x.scalar_type() == torch::kFloat &&
                       x.dim() == 4 && conv->weight.device().is_cpu();
  return applies ? lane_conv2d(x, conv->weight, (*conv->options.stride())[0]) : conv->forward(x);
}

}  // namespace zoobench::zoo
