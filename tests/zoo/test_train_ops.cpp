// zoobench's own training layers (src/zoo/train_ops.h) against libtorch's.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "graph_has.h"
#include "zoo/nets.h"
#include "zoo/train_ops.h"

using namespace zoobench;

namespace {

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

// Whether a lane-major activation's padding lanes are all zero (NCHW: true).
bool padding_is_zero(const zoo::TrainAct& a) {
  if (!a.lanes || a.t.size(3) == a.n) return true;
  return a.t.narrow(3, a.n, a.t.size(3) - a.n).abs().max().item<float>() == 0.0f;
}

// The features on libtorch's own layers throughout (oneDNN's convolutions,
// BatchNorm2d, relu, max_pool2d): the reference for the training pass.
at::Tensor libtorch_features(zoo::NetImpl& net, const at::Tensor& x) {
  auto bn = [](zoo::DomainBN& d, const at::Tensor& t) { return d->bns[0]->forward(t); };
  at::Tensor h = x;
  if (net.spec.arch == "cnn") {
    for (size_t k = 0; k < net.convs.size(); ++k) {
      h = torch::relu(bn(net.conv_bns[k], net.convs[k]->forward(h)));
      if (k + 1 < net.convs.size()) h = torch::max_pool2d(h, 2);
    }
  } else {
    h = torch::relu(bn(net.stem_bn, net.stem->forward(h)));
    for (auto& b : net.blocks) {
      const at::Tensor mid = torch::relu(bn(b->bn1, b->conv1->forward(h)));
      const at::Tensor skip = b->down ? bn(b->down_bn, b->down->forward(h)) : h;
      h = torch::relu(bn(b->bn2, b->conv2->forward(mid)) + skip);
    }
  }
  return torch::adaptive_avg_pool2d(h, {1, 1}).flatten(1);
}

}  // namespace

TEST(TrainOps, BatchNormActIsTorchsWithItsGradients) {
  struct Case {
    int64_t n, c, h, w;
    bool lanes, residual, relu;
    bool cumulative = false;  // no momentum: BatchNorm2d's cumulative average
  };
  // Both layouts; full and ragged lane blocks (5, 20); runs not a multiple
  // of a vector (7 x 5); the shortcut's addition and the ReLU on and off.
  for (const Case& k : {Case{32, 8, 8, 8, true, true, true}, Case{20, 3, 7, 5, true, false, true, true},
                        Case{5, 4, 6, 6, true, true, false}, Case{32, 8, 8, 8, false, true, true},
                        Case{13, 3, 7, 5, false, false, false, true}, Case{4, 16, 3, 3, false, true, true}}) {
    SCOPED_TRACE("n " + std::to_string(k.n) + " c " + std::to_string(k.c) + (k.lanes ? " lanes" : " nchw") +
                 (k.residual ? " +residual" : "") + (k.relu ? " relu" : ""));
    torch::manual_seed(k.n * 7 + k.c);
    zoo::DomainBN ours(k.c, 1);
    torch::nn::BatchNorm2d ref(k.c);
    {
      torch::NoGradGuard g;
      for (auto* bn : {&ours->bns[0], &ref}) {
        (*bn)->weight.copy_(torch::linspace(0.5, 1.5, k.c));
        (*bn)->bias.copy_(torch::linspace(-0.3, 0.3, k.c));
        (*bn)->running_mean.fill_(0.2);
        (*bn)->running_var.fill_(1.5);
        (*bn)->num_batches_tracked.fill_(3);
        if (k.cumulative) (*bn)->options.momentum(c10::nullopt);
      }
    }
    // An offset well above the spread: the statistics must not cancel.
    at::Tensor x = (torch::randn({k.n, k.c, k.h, k.w}) * 0.5 + 3.0).requires_grad_(true);
    at::Tensor r = torch::randn({k.n, k.c, k.h, k.w}).requires_grad_(true);
    at::Tensor x2 = x.detach().clone().requires_grad_(true), r2 = r.detach().clone().requires_grad_(true);

    zoo::TrainAct in{k.lanes ? zoo::to_lanes_op(x) : x, k.n, k.lanes};
    zoo::TrainAct skip{k.lanes ? zoo::to_lanes_op(r) : r, k.n, k.lanes};
    if (k.lanes) in.t.retain_grad();
    const zoo::TrainAct out = zoo::act_bn(*ours, in, k.residual ? &skip : nullptr, k.relu);
    EXPECT_TRUE(zbtest::graph_has(out.t, "BatchNormAct"));
    EXPECT_TRUE(padding_is_zero(out));
    at::Tensor y = zoo::act_nchw(out);
    at::Tensor want = ref->forward(x2);
    if (k.residual) want = want + r2;
    if (k.relu) want = torch::relu(want);
    EXPECT_TRUE(at::allclose(y, want, 1e-4, 1e-4)) << max_diff(y, want);
    EXPECT_TRUE(at::allclose(ours->bns[0]->running_mean, ref->running_mean, 1e-5, 1e-6));
    EXPECT_TRUE(at::allclose(ours->bns[0]->running_var, ref->running_var, 1e-5, 1e-6));
    EXPECT_EQ(ours->bns[0]->num_batches_tracked.item<int64_t>(), 4);

    at::Tensor g = torch::randn_like(want);
    y.backward(g);
    want.backward(g);
    EXPECT_TRUE(at::allclose(x.grad(), x2.grad(), 1e-4, 1e-4)) << max_diff(x.grad(), x2.grad());
    if (k.lanes) EXPECT_TRUE(padding_is_zero({in.t.grad(), k.n, true}));  // the gradient's padding too
    EXPECT_TRUE(at::allclose(ours->bns[0]->weight.grad(), ref->weight.grad(), 1e-4, 1e-3));
    EXPECT_TRUE(at::allclose(ours->bns[0]->bias.grad(), ref->bias.grad(), 1e-4, 1e-3));
    if (k.residual) EXPECT_TRUE(at::allclose(r.grad(), r2.grad(), 1e-5, 1e-6));
  }
}

