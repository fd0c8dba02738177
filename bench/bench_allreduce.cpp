// MPI transport and the data-parallel fine-tune's gradient allreduce, in the
// manner of nccl-tests: every timing has a warm-up and a correctness check
// beside it. Run under MPI with two (or more) ranks:
//
//   mpiexec -n 2 build-bench/bench/bench_allreduce [--quick] [--models resnet8:8,resnet8:16]
//
// (a) ping-pong one-way latency, 8 B .. 1 MiB (comm::pingpong_seconds, ranks
//     0 and 1). Check: a rank-0 pattern of the same size broadcast over the
//     world arrives intact on every rank.
// (b) MPI_Allreduce of float buffers, 1 KiB .. 64 MiB in powers of 4
//     (comm::allreduce_seconds, which checks the sum itself): time, algbw =
//     bytes / time, busbw = algbw * 2 (n - 1) / n (nccl-tests' definition).
// (c) the gradient allreduce's share of a data-parallel fine-tune step: per
//     model, the step time of finetune_train with a Collective over the world
//     ((T(1 + E epochs) - T(1 epoch)) / (E * steps): the copy, optimiser set-up
//     and first epoch cancel), the same on one rank alone (every rank trains the
//     whole batch by itself, at the same time, for the speed-up), and
//     Collective::allreduce_average alone on tensors of the FineTunable's
//     parameter shapes (bucketed as in the step, and one per tensor).
//     share = bucketed allreduce per step / DP step time. The step also holds
//     synchronised BatchNorm's small allreduces (forward and backward), which
//     the share does not count. Checks: the averaged tensors equal the mean of
//     the ranks' values; after the DP fine-tune every rank holds the same
//     parameters.
//
// libtorch runs one intra-op thread per rank (at::set_num_threads(1)).
// On a VM where page faults are dear, glibc's default malloc (large blocks
// mmap'd, unmapped on free) slows the batch-32 single-rank step more than the
// batch-16 DP step and inflates the speed-up: compare with
//   mpiexec -n 2 -x GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295 ...
// The same holds for (b) above a few MiB (MPI's temporary buffers), and as
// glibc raises its mmap threshold to the largest block freed so far (up to
// 32 MiB), (c) after (b) runs in a different heap than (c) alone
// (--skip a,b); with GLIBC_TUNABLES pinning the thresholds it does not matter.
// Prints tables on rank 0, then one JSON line.
#include <ATen/ATen.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <unistd.h>

#include "bench_common.h"
#include "zoobench/process.h"
#include "zoobench/comm.h"
#include "zoobench/config.h"
#include "zoobench/finetune.h"
#include "zoobench/model.h"
#include "zoobench/version.h"

using namespace zoobench;
using zbbench::now_s;

