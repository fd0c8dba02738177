// NCCL backend: CUDA tensors' collectives. Built when CUDA + NCCL are found.
#include <cuda_runtime.h>
#include <nccl.h>

#include <cmath>
#include <vector>

#include "zoobench/comm.h"
#include "zoobench/error.h"

namespace zoobench::comm {
namespace {
void cuda(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess) throw Error(std::string("CUDA ") + what + ": " + cudaGetErrorString(rc));
}
void nccl(ncclResult_t rc, const char* what) {
  if (rc != ncclSuccess) throw Error(std::string("NCCL ") + what + ": " + ncclGetErrorString(rc));
}
}  // namespace

bool nccl_built() { return true; }

std::string nccl_version() {
  int v = 0;
  if (ncclGetVersion(&v) != ncclSuccess) return "unknown";
  // NCCL >= 2.9 encodes major*10000 + minor*100 + patch.
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}

int cuda_devices() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

std::string nccl_selftest(int64_t elements) {
  int n = cuda_devices();
  if (n == 0) throw Error("no CUDA device");
  std::vector<ncclComm_t> comms(static_cast<size_t>(n));
  std::vector<int> devs(static_cast<size_t>(n));
  for (int d = 0; d < n; ++d) devs[d] = d;
  nccl(ncclCommInitAll(comms.data(), n, devs.data()), "comm init");
  std::vector<float*> buf(static_cast<size_t>(n));
  std::vector<cudaStream_t> streams(static_cast<size_t>(n));
  for (int d = 0; d < n; ++d) {
    cuda(cudaSetDevice(d), "set device");
    cuda(cudaMalloc(&buf[d], sizeof(float) * elements), "malloc");
    std::vector<float> host(static_cast<size_t>(elements), static_cast<float>(d + 1));
    cuda(cudaMemcpy(buf[d], host.data(), sizeof(float) * elements, cudaMemcpyHostToDevice), "memcpy");
    cuda(cudaStreamCreate(&streams[d]), "stream");
  }
  nccl(ncclGroupStart(), "group start");
  for (int d = 0; d < n; ++d)
    nccl(ncclAllReduce(buf[d], buf[d], static_cast<size_t>(elements), ncclFloat, ncclSum, comms[d], streams[d]), "allreduce");
  nccl(ncclGroupEnd(), "group end");
  const float expect = n * (n + 1) / 2.0f;
  for (int d = 0; d < n; ++d) {
    cuda(cudaSetDevice(d), "set device");
    cuda(cudaStreamSynchronize(streams[d]), "sync");
    std::vector<float> host(static_cast<size_t>(elements));
    cuda(cudaMemcpy(host.data(), buf[d], sizeof(float) * elements, cudaMemcpyDeviceToHost), "memcpy");
    for (float v : host)
      if (std::fabs(v - expect) > 1e-5f) throw Error("NCCL allreduce gave " + std::to_string(v) + ", expected " + std::to_string(expect));
    cudaFree(buf[d]);
    cudaStreamDestroy(streams[d]);
    ncclCommDestroy(comms[d]);
  }
  return "allreduce of " + std::to_string(elements) + " floats over " + std::to_string(n) + " GPU(s): ok";
}

}  // namespace zoobench::comm