TEST(TrainOps, MaxPoolOnLanesIsTorchsWithItsGradients) {
  // Small integers: windows with equal maxima, whose gradient goes to the
  // first of them, as max_pool2d's index sends it. Odd sides drop a row and a column.
  for (int64_t n : {32, 11}) {
    torch::manual_seed(n);
    at::Tensor x = torch::randint(0, 3, {n, 3, 9, 7}).to(torch::kFloat).requires_grad_(true);
    at::Tensor x2 = x.detach().clone().requires_grad_(true);
    const zoo::TrainAct out = zoo::act_max_pool2({zoo::to_lanes_op(x), n, true});
    EXPECT_TRUE(padding_is_zero(out));
    at::Tensor y = zoo::act_nchw(out), want = torch::max_pool2d(x2, 2);
    ASSERT_EQ(y.sizes(), want.sizes());
    EXPECT_TRUE(at::equal(y, want));
    at::Tensor g = torch::randn_like(want);
    y.backward(g);
    want.backward(g);
    EXPECT_TRUE(at::equal(x.grad(), x2.grad()));
  }
}

// A whole training step's forward and backward pass on zoobench's layers
// against the same net on libtorch's own throughout: features, every parameter's gradient
// and every running statistic. Each ResNet hands over from the lanes to
// oneDNN's convolutions within a block (16 -> 16 at widths 4 and 8, 24 ->
// 48 at 12), its shortcut crossing layouts; ragged batches leave padding
// lanes.
TEST(TrainOps, NetTrainsAsOnLibtorchsLayers) {
  struct Case {
    std::string arch;
    int64_t width, channels, n;
  };
  for (const Case& k : {Case{"resnet8", 8, 1, 32}, Case{"resnet8", 4, 3, 13}, Case{"cnn", 8, 1, 21},
                        Case{"resnet8", 12, 3, 19}, Case{"resnet14", 4, 1, 16}}) {
    SCOPED_TRACE(k.arch + " w" + std::to_string(k.width) + " n " + std::to_string(k.n));
    torch::manual_seed(k.n);
    zoo::Net ours(zoo::NetSpec{k.arch, k.width, k.channels, {10}});
    zoo::Net ref = zoo::clone_net(ours);
    ours->train();
    ref->train();
    at::Tensor x = torch::randn({k.n, k.channels, 32, 32});
    ASSERT_TRUE(zoo::trains_on_own_kernels(*ours, x));
    at::Tensor f = ours->features(x), want = libtorch_features(*ref, x);
    EXPECT_TRUE(zbtest::graph_has(f, "BatchNormAct"));
    EXPECT_FALSE(zbtest::graph_has(want, "BatchNormAct") || zbtest::graph_has(want, "LaneConv"));
    EXPECT_TRUE(at::allclose(f, want, 1e-4, 1e-4)) << max_diff(f, want);
    at::Tensor labels = torch::randint(0, 10, {k.n});
    torch::nn::functional::cross_entropy(ours->heads[0]->forward(f), labels).backward();
    torch::nn::functional::cross_entropy(ref->heads[0]->forward(want), labels).backward();
    const auto a = ours->named_parameters(), b = ref->named_parameters();
    for (const auto& p : a) {
      const at::Tensor &ga = p.value().grad(), &gb = b[p.key()].grad();
      ASSERT_TRUE(ga.defined() && gb.defined()) << p.key();
      // Relative to the layer's largest gradient: sums of thousands of terms in another order.
      const double scale = std::max(gb.abs().max().item<double>(), 1e-6);
      EXPECT_LT(max_diff(ga, gb) / scale, 2e-3) << p.key();
    }
    const auto ba = ours->named_buffers(), bb = ref->named_buffers();
    for (const auto& buf : ba)
      EXPECT_TRUE(at::allclose(buf.value().to(torch::kDouble), bb[buf.key()].to(torch::kDouble), 1e-5, 1e-5))
          << buf.key();
  }
}
