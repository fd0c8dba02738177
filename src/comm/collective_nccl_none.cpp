// Built when CUDA + NCCL were not found: CUDA tensors have no collective.
#include "collective_nccl.h"
#include "zoobench/error.h"

namespace zoobench::comm {
std::unique_ptr<Collective> make_nccl_collective(std::shared_ptr<Group>) {
  throw Error("the NCCL backend was not built (configure with CUDA + NCCL present): CUDA tensors have no collective");
}
}  // namespace zoobench::comm
