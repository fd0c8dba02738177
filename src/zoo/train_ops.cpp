// The autograd side of train_kernels.h, and the training pass on it.
#include "train_ops.h"

#include <ATen/Parallel.h>

#include "train_kernels.h"

namespace zoobench::zoo {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

detail::BnLayout layout_of(const torch::Tensor& x, int64_t n, bool lanes) {
  return lanes ? detail::bn_lanes(x.size(1) * x.size(2), x.size(3), n)
               : detail::bn_nchw(x.size(0), x.size(1), x.size(2) * x.size(3));
}

// relu?(batch_norm(x) + residual?) in training mode; residual empty: none
// (autograd takes no undefined input). Updates the running statistics as BatchNorm2d does.
struct BatchNormActFunction : torch::autograd::Function<BatchNormActFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias, const torch::Tensor& residual, torch::Tensor running_mean,
                               torch::Tensor running_var, double momentum, double eps, bool relu, int64_t n,
                               bool lanes) {
    const bool has_residual = residual.numel() > 0;
    const torch::Tensor xc = x.contiguous(), rc = residual.contiguous();
    const int64_t channels = lanes ? x.size(0) : x.size(1);
    const detail::BnLayout l = layout_of(xc, n, lanes);
    TORCH_CHECK(l.count() > 1, "BatchNorm in training needs more than one value per channel, got ", l.count());
    TORCH_CHECK(weight.numel() == channels && bias.numel() == channels && running_mean.numel() == channels &&
                    running_var.numel() == channels,
                "BatchNorm of ", weight.numel(), " channels given ", channels);
    TORCH_CHECK(!has_residual || residual.sizes() == x.sizes(), "the shortcut's shape ", residual.sizes(),
                " is not the layer's ", x.sizes());
    torch::Tensor y = torch::empty_like(xc), mean = torch::empty({channels}, x.options()),
                  var = torch::empty({channels}, x.options());
    const torch::Tensor w = weight.contiguous(), b = bias.contiguous();
    at::parallel_for(0, channels, 1, [&](int64_t lo, int64_t hi) {
      detail::bn_act_forward(l, xc.data_ptr<float>(), w.data_ptr<float>(), b.data_ptr<float>(),
                             has_residual ? rc.data_ptr<float>() : nullptr, relu, eps, y.data_ptr<float>(),
                             mean.data_ptr<float>(), var.data_ptr<float>(), lo, hi);
    });
    {
      torch::NoGradGuard no_graph;
      const double count = static_cast<double>(l.count());
      running_mean.mul_(1 - momentum).add_(mean, momentum);
      running_var.mul_(1 - momentum).add_(var * (count / (count - 1)), momentum);
    }
    ctx->save_for_backward({xc, w, mean, (var + eps).rsqrt(), relu ? y : torch::Tensor()});
    ctx->saved_data["n"] = n;
    ctx->saved_data["lanes"] = lanes;
    ctx->saved_data["residual"] = has_residual;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &w = saved[1], &mean = saved[2], &invstd = saved[3], &y = saved[4];
    const bool lanes = ctx->saved_data["lanes"].toBool();
    const detail::BnLayout l = layout_of(x, ctx->saved_data["n"].toInt(), lanes);
    const torch::Tensor gy = grads[0].contiguous();
    const int64_t channels = mean.size(0);
    torch::Tensor gx = torch::empty_like(x), dw = torch::empty_like(w), db = torch::empty_like(w), gskip;
    if (ctx->saved_data["residual"].toBool() && ctx->needs_input_grad(3)) gskip = torch::empty_like(x);
    at::parallel_for(0, channels, 1, [&](int64_t lo, int64_t hi) {
      detail::bn_act_backward(l, gy.data_ptr<float>(), x.data_ptr<float>(), y.defined() ? y.data_ptr<float>() : nullptr,
                              mean.data_ptr<float>(), invstd.data_ptr<float>(), w.data_ptr<float>(),
                              gx.data_ptr<float>(), gskip.defined() ? gskip.data_ptr<float>() : nullptr,
                              dw.data_ptr<float>(), db.data_ptr<float>(), lo, hi);
    });
    return {gx, dw, db, gskip, {}, {}, {}, {}, {}, {}, {}};
  }
};

