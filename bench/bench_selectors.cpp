// Selector timings (seconds per score, one call = one iteration):
//  - BM_Selector/<name>: every registered selector on one cell's arrays. With
//    $ZB_SELECTOR_INPUTS (an HDF5 file from bench/python/selectors_baseline.py)
//    it scores exactly the arrays numpy timed and checks each value against
//    numpy's (/expected/<name>) beside the timing; otherwise it generates a
//    cell of N = 1000, D = 512, C = 20, Cs = 10.
//  - BM_Lfc/N: LFC alone at D = 512 (the Gram-free form's scaling).
//  - BM_Extract{Features,Sketch,Traced}: one cell's extraction (N = 1000
//    images, a resnet8 of width 128, so D = 512): the forward pass that gives
//    features and logits (with its GFLOP/s), the gradient sketch (m = 4,
//    K = 4096) LGC reads, and the three from one traced pass.
//  - BM_Sgemm/n: the fp32 GEMM rate, extraction's roofline, in the same run.
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "bench_common.h"
#include "zoo/nets.h"
#include "zoobench/h5.h"
#include "zoobench/model.h"
#include "zoobench/process.h"
#include "zoobench/selector.h"
#include "zoobench/version.h"

using namespace zoobench;

namespace {

struct Cell {
  SelectorInputs in;
  std::map<std::string, double> expected;  // numpy's values, when read from a file
};

at::Tensor read_matrix(const h5::Group& g, const std::string& name) {
  h5::Dataset d = g.dataset(name);
  std::vector<int64_t> shape;
  for (auto s : d.shape()) shape.push_back(static_cast<int64_t>(s));
  if (name == "labels") return at::tensor(d.read<int64_t>(), at::kLong).view(shape);
  return at::tensor(d.read<double>(), at::kDouble).view(shape);
}

Cell generated(int64_t n, int64_t d, int64_t c, int64_t cs) {
  Cell cell;
  cell.in = zbbench::synthetic_inputs(n, d, c, cs);
  return cell;
}

const Cell& cell() {
  static const Cell c = [] {
    const char* path = std::getenv("ZB_SELECTOR_INPUTS");
    if (!path || !*path) return generated(1000, 512, 20, 10);
    h5::File f = h5::File::open(path);
    h5::Group root = f.open_group("/");
    Cell out;
    out.in.features = read_matrix(root, "features");
    out.in.labels = read_matrix(root, "labels");
    out.in.classes = root.attr_int("classes");
    out.in.source_probs = read_matrix(root, "source_probs");
    out.in.grad_sketch = read_matrix(root, "grad_sketch");
    out.in.probe_features = read_matrix(root, "probe_features");
    out.in.source_class_means = read_matrix(root, "source_class_means");
    out.in.source_class_counts = read_matrix(root, "source_class_counts");
    h5::Group exp = root.open_group("expected");
    for (const auto& name : exp.list()) out.expected[name] = exp.dataset(name).read<double>().at(0);
    return out;
  }();
  return c;
}

void BM_Selector(benchmark::State& state, const Selector* s) {
  const Cell& c = cell();
  double v = s->score(c.in);  // warm-up, and the value checked below
  for (auto _ : state) benchmark::DoNotOptimize(v = s->score(c.in));
  auto it = c.expected.find(s->name());
  if (!std::isfinite(v)) state.SkipWithError("non-finite score");
  // Relative checks. N-LEEP's k-means draws differently from numpy's; the
  // linear probe uses the same folds, but both L-BFGS runs stop at the
  // 100-iteration cap of its definition, on different iterates.
  const double tol = s->name() == "nleep" ? 0.05 : s->name() == "linear_probe" ? 0.01 : 1e-6;
  if (it != c.expected.end() && std::abs(v - it->second) > tol * std::max(std::abs(it->second), 1e-12))
    state.SkipWithError(("differs from numpy: " + std::to_string(v) + " vs " + std::to_string(it->second)).c_str());
  state.counters["value"] = v;
  state.counters["N"] = static_cast<double>(c.in.features.size(0));
  state.counters["D"] = static_cast<double>(c.in.features.size(1));
}

void BM_Lfc(benchmark::State& state) {
  Cell c = generated(state.range(0), 512, 20, 10);
  const Selector& lfc = selector("lfc");
  double v = lfc.score(c.in);
  for (auto _ : state) benchmark::DoNotOptimize(v = lfc.score(c.in));
  state.counters["value"] = v;
}
BENCHMARK(BM_Lfc)->Arg(1000)->Arg(5000)->Arg(20000)->Unit(benchmark::kMillisecond)->UseRealTime();

// A resnet8 of width 128 (D = 512) with random weights, loaded through the manifest like any zoo entry.
Model& cell_model() {
  static std::unique_ptr<Model> m = [] {
    std::filesystem::path dir = std::filesystem::temp_directory_path() / "zoobench-bench-model";
    std::filesystem::create_directories(dir);
    torch::manual_seed(0);
    zoo::Net net(zoo::NetSpec{"resnet8", 128, 3, {10}});
    torch::save(net, (dir / "w.pt").string());
    static Manifest manifest;
    ManifestEntry e;
    e.name = "bench-resnet8-w128";
    e.arch = "resnet8";
    e.width = 128;
    e.weights = "w.pt";
    e.sha256 = sha256_file(dir / "w.pt");
    e.in_channels = 3;
    e.mean = {0.5, 0.5, 0.5};
    e.std = {0.25, 0.25, 0.25};
    e.head_classes = {10};
    manifest.dir = dir;
    manifest.entries = {e};
    return load_model(manifest, manifest.entries[0]);
  }();
  return *m;
}

at::Tensor cell_images() {
  static at::Tensor x = at::rand({1000, 3, 32, 32}, at::detail::createCPUGenerator(1));
  return x;
}

// As extract_cell does it: batches of 256, features and logits.
void report_rate(benchmark::State& state, int64_t images) {
  const double flops = zbbench::forward_flops(zoo::NetSpec{"resnet8", 128, 3, {10}}, 32);
  state.counters["GFLOP/image"] = flops / 1e9;
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * static_cast<double>(images) * static_cast<double>(state.iterations()) / 1e9,
                         benchmark::Counter::kIsRate);
}