namespace {

comm::World& world() { return comm::World::get(); }

// Slowest rank's seconds, as every rank's answer.
double slowest(double seconds) {
  return static_cast<double>(world().allreduce_max(static_cast<int64_t>(seconds * 1e9))) * 1e-9;
}

int clamp_iters(double target_s, double per_iter_s, int lo, int hi) {
  if (!(per_iter_s > 0)) return hi;
  return static_cast<int>(std::max<double>(lo, std::min<double>(hi, target_s / per_iter_s)));
}

// (a) ---------------------------------------------------------------------------
bool broadcast_intact(comm::Collective& coll, int64_t bytes) {
  const int64_t n = std::max<int64_t>(1, bytes / 4);
  at::Tensor t = world().is_root() ? at::arange(n, at::kFloat).mul_(0.5f).add_(3.0f) : at::zeros({n}, at::kFloat);
  std::vector<at::Tensor> v{t};
  coll.broadcast(v, 0);
  const bool ok = v[0].equal(at::arange(n, at::kFloat).mul_(0.5f).add_(3.0f));
  return world().allreduce_sum(ok ? 0 : 1) == 0;
}

nlohmann::json pingpong(comm::Collective& coll, double target_s, bool root) {
  nlohmann::json rows = nlohmann::json::array();
  std::vector<int64_t> sizes;
  for (int64_t b = 8; b < (1 << 20); b *= 4) sizes.push_back(b);
  sizes.push_back(1 << 20);
  if (root) {
    std::printf("\n(a) ping-pong, one-way latency = round trip / 2 (ranks 0 and 1, MPI_Send/MPI_Recv)\n");
    std::printf("%12s %10s %14s %12s  %s\n", "bytes", "iters", "latency_us", "GB/s", "check");
  }
  for (int64_t b : sizes) {
    const double warm = comm::pingpong_seconds(static_cast<int>(b), 20);  // warm-up: connection, pages
    const int iters = clamp_iters(target_s, 2 * warm, 20, 200000);
    const double t = comm::pingpong_seconds(static_cast<int>(b), iters);  // rank 0's, broadcast
    const bool ok = broadcast_intact(coll, b);
    if (root)
      std::printf("%12lld %10d %14.2f %12.3f  %s\n", static_cast<long long>(b), iters, t * 1e6, b / t / 1e9,
                  ok ? "ok" : "FAILED");
    rows.push_back({{"bytes", b}, {"iters", iters}, {"latency_us", t * 1e6}, {"gb_per_s", b / t / 1e9}, {"check", ok}});
    if (!ok) world().abort(1);
  }
  return rows;
}

// (b) ---------------------------------------------------------------------------
nlohmann::json allreduce(int64_t max_bytes, double target_s, bool root) {
  const int n = world().size();
  const double bus = 2.0 * (n - 1) / n;
  nlohmann::json rows = nlohmann::json::array();
  if (root) {
    std::printf("\n(b) MPI_Allreduce(float, sum) over %d ranks, in and out buffers distinct\n", n);
    std::printf("    algbw = bytes / time;  busbw = algbw * 2(n-1)/n = algbw * %.3f  (n = %d)\n", bus, n);
    std::printf("%12s %10s %8s %12s %12s %12s  %s\n", "bytes", "floats", "iters", "time_us", "algbw_GB/s",
                "busbw_GB/s", "check");
  }
  for (int64_t bytes = 1024; bytes <= max_bytes; bytes *= 4) {
    const int64_t floats = bytes / 4;
    comm::allreduce_seconds(floats, 1);                      // warm-up: first touch of MPI's buffers
    const double warm = comm::allreduce_seconds(floats, 2);  // warm-up that sizes the run (also checked)
    const int iters = clamp_iters(target_s, warm, 3, 20000);  // the slowest rank's warm-up: same on every rank
    const double t = comm::allreduce_seconds(floats, iters);  // throws on a wrong sum
    const double alg = bytes / t / 1e9;
    if (root)
      std::printf("%12lld %10lld %8d %12.1f %12.3f %12.3f  %s\n", static_cast<long long>(bytes),
                  static_cast<long long>(floats), iters, t * 1e6, alg, alg * bus, "ok");
    rows.push_back({{"bytes", bytes}, {"iters", iters}, {"time_us", t * 1e6}, {"algbw_gb_per_s", alg},
                    {"busbw_gb_per_s", alg * bus}, {"check", true}});
  }
  return rows;
}

// (c) ---------------------------------------------------------------------------
struct DpSettings {
  int64_t n = 256, batch = 32, classes = 10, channels = 1;
  int epochs = 2, repeats = 2, allreduce_iters = 50;
};

int64_t steps_per_epoch(int64_t n, int64_t batch) {
  int64_t full = n / batch, rem = n % batch;
  return full + (rem >= 2 || (rem == 1 && n < 2) ? 1 : 0);
}

// Seconds of finetune_train for `epochs` (the slowest rank).
double train_seconds(Model& m, const at::Tensor& x, const at::Tensor& y, const DpSettings& s, const FinetuneConfig& cfg,
                     int epochs, comm::Collective* group, std::unique_ptr<FineTunable>* keep = nullptr) {
  world().barrier();
  const double t0 = now_s();
  auto net = finetune_train(m, x, y, s.classes, cfg, cfg.lrs[0], epochs, false, 42, group);
  const double dt = now_s() - t0;
  if (keep) *keep = std::move(net);
  return slowest(dt);
}

// Median over repeats of (T(1 + E) - T(1)) / (E * steps).
double step_seconds(Model& m, const at::Tensor& x, const at::Tensor& y, const DpSettings& s, const FinetuneConfig& cfg,
                    comm::Collective* group, std::unique_ptr<FineTunable>* keep) {
  train_seconds(m, x, y, s, cfg, 1, group);  // warm-up
  std::vector<double> per_step;
  for (int r = 0; r < s.repeats; ++r) {
    const double t1 = train_seconds(m, x, y, s, cfg, 1, group);
    const double tn = train_seconds(m, x, y, s, cfg, 1 + s.epochs, group, keep);
    per_step.push_back(std::max(0.0, tn - t1) / (s.epochs * steps_per_epoch(s.n, s.batch)));
  }
  return zbbench::median(per_step);
}

// Mean seconds of one allreduce_average of the gradient-shaped tensors, and
// the collectives per call; checks the average.
std::pair<double, double> grad_allreduce(comm::Collective& coll, const std::vector<at::Tensor>& params, int iters,
                                         size_t bucket_bytes) {
  const int rank = world().rank(), size = world().size();
  std::vector<at::Tensor> g;
  for (const auto& p : params) g.push_back(at::full(p.sizes(), static_cast<float>(rank + 1), p.options()));
  const size_t saved = coll.bucket_bytes;
  coll.bucket_bytes = bucket_bytes;
  for (int i = 0; i < 3; ++i) coll.allreduce_average(g);  // warm-up
  coll.collectives_issued = 0;
  world().barrier();
  const double t0 = now_s();
  for (int i = 0; i < iters; ++i) coll.allreduce_average(g);
  const double t = slowest(now_s() - t0) / iters;
  const double calls = static_cast<double>(coll.collectives_issued) / iters;
  coll.bucket_bytes = saved;
  // Every rank held rank + 1: the average is (size + 1) / 2 and stays there.
  const float want = (size + 1) / 2.0f;
  double err = 0;
  for (const auto& t2 : g) err = std::max(err, (t2 - want).abs().max().item<double>());
  if (world().allreduce_max(err > 1e-6 ? 1 : 0)) {
    if (world().is_root()) std::fprintf(stderr, "allreduce_average check FAILED (max error %g)\n", err);
    world().abort(1);
  }
  return {t, calls};
}

nlohmann::json data_parallel(comm::Collective& coll, const std::vector<std::pair<std::string, int>>& models,
                             const DpSettings& s, bool root) {
  nlohmann::json rows = nlohmann::json::array();
  FinetuneConfig cfg;
  cfg.batch_size = static_cast<int>(s.batch);
  cfg.lrs = {0.01};
  at::Generator gen = at::detail::createCPUGenerator(11);
  at::Tensor x = at::rand({s.n, s.channels, 32, 32}, gen), y = at::randint(0, s.classes, {s.n}, gen);
  const int64_t steps = steps_per_epoch(s.n, s.batch);
  if (root) {
    std::printf("\n(c) data-parallel fine-tune over %d ranks: n = %lld, batch %lld (%lld per rank), %lld steps/epoch, "
                "%d timed epochs x %d repeats (median)\n",
                world().size(), static_cast<long long>(s.n), static_cast<long long>(s.batch),
                static_cast<long long>(s.batch / world().size()), static_cast<long long>(steps), s.epochs, s.repeats);
    std::printf("    step = (T(1+E epochs) - T(1 epoch)) / (E * steps); share = bucketed grad allreduce / DP step\n");
    std::printf("%-14s %9s %9s %7s %12s %12s %8s %14s %14s %8s  %s\n", "model", "params", "grad_KiB", "buckets",
                "dp_step_ms", "1rank_step_ms", "speedup", "allreduce_ms", "per_tensor_ms", "share", "check");
  }
  for (const auto& [arch, width] : models) {
    // Rank 0 writes the entry, every rank loads it.
    std::string dir = world().broadcast(
        world().is_root() ? (std::filesystem::temp_directory_path() /
                             ("zoobench-bench-allreduce-" + std::to_string(::getpid()) + "-" + arch + "-w" +
                              std::to_string(width)))
                                .string()
                          : std::string());
    if (world().is_root()) zbbench::save_builtin(dir, arch, width, static_cast<int>(s.channels), 10, 0.5, 0.25, 7);
    world().barrier();
    Manifest man = Manifest::load(std::filesystem::path(dir) / "manifest.yaml");
    auto model = load_model(man, man.entries[0]);

    std::unique_ptr<FineTunable> dp_net, alone_net;
    const double dp_step = step_seconds(*model, x, y, s, cfg, &coll, &dp_net);
    const double one_step = step_seconds(*model, x, y, s, cfg, nullptr, &alone_net);

    // Check: every rank holds rank 0's parameters after the DP fine-tune.
    std::vector<at::Tensor> mine = dp_net->parameters(), r0;
    for (auto& t : mine) r0.push_back(t.detach().clone());
    coll.broadcast(r0, 0);
    double diff = 0;
    for (size_t i = 0; i < mine.size(); ++i) diff = std::max(diff, (mine[i] - r0[i]).abs().max().item<double>());
    const bool same = world().allreduce_max(diff > 0 ? 1 : 0) == 0;

    auto fresh = model->finetune_copy(s.classes, 42);
    std::vector<at::Tensor> shapes = fresh->parameters();
    int64_t params = 0;
    for (auto& p : shapes) params += p.numel();
    const auto [ar, buckets] = grad_allreduce(coll, shapes, s.allreduce_iters, coll.bucket_bytes);
    const auto [ar1, calls1] = grad_allreduce(coll, shapes, s.allreduce_iters, 0);
    const double share = dp_step > 0 ? ar / dp_step : 0;
    const std::string name = arch + "-w" + std::to_string(width);
    if (root)
      std::printf("%-14s %9lld %9.1f %7.0f %12.3f %12.3f %8.2f %14.3f %14.3f %7.1f%%  %s\n", name.c_str(),
                  static_cast<long long>(params), params * 4 / 1024.0, buckets, dp_step * 1e3, one_step * 1e3,
                  dp_step > 0 ? one_step / dp_step : 0.0, ar * 1e3, ar1 * 1e3, 100 * share,
                  same ? "ok (avg exact, ranks agree)" : "FAILED: ranks differ");
    rows.push_back({{"model", name}, {"arch", arch}, {"width", width}, {"params", params},
                    {"grad_bytes", params * 4}, {"buckets", buckets}, {"tensors", calls1},
                    {"dp_step_ms", dp_step * 1e3}, {"one_rank_step_ms", one_step * 1e3},
                    {"allreduce_ms", ar * 1e3}, {"allreduce_per_tensor_ms", ar1 * 1e3}, {"share", share},
                    {"check", same}});
    world().barrier();
    if (world().is_root()) std::filesystem::remove_all(dir);
    if (!same) world().abort(1);
  }
  return rows;
}

}  // namespace

