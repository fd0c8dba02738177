// The lane-major convolutions (src/zoo/lane_conv.h) against libtorch's own
// (oneDNN on this build), per layer shape of the mini zoo's networks.
//
//   BM_TrainConv/<impl>/cin/cout/k/stride/side: as training sees them, one
//     iteration = forward + backward through autograd, layout changes
//     included, on a batch of 32 images. GFLOPs = 3 x 2 x the forward
//     pass's multiply-adds (forward, dL/dx, dL/dw; a stem has no dL/dx and
//     counts 2 x) / seconds.
//   BM_EvalConv/...: the forward pass alone, without autograd, on
//     extraction's batch of 256. GFLOPs = 2 x its multiply-adds / seconds.
//
//   BM_EvalNet/<impl>/<arch>/<width>: a whole network's features as
//     extraction computes them (zoo::FoldedNet, BatchNorm folded), on a
//     batch of 256 normalised 1 x 32 x 32 images; arch 0 = resnet8,
//     1 = resnet20, 2 = cnn. impl 0: the lane kernels, 16 images at a time
//     through every layer; 1: oneDNN, layer by layer. GFLOPs: 2 x the
//     multiply-adds of the convolutions and the head (bench_common.h) /
//     seconds. The two feature matrices are checked equal (1e-4) first.
//
// impl 0 = lane_conv2d, 1 = torch::conv2d. Before timing, each shape's
// output and gradients are checked against libtorch's (relative error
// 1e-3); a mismatch skips the row with an error instead of timing a wrong
// kernel.
//
//   build/bench/bench_lane_conv --benchmark_repetitions=3 \
//       --benchmark_report_aggregates_only=true
// Threads: $ZB_THREADS (default 1), set for both.
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstdlib>
#include <string>

#include "bench_common.h"
#include "zoo/nets.h"

namespace {

struct Shape {
  int64_t cin, cout, k, stride, side;
};

Shape shape_of(const benchmark::State& st) { return {st.range(1), st.range(2), st.range(3), st.range(4), st.range(5)}; }

constexpr int64_t kBatch = 32, kEvalBatch = 256;

at::Tensor conv(int64_t impl, const at::Tensor& x, const at::Tensor& w, const Shape& s) {
  return impl == 0 ? zoobench::zoo::lane_conv2d(x, w, s.stride) : torch::conv2d(x, w, {}, s.stride, s.k / 2);
}

// Empty when the two implementations agree, else what differs.
std::string mismatch(const Shape& s) {
  torch::manual_seed(3);
  const bool stem = s.cin == 1;
  at::Tensor x = torch::randn({kBatch, s.cin, s.side, s.side});
  at::Tensor w = torch::randn({s.cout, s.cin, s.k, s.k});
  at::Tensor out[2], gw[2], gx[2];
  for (int64_t impl = 0; impl < 2; ++impl) {
    at::Tensor xi = x.clone().requires_grad_(!stem), wi = w.clone().requires_grad_(true);
    out[impl] = conv(impl, xi, wi, s);
    out[impl].backward(torch::ones_like(out[impl]));
    gw[impl] = wi.grad();
    if (!stem) gx[impl] = xi.grad();
  }
  auto close = [](const at::Tensor& a, const at::Tensor& b) {
    return ((a - b).abs().max() <= 1e-3 * (1 + b.abs().max())).item<bool>();
  };
  if (!close(out[0], out[1])) return "forward differs from libtorch's";
  if (!close(gw[0], gw[1])) return "dL/dw differs from libtorch's";
  if (!stem && !close(gx[0], gx[1])) return "dL/dx differs from libtorch's";
  return {};
}

// The row's shape, with the threads set and the check done; false (the
// row skipped with the reason) when the two implementations disagree.
bool prepare(benchmark::State& st, Shape* s) {
  const char* t = std::getenv("ZB_THREADS");
  at::set_num_threads(t && *t ? std::atoi(t) : 1);
  *s = shape_of(st);
  const std::string why = mismatch(*s);
  if (!why.empty()) st.SkipWithError(why.c_str());
  return why.empty();
}

void BM_TrainConv(benchmark::State& st) {
  const int64_t impl = st.range(0);
  Shape s;
  if (!prepare(st, &s)) return;
  const bool stem = s.cin == 1;
  torch::manual_seed(1);
  at::Tensor x = torch::randn({kBatch, s.cin, s.side, s.side}).requires_grad_(!stem);
  at::Tensor w = torch::randn({s.cout, s.cin, s.k, s.k}).requires_grad_(true);
  const at::Tensor g = torch::randn_like(conv(impl, x.detach(), w.detach(), s));
  for (int i = 0; i < 3; ++i) conv(impl, x, w, s).backward(g);  // warm-up
  for (auto _ : st) {
    at::Tensor y = conv(impl, x, w, s);
    y.backward(g);
    benchmark::DoNotOptimize(w.grad().data_ptr());
  }
  const int64_t o = (s.side + s.stride - 1) / s.stride;
  const double macs = static_cast<double>(kBatch * s.cin * s.cout * s.k * s.k * o * o);
  st.counters["GFLOPs"] =
      benchmark::Counter((stem ? 2 : 3) * 2 * macs * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel(impl == 0 ? "lane" : "libtorch");
}

// Forward only, without autograd, on extraction's batch of 256.
void BM_EvalConv(benchmark::State& st) {
  const int64_t impl = st.range(0);
  Shape s;
  if (!prepare(st, &s)) return;
  torch::NoGradGuard no_grad;
  torch::manual_seed(1);
  const at::Tensor x = torch::randn({kEvalBatch, s.cin, s.side, s.side});
  const at::Tensor w = torch::randn({s.cout, s.cin, s.k, s.k});
  for (int i = 0; i < 3; ++i) conv(impl, x, w, s);  // warm-up
  for (auto _ : st) benchmark::DoNotOptimize(conv(impl, x, w, s).data_ptr());
  const int64_t o = (s.side + s.stride - 1) / s.stride;
  const double macs = static_cast<double>(kEvalBatch * s.cin * s.cout * s.k * s.k * o * o);
  st.counters["GFLOPs"] = benchmark::Counter(2 * macs * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel(impl == 0 ? "lane" : "libtorch");
}

// The shapes of resnet8/resnet20 at widths 4, 8 and 12 on 32 x 32 images,
// and the next widths up: where lane_conv_wins draws its line.
void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"impl", "cin", "cout", "k", "stride", "side"});
  for (const Shape& s :
       {Shape{1, 4, 3, 1, 32}, Shape{4, 4, 3, 1, 32}, Shape{4, 8, 3, 2, 32}, Shape{4, 8, 1, 2, 32},
        Shape{8, 8, 3, 1, 16}, Shape{1, 8, 3, 1, 32}, Shape{8, 8, 3, 1, 32}, Shape{8, 16, 3, 2, 16},
        Shape{8, 16, 1, 2, 16}, Shape{12, 12, 3, 1, 32}, Shape{12, 24, 3, 2, 32}, Shape{12, 24, 1, 2, 32},
        Shape{24, 24, 3, 1, 16}, Shape{48, 48, 3, 1, 8}, Shape{16, 16, 3, 1, 8}, Shape{16, 16, 3, 1, 16}})
    for (int64_t impl = 0; impl < 2; ++impl) b->Args({impl, s.cin, s.cout, s.k, s.stride, s.side});
}
BENCHMARK(BM_TrainConv)->Apply(shapes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_EvalConv)->Apply(shapes)->Unit(benchmark::kMicrosecond);

