// `zoobench version`: what was built and what actually runs (BLAS, threads).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <hdf5.h>
#include <link.h>
#include <torch/version.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include "cli.h"
#include "zoobench/comm.h"
#include "zoobench/version.h"

namespace zoobench::cli {

int set_threads(int requested) {
  int n = requested;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int ranks = comm::launched_by_mpi() ? comm::World::get().local_size() : 1;
  if (n <= 0) n = std::max(1, cores / std::max(1, ranks));
  else if (n * ranks > cores && comm::World::get().local_rank() == 0)
    std::fprintf(stderr, "zoobench: warning: %d ranks x %d threads on a node of %d cores: oversubscribed, expect slow-downs "
                 "(set threads: 0 to divide the cores)\n", ranks, n, cores);
  at::set_num_threads(n);
  return n;
}

namespace {

struct Blas {
  std::string path, kind;
  bool reference = false;
};

// The BLAS that the dynamic loader actually mapped (Debian switches
// libblas.so.3 between the reference BLAS and OpenBLAS via alternatives).
Blas loaded_blas() {
  Blas b;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto* b = static_cast<Blas*>(data);
        std::string name = info->dlpi_name ? info->dlpi_name : "";
        if (name.find("blas") == std::string::npos || !b->path.empty()) return 0;
        std::error_code ec;
        auto real = std::filesystem::canonical(name, ec);
        b->path = ec ? name : real.string();
        return 0;
      },
      &b);
  if (b.path.empty()) {
    b.kind = "none found";
  } else if (b.path.find("openblas") != std::string::npos) {
    b.kind = "OpenBLAS";
    using GetConfig = char* (*)();
    if (auto f = reinterpret_cast<GetConfig>(dlsym(RTLD_DEFAULT, "openblas_get_config"))) b.kind += std::string(" (") + f() + ")";
  } else if (b.path.find("/blas/libblas") != std::string::npos) {
    b.kind = "reference BLAS (netlib)";
    b.reference = true;
  } else {
    b.kind = "unknown BLAS";
  }
  return b;
}

// 2 n^3 flops per product; warm-up first, correctness beside the timing.
double matmul_gflops(int n) {
  at::Tensor a = at::rand({n, n}), c = at::rand({n, n});
  at::mm(a, c);
  int reps = 3;
  auto t0 = std::chrono::steady_clock::now();
  at::Tensor r;
  for (int i = 0; i < reps; ++i) r = at::mm(a, c);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double ref = (a[0] * c.select(1, 0)).sum().item<double>();
  if (std::abs(ref - r[0][0].item<double>()) > 1e-3 * std::abs(ref) + 1e-3) return -1;
  return 2.0 * n * n * n * reps / s / 1e9;
}

}  // namespace

int cmd_version(const Args& args) {
  po::options_description opts("zoobench version");
  opts.add_options()("bench", "also time a 1024x1024 float matmul to show the BLAS speed")(
      "threads", po::value<int>()->default_value(0), "libtorch threads (0 = cores / ranks on the node)");
  auto vm = parse("zoobench version [--bench] [--threads N]", opts, args);
  if (!vm) return 0;
  int threads = set_threads((*vm)["threads"].as<int>());
  unsigned maj, min, rel;
  H5get_libversion(&maj, &min, &rel);
  Blas blas = loaded_blas();
  std::printf("zoobench   %s (git %s)\n", ZOOBENCH_VERSION, ZOOBENCH_GIT_SHA);
  std::printf("libtorch   %s\n", TORCH_VERSION);
  std::printf("MPI        %s\n", comm::mpi_library_version().c_str());
  std::printf("HDF5       %u.%u.%u\n", maj, min, rel);
  std::printf("NCCL       %s", comm::nccl_version().c_str());
  if (comm::nccl_built()) std::printf(" (CUDA devices: %d)", comm::cuda_devices());
  std::printf("\nBLAS       %s [%s]\n", blas.kind.c_str(), blas.path.c_str());
  if (const char* was = std::getenv("ZOOBENCH_CHOSE_BLAS_CORETYPE"); was && std::getenv("OPENBLAS_CORETYPE"))
    std::printf("           kernels: %s, set by zoobench (OPENBLAS_CORETYPE): OpenBLAS took this CPU for a %s\n",
                std::getenv("OPENBLAS_CORETYPE"), was);
  std::printf("threads    %d (libtorch intra-op; %u cores)\n", threads, std::thread::hardware_concurrency());
  if (vm->count("bench")) {
    double g = matmul_gflops(1024);
    if (g < 0) std::printf("matmul     WRONG RESULT\n");
    else std::printf("matmul     %.1f GFLOP/s (1024^2 float, %d threads)\n", g, threads);
  }
  if (blas.reference)
    std::fprintf(stderr,
                 "zoobench: warning: libtorch runs on the slow reference BLAS; apt-get install libopenblas0-openmp "
                 "(tools/setup does)\n");
  else if (blas.path.find("openblas-pthread") != std::string::npos)
    std::fprintf(stderr,
                 "zoobench: warning: the pthread OpenBLAS keeps its own thread pool, which spins against libtorch's "
                 "OpenMP threads; select libopenblas0-openmp with update-alternatives (tools/setup does)\n");
  return 0;
}

}  // namespace zoobench::cli
