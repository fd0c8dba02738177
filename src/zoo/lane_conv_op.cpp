// The autograd side of lane_conv.h: layout changes, threads, and the
// backward pass as a torch::autograd::Function.
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <cstdlib>
#include <cstring>

#include "lane_conv.h"
#include "nets.h"

namespace zoobench::zoo {
namespace {
using detail::kConvLanes;
using detail::LaneConv;

LaneConv shape_of(int64_t h, int64_t w, const torch::Tensor& weight, int64_t stride, int64_t lanes) {
  return detail::lane_conv_shape(weight.size(1), weight.size(0), weight.size(2), stride, h, w, lanes);
}

// N x C x H x W -> C x H x W x Np, the lanes past N zero.
torch::Tensor to_lanes(const torch::Tensor& x, int64_t lanes) {
  const torch::Tensor xc = x.contiguous();
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  torch::Tensor t = torch::empty({c, x.size(2), x.size(3), lanes}, x.options());
  const float* in = xc.data_ptr<float>();
  float* out = t.data_ptr<float>();
  at::parallel_for(0, c, 1, [&](int64_t lo, int64_t hi) { detail::to_lanes(in, n, c, hw, lanes, out, lo, hi); });
  return t;
}

torch::Tensor from_lanes(const torch::Tensor& t, int64_t n) {
  const int64_t c = t.size(0), hw = t.size(1) * t.size(2), lanes = t.size(3);
  torch::Tensor x = torch::empty({n, c, t.size(1), t.size(2)}, t.options());
  const float* in = t.data_ptr<float>();
  float* out = x.data_ptr<float>();
  at::parallel_for(0, c, 1, [&](int64_t lo, int64_t hi) { detail::from_lanes(in, n, c, hw, lanes, out, lo, hi); });
  return x;
}

struct LaneConvFunction : torch::autograd::Function<LaneConvFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, int64_t stride) {
    const int64_t n = x.size(0), lanes = (n + kConvLanes - 1) / kConvLanes * kConvLanes;
    const torch::Tensor w = weight.contiguous();
    const torch::Tensor xt = to_lanes(x, lanes);
    const LaneConv s = shape_of(x.size(2), x.size(3), w, stride, lanes);
    torch::Tensor yt = torch::empty({s.cout, s.oh, s.ow, lanes}, x.options());
    const float *xp = xt.data_ptr<float>(), *wp = w.data_ptr<float>();
    float* yp = yt.data_ptr<float>();
    at::parallel_for(0, s.oh, 1, [&](int64_t lo, int64_t hi) { detail::lane_conv_forward(s, xp, wp, yp, lo, hi); });
    ctx->save_for_backward({xt, w});
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["n"] = n;
    ctx->saved_data["h"] = x.size(2);
    ctx->saved_data["w"] = x.size(3);
    return from_lanes(yt, n);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &xt = saved[0], &w = saved[1];
    const int64_t stride = ctx->saved_data["stride"].toInt(), n = ctx->saved_data["n"].toInt();
    const int64_t lanes = xt.size(3);
    const LaneConv s = shape_of(ctx->saved_data["h"].toInt(), ctx->saved_data["w"].toInt(), w, stride, lanes);
    const torch::Tensor gt = to_lanes(grads[0], lanes);
    const float *gp = gt.data_ptr<float>(), *wp = w.data_ptr<float>(), *xp = xt.data_ptr<float>();
    torch::Tensor gx, gw;
    if (ctx->needs_input_grad(0)) {
      torch::Tensor gxt = torch::empty({s.cin, s.h, s.w, lanes}, gt.options());
      float* out = gxt.data_ptr<float>();
      at::parallel_for(0, s.h, 1,
                       [&](int64_t lo, int64_t hi) { detail::lane_conv_backward_input(s, gp, wp, out, lo, hi); });
      gx = from_lanes(gxt, n);
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

}  // namespace

bool lane_kernels_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("ZOOBENCH_LANE_CONV");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return on;
}

torch::Tensor lane_conv2d(const torch::Tensor& x, const torch::Tensor& weight, int64_t stride) {
  TORCH_CHECK(x.dim() == 4 && x.scalar_type() == torch::kFloat && x.device().is_cpu(),
              "lane_conv2d: x must be N x C x H x W float32 on the CPU");
  TORCH_CHECK(weight.dim() == 4 && weight.size(1) == x.size(1) && weight.size(2) == weight.size(3) &&
                  (weight.size(2) == 1 || weight.size(2) == 3),
              "lane_conv2d: weight must be cout x cin x k x k with k = 1 or 3");
  return LaneConvFunction::apply(x.contiguous(), weight, stride);
}

torch::Tensor train_conv(torch::nn::Conv2d& conv, const torch::Tensor& x) {
  const auto& o = conv->options;
  const int64_t k = (*o.kernel_size())[0];
  const bool square = (*o.kernel_size())[1] == k && (*o.stride())[0] == (*o.stride())[1];
  const auto* pad = c10::get_if<torch::ExpandingArray<2>>(&o.padding());
  const bool applies = lane_kernels_enabled() && conv->is_training() && x.device().is_cpu() &&
                       x.scalar_type() == torch::kFloat && x.dim() == 4 && square && (k == 1 || k == 3) && pad &&
                       (**pad)[0] == k / 2 && (**pad)[1] == k / 2 &&
                       c10::get_if<torch::enumtype::kZeros>(&o.padding_mode()) && !o.bias() && o.groups() == 1 &&
                       (*o.dilation())[0] == 1 && (*o.dilation())[1] == 1 && o.in_channels() <= kLaneConvMaxIn &&
                       o.out_channels() <= kLaneConvMaxOut;
  return applies ? lane_conv2d(x, conv->weight, (*o.stride())[0]) : conv->forward(x);
}

}  // namespace zoobench::zoo