// 2 x 2 max-pool at stride 2 on lane-major activations.
struct LaneMaxPoolFunction : torch::autograd::Function<LaneMaxPoolFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x) {
    const torch::Tensor xc = x.contiguous();
    const int64_t c = x.size(0), h = x.size(1), w = x.size(2), lanes = x.size(3);
    TORCH_CHECK(h >= 2 && w >= 2, "max_pool2d: a ", h, " x ", w, " input is smaller than its 2 x 2 window");
    torch::Tensor y = torch::empty({c, h / 2, w / 2, lanes}, x.options());
    at::parallel_for(0, c, 1, [&](int64_t lo, int64_t hi) {
      detail::lane_max_pool2_forward(xc.data_ptr<float>(), h, w, lanes, y.data_ptr<float>(), lo, hi);
    });
    ctx->save_for_backward({xc, y});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &y = saved[1];
    const torch::Tensor gy = grads[0].contiguous();
    torch::Tensor gx = torch::empty_like(x);
    at::parallel_for(0, x.size(0), 1, [&](int64_t lo, int64_t hi) {
      detail::lane_max_pool2_backward(x.data_ptr<float>(), y.data_ptr<float>(), gy.data_ptr<float>(), x.size(1),
                                      x.size(2), x.size(3), gx.data_ptr<float>(), lo, hi);
    });
    return {gx};
  }
};

// r in x's layout.
torch::Tensor like(const TrainAct& r, const TrainAct& x) {
  if (r.lanes == x.lanes) return r.t;
  return x.lanes ? to_lanes_op(r.t) : from_lanes_op(r.t, r.n);
}

TrainAct block(BasicBlockImpl& b, const TrainAct& x) {
  const TrainAct mid = act_bn(*b.bn1, act_conv(b.conv1, x), nullptr, true);
  const TrainAct skip = b.down ? act_bn(*b.down_bn, act_conv(b.down, x), nullptr, false) : x;
  return act_bn(*b.bn2, act_conv(b.conv2, mid), &skip, true);
}

}  // namespace

torch::Tensor act_nchw(const TrainAct& x) { return x.lanes ? from_lanes_op(x.t, x.n) : x.t; }

TrainAct act_conv(torch::nn::Conv2d& conv, const TrainAct& x) {
  if (lane_conv_applies(conv))
    return {lane_conv_on_lanes(x.lanes ? x.t : to_lanes_op(x.t), conv->weight, (*conv->options.stride())[0]), x.n,
            true};
  return {conv->forward(act_nchw(x)), x.n, false};
}

TrainAct act_bn(DomainBNImpl& domain_bn, const TrainAct& x, const TrainAct* residual, bool relu) {
  torch::nn::BatchNorm2d& bn = domain_bn.bns[static_cast<size_t>(domain_bn.active)];
  const auto& o = bn->options;
  if (!o.affine() || !o.track_running_stats() || !domain_bn.is_training()) {  // not the zoo's: the module as it is
    torch::Tensor h = bn->forward(act_nchw(x));
    if (residual) h = h + act_nchw(*residual);
    return {relu ? torch::relu(h) : h, x.n, false};
  }
  bn->num_batches_tracked.add_(1);
  // No momentum: a cumulative average, as BatchNorm2d keeps it.
  const double momentum = o.momentum() ? *o.momentum() : 1.0 / bn->num_batches_tracked.item<double>();
  const torch::Tensor r = residual ? like(*residual, x) : torch::empty({0}, x.t.options());
  return {BatchNormActFunction::apply(x.t, bn->weight, bn->bias, r, bn->running_mean, bn->running_var, momentum,
                                      o.eps(), relu, x.n, x.lanes),
          x.n, x.lanes};
}

TrainAct act_max_pool2(const TrainAct& x) {
  if (x.lanes) return {LaneMaxPoolFunction::apply(x.t), x.n, true};
  return {torch::max_pool2d(x.t, 2), x.n, false};
}

bool trains_on_own_kernels(const NetImpl& net, const torch::Tensor& x) {
  return net.is_training() && lane_kernels_enabled() && x.dim() == 4 && x.device().is_cpu() &&
         x.scalar_type() == torch::kFloat && !(net.sync && net.sync->size() > 1);
}

torch::Tensor train_features(NetImpl& net, const torch::Tensor& x) {
  TrainAct h{x, x.size(0), false};
  if (net.spec.arch == "cnn") {
    for (size_t k = 0; k < net.convs.size(); ++k) {
      h = act_bn(*net.conv_bns[k], act_conv(net.convs[k], h), nullptr, true);
      if (k + 1 < net.convs.size()) h = act_max_pool2(h);
    }
  } else {
    h = act_bn(*net.stem_bn, act_conv(net.stem, h), nullptr, true);
    for (auto& b : net.blocks) h = block(*b, h);
  }
  return torch::adaptive_avg_pool2d(act_nchw(h), {1, 1}).flatten(1);
}

}  // namespace zoobench::zoo
