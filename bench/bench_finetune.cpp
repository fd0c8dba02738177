// zoobench's fine-tuning and feature-extraction throughput (images/s) on the
// settings of bench/python/finetune_baseline.py, with the same flags and the
// same JSON line (impl "zoobench-cpp"), so the two can be run side by side
// (bench/finetune_side_by_side.sh).
//
//   build-bench/bench/bench_finetune --arch resnet8 --width 8 --channels 1 --classes 10
//       --n 512 --batch 32 --epochs 3 --threads 1 --repeats 3 --json
//
// Data: seeded random uint8 images N x C x 32 x 32 and labels in [0, classes),
// drawn like the Python script (a CPU generator seeded --seed: randint images,
// then labels), held in an ImageSet and turned into floats by images_tensor.
// The source net has random weights (torch::manual_seed(--seed)) and is saved
// and loaded back through a manifest, like any zoo entry.
//
// Training: finetune_train (one rank, no group, CPU) has no per-epoch hook,
// so per repeat it times a 1-epoch run T1 and a (1 + E)-epoch run T(1+E);
// images/s = E * images per epoch / (T(1+E) - T1). The copy of the source
// net, the optimiser's construction and the first epoch cancel, which is
// the window the Python script times (the epochs after the first). One
// untimed 1-epoch run first warms up. A ragged last batch of size < 2 is
// skipped, as train_copy does, and not counted.
// Extraction: batches of --extract-batch (256) images through
// images_tensor (uint8 -> float) and Model::features_and_logits, collected
// and concatenated, as extract_cell does for a builtin model; one warm-up
// pass, then --repeats timed passes.
//
// Checks beside the timings: the trainable parameters (what SGD gets) match
// the closed form of nets.cpp (exit 1 otherwise, as the Python script); the
// fine-tuned parameters are finite and moved; the extracted features and
// logits have the expected shapes, are finite, and a batch's first images
// give the same features when extracted on their own.
//
// On a VM where page faults are dear, glibc's default malloc (large blocks
// mmap'd and unmapped on free) can dominate both sides: compare with
// GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295
// set for both (finetune_side_by_side.sh: TUNE_MALLOC=1). The JSON line
// records GLIBC_TUNABLES.
#include <ATen/ATen.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <unistd.h>

#include "bench_common.h"
#include "zoobench/process.h"
#include "zoobench/config.h"
#include "zoobench/dataset.h"
#include "zoobench/finetune.h"
#include "zoobench/loader.h"
#include "zoobench/model.h"
#include "zoobench/version.h"

using namespace zoobench;
using zbbench::now_s;

namespace {

double round1(double v) { return std::round(v * 10) / 10; }

double max_abs_diff(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, (a[i] - b[i]).abs().max().item<double>());
  return d;
}

}  // namespace

bool g_allocator_tuned = false;