int main(int argc, char** argv) {
  zoobench::choose_blas_kernels(argv);            // as the zoobench CLI does
  const bool tuned = zoobench::tune_allocator();  // as the zoobench CLI does
  (void)tuned;
  zbbench::Args args;
  args.flag("quick", "small settings: sizes up to 4 MiB, 0.02 s per size, n = 64, 1 epoch, 1 repeat")
      .opt("max-bytes", "67108864", "largest allreduce buffer in bytes")
      .opt("time-per-size", "0.2", "seconds of timed iterations per message size")
      .opt("models", "resnet8:8,resnet8:16", "data-parallel models, arch:width,...")
      .opt("n", "256", "data-parallel training images")
      .opt("batch", "32", "data-parallel batch size (the group's whole batch)")
      .opt("epochs", "2", "data-parallel timed epochs E")
      .opt("repeats", "2", "data-parallel repeats (median)")
      .opt("allreduce-iters", "50", "allreduce_average calls timed per model")
      .opt("skip", "", "parts to skip: any of a,b,c (comma-separated)");
  std::vector<std::string> none;
  try {
    if (!args.parse(argc, argv, "bench_allreduce: MPI latency, allreduce bandwidth, DP gradient allreduce share"))
      return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_allreduce: %s\n", e.what());
    return 2;
  }
  at::set_num_threads(1);
  auto& w = world();
  if (w.size() < 2) {
    std::fprintf(stderr, "bench_allreduce: run me under mpiexec with at least 2 ranks (world size %d)\n", w.size());
    return 2;
  }
  const bool root = w.is_root();
  const bool quick = args.b("quick");
  const double target = quick ? 0.02 : args.d("time-per-size");
  const int64_t max_bytes = quick ? std::min<int64_t>(args.i("max-bytes"), 4 << 20) : args.i("max-bytes");
  DpSettings s;
  s.n = quick ? 64 : args.i("n");
  s.batch = args.i("batch");
  s.epochs = quick ? 1 : static_cast<int>(args.i("epochs"));
  s.repeats = quick ? 1 : static_cast<int>(args.i("repeats"));
  s.allreduce_iters = quick ? 10 : static_cast<int>(args.i("allreduce-iters"));
  std::vector<std::pair<std::string, int>> models;
  for (const auto& m : zbbench::split(args.str("models"), ',')) {
    auto p = m.find(':');
    models.emplace_back(m.substr(0, p), p == std::string::npos ? 8 : std::stoi(m.substr(p + 1)));
  }
  const std::string skip = args.str("skip");

  auto coll = comm::Collective::create(w.split(0, w.rank()), false);
  const auto hosts = w.allgather(w.host());
  const size_t distinct_hosts = std::set<std::string>(hosts.begin(), hosts.end()).size();
  if (root) {
    std::printf("bench_allreduce: zoobench %s (%s), %d ranks on %zu host(s), libtorch threads %d\n", ZOOBENCH_VERSION,
                ZOOBENCH_GIT_SHA, w.size(), distinct_hosts, at::get_num_threads());
    std::printf("MPI: %s; collective backend %s, bucket_bytes %zu\n", comm::mpi_library_version().c_str(),
                coll->backend().c_str(), coll->bucket_bytes);
    std::printf("GLIBC_TUNABLES=%s\n", std::getenv("GLIBC_TUNABLES") ? std::getenv("GLIBC_TUNABLES") : "(unset: glibc malloc defaults)");
  }
  nlohmann::json out;
  try {
    out["bench"] = "allreduce";
    out["ranks"] = w.size();
    out["hosts"] = distinct_hosts;
    out["mpi"] = comm::mpi_library_version();
    out["threads"] = at::get_num_threads();
    out["zoobench"] = ZOOBENCH_VERSION;
    out["glibc_tunables"] = std::getenv("GLIBC_TUNABLES") ? std::getenv("GLIBC_TUNABLES") : "";
    if (skip.find('a') == std::string::npos) out["pingpong"] = pingpong(*coll, target, root);
    if (skip.find('b') == std::string::npos) {
      out["allreduce_busbw_formula"] = "algbw * 2(n-1)/n";
      out["allreduce"] = allreduce(max_bytes, target, root);
    }
    if (skip.find('c') == std::string::npos) {
      out["dp"] = {{"n", s.n}, {"batch", s.batch}, {"epochs", s.epochs}, {"repeats", s.repeats},
                   {"models", data_parallel(*coll, models, s, root)}};
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_allreduce (rank %d): %s\n", w.rank(), e.what());
    w.abort(1);
  }
  if (root) std::printf("\n%s\n", out.dump().c_str());
  return 0;
}
