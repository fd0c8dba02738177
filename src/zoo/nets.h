// zoobench's own architectures for 32x32 inputs. Every BatchNorm is a
// DomainBN: one set of statistics, scale and bias per source domain, so the
// same class serves single-domain experts (one domain) and the Multi-BN
// multi-domain expert (shared convolutions, per-domain BatchNorm and heads).
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "zoobench/comm.h"

namespace zoobench::zoo {

// Batch normalisation in training mode with the statistics of the whole
// group's batch (PyTorch's SyncBatchNorm): the per-channel count, sum and sum
// of squares are summed over the group in the forward pass, the sums of the
// output gradient and of gradient x centred input in the backward pass. With
// R ranks holding 1/R of a batch each, the result is what one rank computes on
// the whole batch. Updates the running statistics like BatchNorm2d.
torch::Tensor sync_batch_norm(const torch::Tensor& x, torch::nn::BatchNorm2d& bn, comm::Collective& group);

// A k x k convolution (k = 1 or 3; padding k / 2 for k = 3, 0 for k = 1; no
// bias) with zoobench's lane-major kernels (lane_conv.h), differentiable in x
// and weight: what torch::conv2d computes, to float rounding. x: N x C x H x W
// float32 on the CPU.
torch::Tensor lane_conv2d(const torch::Tensor& x, const torch::Tensor& weight, int64_t stride);
// A layer's convolution in training: the lane kernels where they apply
// (a CPU float32 input, 1 x 1 or 3 x 3 with zero padding, no bias) and
// lane_conv_wins, the module (oneDNN) otherwise.
// ZOOBENCH_LANE_CONV=0 in the environment turns them off.
// Where the lane kernels' forward and backward pass together beat oneDNN's
// on a batch of 32 (bench/bench_lane_conv; README, Performance): up to 24
// channels, unless both counts are multiples of 16, which oneDNN's vectors
// of 16 channels fill (16 -> 16 ran at 0.73-1.09x, 24 -> 24 at 1.2-1.3x,
// 48 -> 48 at 0.7-0.8x).
constexpr bool lane_conv_wins(int64_t cin, int64_t cout) {
  return cin <= 24 && cout <= 24 && !(cin % 16 == 0 && cout % 16 == 0);
}
torch::Tensor train_conv(torch::nn::Conv2d& conv, const torch::Tensor& x);
// False when ZOOBENCH_LANE_CONV=0 is in the environment.
bool lane_kernels_enabled();

struct DomainBNImpl : torch::nn::Module {
  DomainBNImpl(int64_t channels, int64_t domains);
  torch::Tensor forward(const torch::Tensor& x);
  std::vector<torch::nn::BatchNorm2d> bns;
  int64_t active = 0;
  comm::Collective* sync = nullptr;  // set: training-mode statistics over this group
};
TORCH_MODULE(DomainBN);

struct BasicBlockImpl : torch::nn::Module {
  BasicBlockImpl(int64_t in, int64_t out, int64_t stride, int64_t domains);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, down{nullptr};
  DomainBN bn1{nullptr}, bn2{nullptr}, down_bn{nullptr};
};
TORCH_MODULE(BasicBlock);

struct NetSpec {
  std::string arch;  // resnet8 | resnet14 | resnet20 | cnn
  int64_t width = 8;
  int64_t in_channels = 1;
  std::vector<int64_t> head_classes;  // one head per domain
};

struct NetImpl : torch::nn::Module {
  explicit NetImpl(NetSpec spec);
  torch::Tensor features(const torch::Tensor& x);  // of the active domain
  // features() on libtorch's layers (and the lane convolutions, train_conv)
  // throughout; features() trains on zoobench's own (train_ops.h) where
  // they apply.
  torch::Tensor module_features(const torch::Tensor& x);
  torch::Tensor forward(const torch::Tensor& x) { return heads[active]->forward(features(x)); }
  void set_domain(int64_t d);
  void set_sync(comm::Collective* group);  // synchronised BatchNorm over the group (nullptr = local)
  comm::Collective* sync = nullptr;
  torch::nn::Conv2d last_conv();  // the layer LGC differentiates
  NetSpec spec;
  int64_t feature_dim = 0;
  int64_t active = 0;
  torch::nn::Conv2d stem{nullptr};
  DomainBN stem_bn{nullptr};
  std::vector<BasicBlock> blocks;        // resnets
  std::vector<torch::nn::Conv2d> convs;  // cnn
  std::vector<DomainBN> conv_bns;        // cnn
  std::vector<torch::nn::Linear> heads;
};
TORCH_MODULE(Net);

// The network as inference sees it: eval mode, the active domain, and every
// BatchNorm folded into the convolution before it (weights scaled by
// gamma / sqrt(var + eps), a bias of beta - mean x that scale), so a layer is
// one convolution with its bias and an in-place ReLU instead of three passes
// over the activations. A snapshot: made from the net's parameters and
// statistics as they are, on the net's device; remake it after they change.
// On the CPU it runs zoobench's lane kernels (lane_net.h), elsewhere
// oneDNN. The lane kernels were the faster at every width measured, 4 to
// 128 (bench/extraction_roofline.sh; README, Performance).
class FoldedNet {
 public:
  // lane_kernels = false: oneDNN even where the lane kernels apply (the
  // benchmarks' baseline).
  explicit FoldedNet(NetImpl& net, bool lane_kernels = true);
  torch::Tensor features(const torch::Tensor& x) const;  // as NetImpl::features
  // A pass that differentiates the last convolution (LGC's gradient sketch)
  // starts here: that convolution's input, its output with the BatchNorm
  // after it folded in (before the shortcut and the ReLU), and the last
  // block's shortcut (ResNets; undefined for the CNN). No autograd graph.
  struct LastLayer {
    torch::Tensor in, out_bn, skip;
  };
  LastLayer last_layer(const torch::Tensor& x) const;
  // The rest of the net from out_bn, differentiable in it: the features.
  torch::Tensor features_from(const LastLayer& last, const torch::Tensor& out_bn) const;
  // d out_bn / d (the convolution's own output), one factor per channel:
  // the BatchNorm's gamma / sqrt(var + eps).
  const torch::Tensor& last_scale() const { return last_conv().scale; }
  bool uses_lane_kernels() const { return lanes_; }

 private:
  struct Conv {
    torch::Tensor weight, bias, scale;  // scale: the BatchNorm's factor folded into weight
    int64_t stride = 1, padding = 0;
    torch::Tensor operator()(const torch::Tensor& x) const;
  };
  struct Block {
    Conv conv1, conv2, down;  // down.weight undefined: the identity shortcut
  };
  static Conv fold(const torch::nn::Conv2d& conv, const DomainBNImpl& bn);
  const Conv& last_conv() const { return cnn_ ? convs_.back() : blocks_.back().conv2; }
  torch::Tensor block(const Block& b, const torch::Tensor& x) const;
  torch::Tensor trunk(const torch::Tensor& x) const;  // oneDNN: all but the last block (CNN: layer)
  // The lane kernels: the features (last = false) or last_layer()'s three.
  std::vector<torch::Tensor> lane_run(const torch::Tensor& x, bool last) const;
  bool lanes_apply(const torch::Tensor& x) const;
  bool cnn_ = false, lanes_ = false;
  std::vector<Conv> convs_;    // CNN: its convolutions; ResNets: the stem
  std::vector<Block> blocks_;  // ResNets
};

// Copies every parameter and buffer (a deep clone through serialisation).
Net clone_net(Net& net);

}  // namespace zoobench::zoo