void BM_EvalNet(benchmark::State& st) {
  const char* t = std::getenv("ZB_THREADS");
  at::set_num_threads(t && *t ? std::atoi(t) : 1);
  const int64_t impl = st.range(0);
  const zoobench::zoo::NetSpec spec{st.range(1) == 0   ? "resnet8"
                                    : st.range(1) == 1 ? "resnet20"
                                                       : "cnn",
                                    st.range(2),
                                    1,
                                    {10}};
  torch::manual_seed(1);
  zoobench::zoo::Net net(spec);
  net->eval();
  const zoobench::zoo::FoldedNet lanes(*net), onednn(*net, /*lane_kernels=*/false);
  const zoobench::zoo::FoldedNet& folded = impl == 0 ? lanes : onednn;
  const at::Tensor x = torch::randn({kEvalBatch, 1, 32, 32});
  const at::Tensor a = lanes.features(x), b = onednn.features(x);
  if (!lanes.uses_lane_kernels() || !((a - b).abs().max() <= 1e-4 * (1 + b.abs().max())).item<bool>()) {
    st.SkipWithError("the lane kernels' features differ from oneDNN's");
    return;
  }
  for (int i = 0; i < 2; ++i) folded.features(x);  // warm-up
  for (auto _ : st) benchmark::DoNotOptimize(folded.features(x).data_ptr());
  st.counters["GFLOPs"] = benchmark::Counter(kEvalBatch * zbbench::forward_flops(spec, 32) * 1e-9,
                                             benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel(spec.arch + " w" + std::to_string(spec.width) + (impl == 0 ? " lane" : " oneDNN"));
}
BENCHMARK(BM_EvalNet)
    ->ArgNames({"impl", "arch", "width"})
    ->ArgsProduct({{0, 1}, {0, 1, 2}, {4, 8}})
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
