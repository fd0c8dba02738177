#include "nets.h"

#include <optional>
#include <sstream>

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

torch::Tensor BasicBlockImpl::forward(const torch::Tensor& x, torch::Tensor* conv2_in, torch::Tensor* conv2_out) {
  torch::Tensor h, c, skip;
  {
    // Tracing for gradients w.r.t. conv2's output: nothing before it needs a graph.
    std::optional<torch::NoGradGuard> no_graph;
    if (conv2_out) no_graph.emplace();
    h = torch::relu(bn1(train_conv(conv1, x)));
    c = train_conv(conv2, h);
    skip = down ? down_bn(train_conv(down, x)) : x;
  }
  if (conv2_out) *conv2_out = c = c.detach().requires_grad_(true);
  if (conv2_in) *conv2_in = h;
  return torch::relu(bn2(c) + skip);
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
  for (auto& m : modules(/*include_self=*/false))
    if (auto* bn = m->as<DomainBNImpl>()) bn->sync = group;
}

torch::Tensor NetImpl::features(const torch::Tensor& x, torch::Tensor* last_in, torch::Tensor* last_out) {
  torch::Tensor h;
  {
    // Tracing (last_out asked for): the layers before the last convolution
    // run without an autograd graph; only what follows it is differentiated.
    std::optional<torch::NoGradGuard> no_graph;
    if (last_out) no_graph.emplace();
    h = trunk(x);
  }
  return tail(h, last_in, last_out);
}

torch::Tensor NetImpl::trunk(const torch::Tensor& x) {
  torch::Tensor h = x;
  if (spec.arch == "cnn") {
    for (size_t k = 0; k + 1 < convs.size(); ++k) h = torch::max_pool2d(torch::relu(conv_bns[k](train_conv(convs[k], h))), 2);
  } else {
    h = torch::relu(stem_bn(train_conv(stem, x)));
    for (size_t b = 0; b + 1 < blocks.size(); ++b) h = blocks[b]->forward(h);
  }
  return h;
}

torch::Tensor NetImpl::tail(const torch::Tensor& h, torch::Tensor* last_in, torch::Tensor* last_out) {
  torch::Tensor out;
  if (spec.arch == "cnn") {
    torch::Tensor c;
    {
      std::optional<torch::NoGradGuard> no_graph;
      if (last_out) no_graph.emplace();
      c = train_conv(convs.back(), h);
    }
    if (last_in) *last_in = h;
    if (last_out) *last_out = c = c.detach().requires_grad_(true);
    out = torch::relu(conv_bns.back()(c));
  } else {
    out = blocks.back()->forward(h, last_in, last_out);  // the block keeps its own guard up to its conv2
  }
  return torch::adaptive_avg_pool2d(out, {1, 1}).flatten(1);
}

FoldedNet::Conv FoldedNet::fold(const torch::nn::Conv2d& conv, const DomainBNImpl& bn_module) {
  const torch::nn::BatchNorm2d& bn = bn_module.bns[static_cast<size_t>(bn_module.active)];
  torch::NoGradGuard no_graph;
  // In double, so the folded layer rounds once, where the pair rounded twice.
  const torch::Tensor scale = bn->weight.to(torch::kDouble) / (bn->running_var.to(torch::kDouble) + bn->options.eps()).sqrt();
  Conv c;
  c.weight = (conv->weight.to(torch::kDouble) * scale.view({-1, 1, 1, 1})).to(torch::kFloat).contiguous();
  c.bias = (bn->bias.to(torch::kDouble) - bn->running_mean.to(torch::kDouble) * scale).to(torch::kFloat);
  c.stride = (*conv->options.stride())[0];
  c.padding = (*c10::get<torch::ExpandingArray<2>>(conv->options.padding()))[0];
  return c;
}

torch::Tensor FoldedNet::Conv::operator()(const torch::Tensor& x) const {
  return torch::conv2d(x, weight, bias, stride, padding);
}

FoldedNet::FoldedNet(NetImpl& net) : cnn_(net.spec.arch == "cnn") {
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
}

torch::Tensor FoldedNet::block(const Block& b, const torch::Tensor& x) const {
  torch::Tensor c = b.conv2(b.conv1(x).relu_());
  return c.add_(b.down.weight.defined() ? b.down(x) : x).relu_();
}

torch::Tensor FoldedNet::trunk(const torch::Tensor& x) const {
  torch::NoGradGuard no_graph;
  torch::Tensor h = x;
  if (cnn_) {
    for (size_t k = 0; k + 1 < convs_.size(); ++k) h = torch::max_pool2d(convs_[k](h).relu_(), 2);
  } else {
    h = convs_[0](x).relu_();
    for (size_t b = 0; b + 1 < blocks_.size(); ++b) h = block(blocks_[b], h);
  }
  return h;
}

torch::Tensor FoldedNet::features(const torch::Tensor& x) const {
  torch::NoGradGuard no_graph;
  torch::Tensor h = trunk(x);
  h = cnn_ ? convs_.back()(h).relu_() : block(blocks_.back(), h);
  return torch::adaptive_avg_pool2d(h, {1, 1}).flatten(1);
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
