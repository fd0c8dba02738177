#include "nets.h"

#include <ATen/Parallel.h>

#include <cstdlib>
#include <memory>
#include <sstream>

#include "lane_net.h"
#include "train_ops.h"

#include "zoobench/error.h"

namespace zoobench::zoo {
namespace nn = torch::nn;

DomainBNImpl::DomainBNImpl(int64_t channels, int64_t domains) {
  for (int64_t d = 0; d < domains; ++d) bns.push_back(register_module("bn" + std::to_string(d), nn::BatchNorm2d(channels)));
}

torch::Tensor DomainBNImpl::forward(const torch::Tensor& x) {
  if (sync && is_training() && sync->size() > 1) return sync_batch_norm(x, bns[active], *sync);
  return bns[active]->forward(x);
}

namespace {
nn::Conv2d conv3(int64_t in, int64_t out, int64_t stride) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false));
}
}  // namespace

BasicBlockImpl::BasicBlockImpl(int64_t in, int64_t out, int64_t stride, int64_t domains) {
  conv1 = register_module("conv1", conv3(in, out, stride));
  bn1 = register_module("bn1", DomainBN(out, domains));
  conv2 = register_module("conv2", conv3(out, out, 1));
  bn2 = register_module("bn2", DomainBN(out, domains));
  if (stride != 1 || in != out) {
    down = register_module("down", nn::Conv2d(nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)));
    down_bn = register_module("down_bn", DomainBN(out, domains));
  }
}

torch::Tensor BasicBlockImpl::forward(const torch::Tensor& x) {
  const torch::Tensor h = torch::relu(bn1(train_conv(conv1, x)));
  const torch::Tensor skip = down ? down_bn(train_conv(down, x)) : x;
  return torch::relu(bn2(train_conv(conv2, h)) + skip);
}

NetImpl::NetImpl(NetSpec s) : spec(std::move(s)) {
  const int64_t domains = static_cast<int64_t>(spec.head_classes.size());
  if (domains < 1) throw Error("a network needs at least one head");
  const int64_t w = spec.width;
  if (spec.arch == "cnn") {
    int64_t in = spec.in_channels;
    for (int64_t k = 0; k < 3; ++k) {
      int64_t out = w << k;
      convs.push_back(register_module("conv" + std::to_string(k), conv3(in, out, 1)));
      conv_bns.push_back(register_module("bn" + std::to_string(k), DomainBN(out, domains)));
      in = out;
    }
    feature_dim = 4 * w;
  } else {
    int64_t n = spec.arch == "resnet8" ? 1 : spec.arch == "resnet14" ? 2 : spec.arch == "resnet20" ? 3 : 0;
    if (n == 0) throw Error("unknown architecture '" + spec.arch + "' (known: resnet8, resnet14, resnet20, cnn)");
    stem = register_module("stem", conv3(spec.in_channels, w, 1));
    stem_bn = register_module("stem_bn", DomainBN(w, domains));
    int64_t in = w;
    for (int64_t stage = 0; stage < 3; ++stage)
      for (int64_t b = 0; b < n; ++b) {
        int64_t out = w << stage;
        int64_t stride = (stage > 0 && b == 0) ? 2 : 1;
        blocks.push_back(register_module("block" + std::to_string(stage) + "_" + std::to_string(b),
                                         BasicBlock(in, out, stride, domains)));
        in = out;
      }
    feature_dim = 4 * w;
  }
  for (int64_t d = 0; d < domains; ++d)
    heads.push_back(register_module("head" + std::to_string(d), nn::Linear(feature_dim, spec.head_classes[d])));
}

void NetImpl::set_domain(int64_t d) {
  if (d < 0 || d >= static_cast<int64_t>(heads.size())) throw Error("domain index out of range");
  active = d;
  for (auto& m : modules(/*include_self=*/false))
    if (auto* bn = m->as<DomainBNImpl>()) bn->active = d;
}

