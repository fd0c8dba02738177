// Compiled when CUDA + NCCL were not found: the GPU backend reports itself absent.
#include "zoobench/comm.h"
#include "zoobench/error.h"

namespace zoobench::comm {
bool nccl_built() { return false; }
std::string nccl_version() { return "not built"; }
int cuda_devices() { return 0; }
std::string nccl_selftest(int64_t) { throw Error("zoobench was built without NCCL (configure with CUDA + NCCL present)"); }
}  // namespace zoobench::comm