int main(int argc, char** argv) {
  zoobench::choose_blas_kernels(argv);              // as the zoobench CLI does
  g_allocator_tuned = zoobench::tune_allocator();  // as the zoobench CLI does
  zbbench::Args a;
  a.opt("arch", "resnet8", "resnet8 | resnet14 | resnet20 | cnn")
      .opt("width", "8", "network width w (stages w, 2w, 4w)")
      .opt("channels", "1", "input channels, 1 or 3")
      .opt("classes", "10", "classes of the fine-tuning task (the new head)")
      .opt("source-classes", "10", "classes of the source head (extraction logits)")
      .opt("n", "512", "training images (and images extracted)")
      .opt("batch", "32", "fine-tuning batch size (config finetune.batch_size)")
      .opt("extract-batch", "256", "extraction batch size (config extract.batch_size)")
      .opt("epochs", "3", "timed epochs, after one warm-up epoch")
      .opt("lr", "0.01", "learning rate")
      .opt("momentum", "0.9", "SGD momentum (Nesterov when > 0)")
      .opt("weight-decay", "1e-4", "SGD weight decay")
      .opt("crop-padding", "2", "random-crop padding")
      .flag("flip", "also random left-right flips (flip_domains)")
      .opt("augment", "loop", "loop (augment.cpp; the only one zoobench has)")
      .opt("threads", "1", "libtorch intra-op threads")
      .opt("repeats", "3", "timed repeats (best and median reported)")
      .opt("seed", "1", "seed of the data, the weights and the fine-tune")
      .opt("mean", "0.5", "normalisation mean of every channel")
      .opt("std", "0.25", "normalisation std of every channel")
      .flag("json", "print only one JSON line")
      .flag("verbose", "print every timed run's seconds to stderr (C++ only)");
  std::string arch;
  int64_t width, channels, classes, source_classes, n, batch, extract_batch, repeats;
  int epochs;
  bool flip, json, verbose;
  FinetuneConfig cfg;
  uint64_t seed;
  try {
    if (!a.parse(argc, argv, "bench_finetune: zoobench fine-tuning and extraction throughput (images/s)")) return 0;
    arch = a.str("arch");
    width = a.i("width");
    channels = a.i("channels");
    classes = a.i("classes");
    source_classes = a.i("source-classes");
    n = a.i("n");
    batch = a.i("batch");
    extract_batch = a.i("extract-batch");
    epochs = static_cast<int>(a.i("epochs"));
    repeats = a.i("repeats");
    flip = a.b("flip");
    json = a.b("json");
    verbose = a.b("verbose");
    seed = static_cast<uint64_t>(a.i("seed"));
    if (a.str("augment") != "loop")
      throw UsageError("--augment " + a.str("augment") + ": zoobench has only the per-sample loop (augment.cpp)");
    if (channels != 1 && channels != 3) throw UsageError("--channels must be 1 or 3");
    if (n < 2 || batch < 1 || epochs < 1 || repeats < 1 || extract_batch < 1)
      throw UsageError("need --n >= 2, --batch >= 1, --epochs >= 1, --repeats >= 1");
    if (zbbench::expected_params(arch, width, channels, classes) < 0)
      throw UsageError("unknown architecture '" + arch + "' (known: resnet8, resnet14, resnet20, cnn)");
    cfg.epochs = epochs;
    cfg.batch_size = static_cast<int>(batch);
    cfg.lrs = {a.d("lr")};
    cfg.momentum = a.d("momentum");
    cfg.weight_decay = a.d("weight-decay");
    cfg.crop_padding = static_cast<int>(a.i("crop-padding"));
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_finetune: %s\n", e.what());
    return 2;
  }
  at::set_num_threads(static_cast<int>(a.i("threads")));

  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("zoobench-bench-finetune-" + std::to_string(::getpid()));
  int rc = 0;
  try {
    // Data, drawn in the Python script's order from one generator.
    at::Generator g = at::detail::createCPUGenerator(seed);
    at::Tensor images_u8 = at::randint(0, 256, {n, channels, 32, 32}, g, at::kByte).contiguous();
    at::Tensor labels = at::randint(0, classes, {n}, g, at::kLong);
    ImageSet set;
    set.name = "bench-random";
    set.channels = static_cast<int>(channels);
    set.height = set.width = 32;
    set.images.assign(images_u8.data_ptr<uint8_t>(), images_u8.data_ptr<uint8_t>() + images_u8.numel());
    set.labels.assign(labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + n);
    set.split.assign(static_cast<size_t>(n), 0);
    for (int64_t c = 0; c < classes; ++c) set.class_names.push_back(std::to_string(c));
    const at::Tensor xtr = images_tensor(set, static_cast<int>(channels));  // before training, not timed
    const at::Tensor ytr = labels;

    Manifest man = zbbench::save_builtin(dir, arch, static_cast<int>(width), static_cast<int>(channels),
                                         static_cast<int>(source_classes), a.d("mean"), a.d("std"), seed);
    auto model = load_model(man, man.entries[0]);

    // Check: what SGD gets equals the closed form of nets.cpp.
    auto fresh = model->finetune_copy(classes, seed);
    int64_t params = 0;
    for (auto& p : fresh->parameters()) params += p.numel();
    const int64_t expected = zbbench::expected_params(arch, width, channels, classes);
    if (params != expected) {
      std::fprintf(stderr, "parameter count %lld != expected %lld from nets.cpp\n", static_cast<long long>(params),
                   static_cast<long long>(expected));
      std::filesystem::remove_all(dir);
      return 1;
    }

    // Training.
    const int64_t per_epoch = n - ((n % batch == 1) ? 1 : 0);  // a ragged last batch of one is skipped
    const double lr = cfg.lrs[0];
    auto train = [&](int e, std::unique_ptr<FineTunable>* keep) {
      const double t0 = now_s();
      auto net = finetune_train(*model, xtr, ytr, classes, cfg, lr, e, flip, seed);
      const double dt = now_s() - t0;
      if (keep) *keep = std::move(net);
      return dt;
    };
    train(1, nullptr);  // warm-up
    std::vector<double> train_rates;
    std::unique_ptr<FineTunable> tuned;
    for (int64_t r = 0; r < repeats; ++r) {
      const double t1 = train(1, nullptr);
      const double tn = train(1 + epochs, &tuned);
      train_rates.push_back(tn > t1 ? static_cast<double>(epochs * per_epoch) / (tn - t1) : 0.0);
      if (verbose) std::fprintf(stderr, "repeat %lld: T(1) = %.4f s, T(1+%d) = %.4f s\n", static_cast<long long>(r), t1, epochs, tn);
    }
    bool finite = true;
    for (auto& p : tuned->parameters()) finite = finite && at::isfinite(p).all().item<bool>();
    const double moved = max_abs_diff(fresh->parameters(), tuned->parameters());
    if (!finite || !(moved > 1e-6)) {
      std::fprintf(stderr, "fine-tune check FAILED: parameters %s, moved by at most %g\n",
                   finite ? "finite" : "NOT finite", moved);
      rc = 1;
    }

    // Extraction: as extract_cell, batches through images_tensor and features_and_logits.
    auto extract = [&]() {
      std::vector<at::Tensor> fs, zs;
      std::vector<int64_t> idx;
      for (int64_t lo = 0; lo < n; lo += extract_batch) {
        idx.resize(static_cast<size_t>(std::min(extract_batch, n - lo)));
        std::iota(idx.begin(), idx.end(), lo);
        auto [f, z] = model->features_and_logits(images_tensor(set, idx, static_cast<int>(channels)));
        fs.push_back(f);
        zs.push_back(z);
      }
      return std::make_pair(at::cat(fs), at::cat(zs));
    };
    // Baseline in the same run: the same weights as the net itself in eval
    // mode, each BatchNorm a pass of its own (extraction before the model ran
    // a folded copy, zoo::FoldedNet). Its repeats alternate with the model's.
    zoo::Net unfolded(zoo::NetSpec{arch, width, channels, {source_classes}});
    torch::load(unfolded, (dir / "w.pt").string());
    unfolded->eval();
    // A second baseline: the folded copy on oneDNN's kernels, where the model
    // runs the lane kernels on a narrow net (zoo::FoldedNet::features).
    const zoo::FoldedNet onednn(*unfolded, /*lane_kernels=*/false);
    auto extract_with = [&](auto&& features) {
      torch::NoGradGuard no_graph;
      std::vector<at::Tensor> fs;
      std::vector<int64_t> idx;
      for (int64_t lo = 0; lo < n; lo += extract_batch) {
        idx.resize(static_cast<size_t>(std::min(extract_batch, n - lo)));
        std::iota(idx.begin(), idx.end(), lo);
        at::Tensor feats = features((images_tensor(set, idx, static_cast<int>(channels)) - a.d("mean")) / a.d("std"));
        unfolded->heads[0]->forward(feats);
        fs.push_back(feats);
      }
      return at::cat(fs);
    };
    auto extract_unfolded = [&]() { return extract_with([&](const at::Tensor& x) { return unfolded->features(x); }); };
    auto extract_onednn = [&]() { return extract_with([&](const at::Tensor& x) { return onednn.features(x); }); };
    extract();  // warm-up
    extract_unfolded();
    extract_onednn();
    std::vector<double> extract_rates, unfolded_rates, onednn_rates;
    at::Tensor f, z, f_unfolded, f_onednn;
    for (int64_t r = 0; r < repeats; ++r) {
      double t0 = now_s();
      std::tie(f, z) = extract();
      extract_rates.push_back(static_cast<double>(n) / (now_s() - t0));
      t0 = now_s();
      f_unfolded = extract_unfolded();
      unfolded_rates.push_back(static_cast<double>(n) / (now_s() - t0));
      t0 = now_s();
      f_onednn = extract_onednn();
      onednn_rates.push_back(static_cast<double>(n) / (now_s() - t0));
    }
    const double fold_diff = std::max((f - f_unfolded).abs().max().item<double>(),
                                      (f_onednn - f_unfolded).abs().max().item<double>());
    const int64_t k = std::min<int64_t>(8, n);
    auto [f_alone, z_alone] = model->features_and_logits(xtr.narrow(0, 0, k));
    const double batch_diff = (f_alone - f.narrow(0, 0, k)).abs().max().item<double>();
    const bool shapes = f.dim() == 2 && f.size(0) == n && f.size(1) == 4 * width && z.dim() == 2 && z.size(0) == n &&
                        z.size(1) == source_classes;
    if (!shapes || !at::isfinite(f).all().item<bool>() || !at::isfinite(z).all().item<bool>() || batch_diff > 1e-4 ||
        !(fold_diff <= 1e-4 * std::max(1.0, f_unfolded.abs().max().item<double>()))) {
      std::fprintf(stderr, "extraction check FAILED: features %s, logits %s, batch-invariance diff %g, folded - unfolded %g\n",
                   c10::str(f.sizes()).c_str(), c10::str(z.sizes()).c_str(), batch_diff, fold_diff);
      rc = 1;
    }

    nlohmann::json result = {
        {"impl", "zoobench-cpp"},
        {"arch", arch},
        {"width", width},
        {"channels", channels},
        {"classes", classes},
        {"n", n},
        {"batch", batch},
        {"extract_batch", extract_batch},
        {"epochs", epochs},
        {"repeats", repeats},
        {"threads", at::get_num_threads()},
        {"augment", "loop"},
        {"flip", flip},
        {"trainable_params", params},
        {"train_images_per_s", round1(*std::max_element(train_rates.begin(), train_rates.end()))},
        {"train_images_per_s_median", round1(zbbench::median(train_rates))},
        {"extract_images_per_s", round1(*std::max_element(extract_rates.begin(), extract_rates.end()))},
        {"extract_images_per_s_median", round1(zbbench::median(extract_rates))},
        {"extract_unfolded_images_per_s_median", round1(zbbench::median(unfolded_rates))},
        {"extract_onednn_images_per_s_median", round1(zbbench::median(onednn_rates))},
        {"extract_lane_kernels", zoo::lane_kernels_enabled()},
        {"forward_gflop_per_image", zbbench::forward_flops(zoo::NetSpec{arch, width, channels, {source_classes}}, 32) / 1e9},
        {"extract_gflop_per_s_median",
         round1(zbbench::median(extract_rates) * zbbench::forward_flops(zoo::NetSpec{arch, width, channels, {source_classes}}, 32) / 1e9)},
        {"mkldnn", at::hasMKLDNN()},
        {"torch", TORCH_VERSION},
        {"zoobench", ZOOBENCH_VERSION},
        {"glibc_tunables", std::getenv("GLIBC_TUNABLES") ? std::getenv("GLIBC_TUNABLES") : ""},
        {"zoobench_allocator_tuning", g_allocator_tuned},
    };
    if (!json) {
      std::printf("%s w=%lld in=%lld: %lld trainable parameters (expected %lld)\n", arch.c_str(),
                  static_cast<long long>(width), static_cast<long long>(channels), static_cast<long long>(params),
                  static_cast<long long>(expected));
      std::printf("train    %10.1f images/s best, %.1f median  (batch %lld, %d epochs x %lld, T(1+E) - T(1))  %s\n",
                  result["train_images_per_s"].get<double>(), result["train_images_per_s_median"].get<double>(),
                  static_cast<long long>(batch), epochs, static_cast<long long>(repeats),
                  rc == 0 ? "check ok" : "CHECK FAILED");
      std::printf("extract  %10.1f images/s best, %.1f median  (batch %lld, %lld images)  max |batched - alone| %.1e\n",
                  result["extract_images_per_s"].get<double>(), result["extract_images_per_s_median"].get<double>(),
                  static_cast<long long>(extract_batch), static_cast<long long>(n), batch_diff);
    }
    std::printf("%s\n", result.dump().c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_finetune: %s\n", e.what());
    rc = 1;
  }
  std::filesystem::remove_all(dir);
  return rc;
}