void NetImpl::set_sync(comm::Collective* group) {
  sync = group;
  for (auto& m : modules(/*include_self=*/false))
    if (auto* bn = m->as<DomainBNImpl>()) bn->sync = group;
}

torch::Tensor NetImpl::features(const torch::Tensor& x) {
  return trains_on_own_kernels(*this, x) ? train_features(*this, x) : module_features(x);
}

torch::Tensor NetImpl::module_features(const torch::Tensor& x) {
  torch::Tensor h = x;
  if (spec.arch == "cnn") {
    for (size_t k = 0; k < convs.size(); ++k) {
      h = torch::relu(conv_bns[k](train_conv(convs[k], h)));
      if (k + 1 < convs.size()) h = torch::max_pool2d(h, 2);
    }
  } else {
    h = torch::relu(stem_bn(train_conv(stem, x)));
    for (auto& b : blocks) h = b->forward(h);
  }
  return torch::adaptive_avg_pool2d(h, {1, 1}).flatten(1);
}

FoldedNet::Conv FoldedNet::fold(const torch::nn::Conv2d& conv, const DomainBNImpl& bn_module) {
  const torch::nn::BatchNorm2d& bn = bn_module.bns[static_cast<size_t>(bn_module.active)];
  torch::NoGradGuard no_graph;
  // In double, so the folded layer rounds once, where the pair rounded twice.
  const torch::Tensor scale = bn->weight.to(torch::kDouble) / (bn->running_var.to(torch::kDouble) + bn->options.eps()).sqrt();
  Conv c;
  c.weight = (conv->weight.to(torch::kDouble) * scale.view({-1, 1, 1, 1})).to(torch::kFloat).contiguous();
  c.bias = (bn->bias.to(torch::kDouble) - bn->running_mean.to(torch::kDouble) * scale).to(torch::kFloat);
  c.scale = scale.to(torch::kFloat);
  c.stride = (*conv->options.stride())[0];
  c.padding = (*c10::get<torch::ExpandingArray<2>>(conv->options.padding()))[0];
  return c;
}

torch::Tensor FoldedNet::Conv::operator()(const torch::Tensor& x) const {
  return torch::conv2d(x, weight, bias, stride, padding);
}

FoldedNet::FoldedNet(NetImpl& net, bool lane_kernels) : cnn_(net.spec.arch == "cnn") {
  if (cnn_) {
    for (size_t k = 0; k < net.convs.size(); ++k) convs_.push_back(fold(net.convs[k], *net.conv_bns[k]));
  } else {
    convs_.push_back(fold(net.stem, *net.stem_bn));
    for (auto& b : net.blocks) {
      Block f{fold(b->conv1, *b->bn1), fold(b->conv2, *b->bn2), {}};
      if (b->down) f.down = fold(b->down, *b->down_bn);
      blocks_.push_back(std::move(f));
    }
  }
  const torch::Tensor& w = convs_.front().weight;
  lanes_ = lane_kernels && lane_kernels_enabled() && w.device().is_cpu() && w.scalar_type() == torch::kFloat;
}

torch::Tensor FoldedNet::block(const Block& b, const torch::Tensor& x) const {
  torch::Tensor c = b.conv2(b.conv1(x).relu_());
  return c.add_(b.down.weight.defined() ? b.down(x) : x).relu_();
}

torch::Tensor FoldedNet::trunk(const torch::Tensor& x) const {
  torch::Tensor h = x;
  if (cnn_) {
    for (size_t k = 0; k + 1 < convs_.size(); ++k) h = torch::max_pool2d(convs_[k](h).relu_(), 2);
  } else {
    h = convs_[0](x).relu_();
    for (size_t b = 0; b + 1 < blocks_.size(); ++b) h = block(blocks_[b], h);
  }
  return h;
}

