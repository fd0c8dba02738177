// The training pass on zoobench's own kernels: the lane-major convolutions
// (lane_conv.h) and, between them, BatchNorm fused with the shortcut and the
// ReLU, and the max-pool (train_kernels.h). Where consecutive layers all run
// on the lane kernels the activations stay lane-major, so the layout changes
// once on the way in and once where a layer too wide for the lanes takes
// over, instead of four times per convolution (a training step of a width-8
// ResNet had spent 7 % of its time changing layout; perf, README). Private to
// src/zoo.
#pragma once
#include <torch/torch.h>

#include "nets.h"

namespace zoobench::zoo {

// The lanes a batch of n images takes: n rounded up to whole vectors.
int64_t lanes_for(int64_t n);
// N x C x H x W <-> C x H x W x lanes_for(N), differentiable.
torch::Tensor to_lanes_op(const torch::Tensor& x);
torch::Tensor from_lanes_op(const torch::Tensor& t, int64_t n);
// lane_conv2d with lane-major input and output.
torch::Tensor lane_conv_on_lanes(const torch::Tensor& xt, const torch::Tensor& weight, int64_t stride);
// Whether train_conv would run this layer on the lane kernels.
bool lane_conv_applies(const torch::nn::Conv2d& conv);

// Whether NetImpl::features trains on train_features: training mode, a CPU
// float32 input, the lane kernels enabled and no synchronised BatchNorm.
bool trains_on_own_kernels(const NetImpl& net, const torch::Tensor& x);
// The features, as NetImpl::features computes them in training mode, with
// its gradients and running-statistics updates, to float rounding.
torch::Tensor train_features(NetImpl& net, const torch::Tensor& x);

// The parts, exposed for the tests. An activation in either layout.
struct TrainAct {
  torch::Tensor t;  // N x C x H x W, or lane-major C x H x W x lanes
  int64_t n = 0;    // images
  bool lanes = false;
};
TrainAct act_conv(torch::nn::Conv2d& conv, const TrainAct& x);
// relu?(bn(x) + residual?) with the batch's statistics, updating bn's running ones.
TrainAct act_bn(DomainBNImpl& bn, const TrainAct& x, const TrainAct* residual, bool relu);
TrainAct act_max_pool2(const TrainAct& x);
torch::Tensor act_nchw(const TrainAct& x);

}  // namespace zoobench::zoo
