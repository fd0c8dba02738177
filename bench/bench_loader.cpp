// Loading a packed data set into a float tensor: HDF5 read, then uint8 ->
// float32 in [0, 1] (and grey -> RGB). Items = images. Needs data/<domain>.h5
// (tools/quickstart packs it); ZOOBENCH_DATA_DIR points elsewhere.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "zoobench/dataset.h"
#include "zoobench/io.h"
#include "zoobench/loader.h"
#include "zoobench/process.h"
#include "zoobench/version.h"

namespace {
std::filesystem::path packed(const std::string& domain) {
  const char* env = std::getenv("ZOOBENCH_DATA_DIR");
  return zoobench::packed_path(env && *env ? env : std::string(ZOOBENCH_SOURCE_DIR) + "/data", domain);
}

const zoobench::ImageSet& cached(const std::string& domain) {
  static std::map<std::string, zoobench::ImageSet> sets;
  auto it = sets.find(domain);
  if (it == sets.end()) it = sets.emplace(domain, zoobench::read_packed(packed(domain))).first;
  return it->second;
}

void check(benchmark::State& state, const zoobench::ImageSet& set, const at::Tensor& t) {
  // Correctness beside the timing: one pixel of the last image.
  size_t last = set.size() - 1;
  float want = set.image(last)[set.image_bytes() / 2] / 255.0f;
  float got = t[static_cast<int64_t>(last)].flatten()[static_cast<int64_t>(set.image_bytes() / 2)].item<float>();
  if (got != want) state.SkipWithError("tensor does not match the packed pixels");
}

void BM_ReadPacked(benchmark::State& state, std::string domain) {
  size_t n = 0;
  for (auto _ : state) {
    auto set = zoobench::read_packed(packed(domain));
    n = set.size();
    benchmark::DoNotOptimize(set.images.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
}

void BM_ToTensor(benchmark::State& state, std::string domain, int channels) {
  const auto& set = cached(domain);
  at::Tensor t;
  for (auto _ : state) {
    t = at::Tensor();  // release the previous result first, as a training loop would
    t = zoobench::images_tensor(set, channels);
    benchmark::DoNotOptimize(t.data_ptr());
  }
  check(state, set, channels == 0 || channels == set.channels ? t : t.narrow(1, 0, 1));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * set.size()));
}

void BM_ReadAndTensor(benchmark::State& state, std::string domain) {
  size_t n = 0;
  for (auto _ : state) {
    auto set = zoobench::read_packed(packed(domain));
    at::Tensor t = zoobench::images_tensor(set);
    n = set.size();
    benchmark::DoNotOptimize(t.data_ptr());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
}
}  // namespace

BENCHMARK_CAPTURE(BM_ReadPacked, fashion_mnist, std::string("fashion-mnist"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_ToTensor, fashion_mnist_grey, std::string("fashion-mnist"), 0)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_ToTensor, fashion_mnist_rgb, std::string("fashion-mnist"), 3)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_ReadAndTensor, fashion_mnist, std::string("fashion-mnist"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_ReadAndTensor, glyphs_latin, std::string("glyphs-latin"))->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
  zoobench::choose_blas_kernels(argv);  // as the zoobench CLI does
  at::set_num_threads(std::getenv("ZOOBENCH_THREADS") ? std::atoi(std::getenv("ZOOBENCH_THREADS")) : 2);
  benchmark::AddCustomContext("zoobench", ZOOBENCH_VERSION);
  benchmark::AddCustomContext("libtorch_threads", std::to_string(at::get_num_threads()));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