namespace {
// Builds the lane plan layer by layer, each output in a buffer that no
// activation still needed occupies.
class LanePlanner {
 public:
  struct Act {
    int buf;
    int64_t c, h, w;
  };
  LanePlanner(int64_t c, int64_t h, int64_t w) {
    plan_.channels = c;
    plan_.h = h;
    plan_.w = w;
    grow(c * h * w);
  }
  Act input() const { return {0, plan_.channels, plan_.h, plan_.w}; }
  // live: a buffer read later besides src and residual (-1: none).
  Act conv(const Act& src, const torch::Tensor& weight, const torch::Tensor& bias, int64_t stride, bool relu,
           const Act* residual = nullptr, int live = -1) {
    detail::LaneStep step;
    step.shape = detail::lane_conv_shape(weight.size(1), weight.size(0), weight.size(2), stride, src.h, src.w,
                                         detail::kConvLanes);
    const detail::LaneConv& s = step.shape;
    // What torch::conv2d would refuse, before a kernel reads past an array.
    if (src.c != s.cin || s.oh < 1 || s.ow < 1)
      throw Error("a convolution of " + std::to_string(s.cin) + " input channels got " + std::to_string(src.c) + " x " +
                  std::to_string(src.h) + " x " + std::to_string(src.w));
    step.weight = weight.data_ptr<float>();
    step.bias = bias.data_ptr<float>();
    step.relu = relu;
    step.src = src.buf;
    step.residual = residual ? residual->buf : -1;
    step.dst = free_buffer(src.buf, step.residual, live);
    return push(step, s.cout, s.oh, s.ow);
  }
  Act max_pool2(const Act& src) {
    detail::LaneStep step;
    step.op = detail::LaneStep::Op::kMaxPool2;
    detail::LaneConv& s = step.shape;
    s.cin = s.cout = src.c;
    s.h = src.h;
    s.w = src.w;
    s.oh = src.h / 2;
    s.ow = src.w / 2;
    step.src = src.buf;
    step.dst = free_buffer(src.buf, -1, -1);
    return push(step, s.cout, s.oh, s.ow);
  }
  // a, as it is now, is handed back: the plan's next output.
  void output(const Act& a, bool pool) {
    plan_.outputs.push_back({static_cast<int64_t>(plan_.steps.size()), a.buf, a.c, a.h, a.w, pool});
  }
  detail::LaneNetPlan finish() { return std::move(plan_); }

 private:
  static int free_buffer(int a, int b, int c) {
    int d = 0;
    while (d == a || d == b || d == c) ++d;
    return d;  // < kLaneNetBuffers: at most three activations are live at once
  }
  Act push(const detail::LaneStep& step, int64_t c, int64_t h, int64_t w) {
    plan_.steps.push_back(step);
    grow(c * h * w);
    return {step.dst, c, h, w};
  }
  void grow(int64_t pixels) { plan_.buffer_floats = std::max(plan_.buffer_floats, pixels * detail::kConvLanes); }
  detail::LaneNetPlan plan_;
};

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};
}  // namespace