// The roofline: the machine's fp32 GEMM rate in the same run, as `zoobench
// version --bench` measures it (2 n^3 operations a product, a warm-up first,
// one entry checked against a dot product).
void BM_Sgemm(benchmark::State& state) {
  const int64_t n = state.range(0);
  at::Tensor a = at::rand({n, n}), b = at::rand({n, n}), c = at::mm(a, b);
  for (auto _ : state) benchmark::DoNotOptimize(c = at::mm(a, b));
  const double ref = (a[0] * b.select(1, 0)).sum().item<double>();
  if (std::abs(ref - c[0][0].item<double>()) > 1e-3 * std::abs(ref)) state.SkipWithError("wrong product");
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(n * n * n) * static_cast<double>(state.iterations()) / 1e9,
                                                 benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Sgemm)->Arg(1024)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);

// One cell's images in extraction's batches of 256, per iteration.
template <class Call>
void over_batches(benchmark::State& state, Call call) {
  at::Tensor x = cell_images();
  for (auto _ : state)
    for (int64_t lo = 0; lo < x.size(0); lo += 256) call(x.narrow(0, lo, std::min<int64_t>(256, x.size(0) - lo)));
}

void BM_ExtractFeatures(benchmark::State& state) {
  Model& m = cell_model();
  over_batches(state, [&](const at::Tensor& b) { benchmark::DoNotOptimize(m.features_and_logits(b)); });
  state.counters["D"] = static_cast<double>(m.feature_dim());
  report_rate(state, cell_images().size(0));
}
BENCHMARK(BM_ExtractFeatures)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

// The gradient sketch on its own (what a cell scoring only LGC extracts).
void BM_ExtractSketch(benchmark::State& state) {
  Model& m = cell_model();
  over_batches(state, [&](const at::Tensor& b) { benchmark::DoNotOptimize(m.grad_sketch(b, 4, 4096, 0)); });
}
BENCHMARK(BM_ExtractSketch)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

// Extraction when LGC is scored: features, logits and the sketch from one
// traced forward pass (extract_cell's path).
void BM_ExtractTraced(benchmark::State& state) {
  Model& m = cell_model();
  over_batches(state, [&](const at::Tensor& b) { benchmark::DoNotOptimize(m.features_logits_and_sketch(b, 4, 4096, 0)); });
}
BENCHMARK(BM_ExtractTraced)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

}  // namespace

int main(int argc, char** argv) {
  zoobench::choose_blas_kernels(argv);            // as the zoobench CLI does
  const bool tuned = zoobench::tune_allocator();  // as the zoobench CLI does
  at::set_num_threads(std::getenv("ZOOBENCH_THREADS") ? std::atoi(std::getenv("ZOOBENCH_THREADS")) : 2);
  for (const Selector* s : all_selectors())
    benchmark::RegisterBenchmark(("BM_Selector/" + s->name()).c_str(), BM_Selector, s)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  benchmark::AddCustomContext("zoobench", ZOOBENCH_VERSION);
  benchmark::AddCustomContext("libtorch_threads", std::to_string(at::get_num_threads()));
  benchmark::AddCustomContext("allocator", tuned ? "mallopt: 32 MiB mmap threshold, 1 GiB trim" : "glibc defaults");
  benchmark::AddCustomContext("inputs", std::getenv("ZB_SELECTOR_INPUTS") ? std::getenv("ZB_SELECTOR_INPUTS") : "generated");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
