// Synchronised BatchNorm for data-parallel fine-tuning (see nets.h).
#include <torch/torch.h>

#include "nets.h"

namespace zoobench::zoo {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// Sums over every dimension but the channels (N x C x H x W -> C).
torch::Tensor channel_sum(const torch::Tensor& t) { return t.sum({0, 2, 3}); }
torch::Tensor per_channel(const torch::Tensor& v) { return v.view({1, -1, 1, 1}); }

struct SyncBN : public torch::autograd::Function<SyncBN> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor x, torch::Tensor weight, torch::Tensor bias,
                               torch::Tensor running_mean, torch::Tensor running_var, double eps, double momentum,
                               int64_t group_ptr) {
    auto* group = reinterpret_cast<comm::Collective*>(group_ptr);
    const int64_t channels = x.size(1);
    // Count, sum and sum of squares in float64: E[x^2] - E[x]^2 loses nothing at these sizes.
    torch::Tensor xd = x.to(torch::kDouble);
    torch::Tensor stats = torch::cat({channel_sum(xd), channel_sum(xd * xd),
                                      torch::full({1}, static_cast<double>(x.numel() / std::max<int64_t>(channels, 1)),
                                                  xd.options())});
    std::vector<torch::Tensor> buf{stats};
    group->allreduce_sum(buf);
    const double n = stats[2 * channels].item<double>();
    torch::Tensor mean = stats.narrow(0, 0, channels) / n;
    torch::Tensor var = (stats.narrow(0, channels, channels) / n - mean * mean).clamp_min(0);  // biased
    torch::Tensor invstd = (var + eps).rsqrt();
    {
      torch::NoGradGuard g;
      running_mean.mul_(1 - momentum).add_(mean.to(running_mean.dtype()), momentum);
      running_var.mul_(1 - momentum).add_((var * (n / std::max(n - 1, 1.0))).to(running_var.dtype()), momentum);
    }
    torch::Tensor meanf = mean.to(x.dtype()), invstdf = invstd.to(x.dtype());
    ctx->save_for_backward({x, weight, meanf, invstdf});
    ctx->saved_data["group"] = group_ptr;
    ctx->saved_data["n"] = n;
    return (x - per_channel(meanf)) * per_channel(invstdf * weight) + per_channel(bias);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    torch::Tensor x = saved[0], weight = saved[1], mean = saved[2], invstd = saved[3];
    auto* group = reinterpret_cast<comm::Collective*>(ctx->saved_data["group"].toInt());
    const double n = ctx->saved_data["n"].toDouble();
    torch::Tensor gy = grads[0].contiguous();
    torch::Tensor xmu = x - per_channel(mean);
    torch::Tensor sum_dy = channel_sum(gy), sum_dy_xmu = channel_sum(gy * xmu);
    // Weight and bias gradients stay local: the data-parallel gradient
    // allreduce combines them with every other parameter's.
    torch::Tensor grad_weight = sum_dy_xmu * invstd, grad_bias = sum_dy;
    const int64_t c = x.size(1);
    std::vector<torch::Tensor> buf{torch::cat({sum_dy, sum_dy_xmu})};
    group->allreduce_sum(buf);
    torch::Tensor mean_dy = buf[0].narrow(0, 0, c) / n, mean_dy_xmu = buf[0].narrow(0, c, c) / n;
    torch::Tensor grad_x = (gy - per_channel(mean_dy) - xmu * per_channel(invstd * invstd * mean_dy_xmu)) *
                           per_channel(invstd * weight);
    return {grad_x, grad_weight, grad_bias, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};
}  // namespace

torch::Tensor sync_batch_norm(const torch::Tensor& x, torch::nn::BatchNorm2d& bn, comm::Collective& group) {
  const auto& o = bn->options;
  const double momentum = o.momentum().has_value() ? *o.momentum() : 0.1;
  bn->num_batches_tracked.add_(1);
  return SyncBN::apply(x, bn->weight, bn->bias, bn->running_mean, bn->running_var, o.eps(), momentum,
                       reinterpret_cast<int64_t>(&group));
}

}  // namespace zoobench::zoo