std::vector<torch::Tensor> FoldedNet::lane_run(const torch::Tensor& x, bool last) const {
  const torch::Tensor xc = x.contiguous();
  LanePlanner p(x.size(1), x.size(2), x.size(3));
  LanePlanner::Act a = p.input();
  auto conv = [&](const LanePlanner::Act& in, const Conv& c, bool relu, const LanePlanner::Act* residual = nullptr,
                  int live = -1) { return p.conv(in, c.weight, c.bias, c.stride, relu, residual, live); };
  if (cnn_) {
    for (size_t k = 0; k + 1 < convs_.size(); ++k) a = p.max_pool2(conv(a, convs_[k], true));
    if (last) p.output(a, false);
    a = conv(a, convs_.back(), !last);
    p.output(a, !last);
  } else {
    a = conv(a, convs_[0], true);
    for (size_t k = 0; k < blocks_.size(); ++k) {
      const Block& b = blocks_[k];
      const bool traced = last && k + 1 == blocks_.size();  // its conv2 is the one differentiated
      const LanePlanner::Act h = conv(a, b.conv1, true);
      const LanePlanner::Act skip = b.down.weight.defined() ? conv(a, b.down, false, nullptr, h.buf) : a;
      if (traced) {
        p.output(h, false);
        p.output(skip, false);
        a = conv(h, b.conv2, false, nullptr, skip.buf);
      } else {
        a = conv(h, b.conv2, true, &skip);
      }
    }
    p.output(a, !last);
  }
  const detail::LaneNetPlan plan = p.finish();
  const int64_t n = x.size(0), image = plan.channels * plan.h * plan.w;
  std::vector<torch::Tensor> outs;
  std::vector<float*> base;
  for (const detail::LaneOutput& o : plan.outputs) {
    outs.push_back(o.pool ? torch::empty({n, o.channels}, x.options())
                          : torch::empty({n, o.channels, o.h, o.w}, x.options()));
    base.push_back(outs.back().data_ptr<float>());
  }
  const float* in = xc.data_ptr<float>();
  const int64_t blocks = (n + detail::kConvLanes - 1) / detail::kConvLanes;
  at::parallel_for(0, blocks, 1, [&](int64_t lo, int64_t hi) {
    const size_t bytes = static_cast<size_t>(detail::kLaneNetBuffers * plan.buffer_floats) * sizeof(float);
    std::unique_ptr<float, AlignedFree> scratch(static_cast<float*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64)));
    if (!scratch) throw std::bad_alloc();
    std::vector<float*> at(base.size());
    for (int64_t blk = lo; blk < hi; ++blk) {
      const int64_t first = blk * detail::kConvLanes, count = std::min(detail::kConvLanes, n - first);
      for (size_t k = 0; k < at.size(); ++k) at[k] = base[k] + first * plan.outputs[k].floats_per_image();
      detail::lane_net_run(plan, in + first * image, count, at.data(), scratch.get());
    }
  });
  return outs;
}

bool FoldedNet::lanes_apply(const torch::Tensor& x) const {
  return lanes_ && x.dim() == 4 && x.device().is_cpu() && x.scalar_type() == torch::kFloat;
}

FoldedNet::LastLayer FoldedNet::last_layer(const torch::Tensor& x) const {
  torch::NoGradGuard no_graph;
  LastLayer l;
  if (lanes_apply(x)) {
    std::vector<torch::Tensor> t = lane_run(x, /*last=*/true);
    l.in = t[0];
    l.out_bn = t.back();
    if (!cnn_) l.skip = t[1];
    return l;
  }
  const torch::Tensor h = trunk(x);
  if (cnn_) {
    l.in = h;
  } else {
    const Block& b = blocks_.back();
    l.in = b.conv1(h).relu_();
    l.skip = b.down.weight.defined() ? b.down(h) : h;
  }
  l.out_bn = last_conv()(l.in);
  return l;
}

torch::Tensor FoldedNet::features_from(const LastLayer& last, const torch::Tensor& out_bn) const {
  const torch::Tensor out = torch::relu(last.skip.defined() ? out_bn + last.skip : out_bn);
  return torch::adaptive_avg_pool2d(out, {1, 1}).flatten(1);
}

torch::Tensor FoldedNet::features(const torch::Tensor& x) const {
  torch::NoGradGuard no_graph;
  if (lanes_apply(x)) return lane_run(x, /*last=*/false)[0];
  const LastLayer l = last_layer(x);
  return features_from(l, l.out_bn);
}

torch::nn::Conv2d NetImpl::last_conv() { return spec.arch == "cnn" ? convs.back() : blocks.back()->conv2; }

Net clone_net(Net& net) {
  Net copy(net->spec);
  std::stringstream buf;
  torch::save(net, buf);
  torch::load(copy, buf);
  copy->set_domain(net->active);
  return copy;
}

}  // namespace zoobench::zoo
