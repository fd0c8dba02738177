// Collective on CUDA tensors with NCCL: the group's first rank creates the
// unique id, MPI broadcasts it, every rank joins with ncclCommInitRank on its
// current device. Every call is checked; an error aborts the communicator so
// no peer waits forever.
#include <ATen/ATen.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>

#include "buckets.h"
#include "collective_nccl.h"
#include "zoobench/error.h"

namespace zoobench::comm {
namespace {

ncclDataType_t nccl_type(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return ncclFloat;
    case at::kDouble: return ncclDouble;
    case at::kHalf: return ncclHalf;
    case at::kLong: return ncclInt64;
    default: throw Error(std::string("NCCL collective: unsupported dtype ") + c10::toString(t.scalar_type()));
  }
}

class NcclCollective : public Collective {
 public:
  explicit NcclCollective(std::shared_ptr<Group> g) : Collective(std::move(g)) {
    ncclUniqueId id;
    std::string bytes;
    if (rank() == 0) {
      check(ncclGetUniqueId(&id), "get unique id");
      bytes.assign(reinterpret_cast<const char*>(&id), sizeof id);
    }
    bytes = group_->broadcast(bytes, 0);
    if (bytes.size() != sizeof id) throw Error("NCCL: unique id of the wrong size from the group's first rank");
    std::memcpy(&id, bytes.data(), sizeof id);
    cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "stream");
    check(ncclCommInitRank(&comm_, size(), id, rank()), "comm init rank");
  }
  ~NcclCollective() override {
    if (comm_) ncclCommDestroy(comm_);
    if (stream_) cudaStreamDestroy(stream_);
  }
  std::string backend() const override { return "nccl"; }

  void allreduce_average(std::vector<at::Tensor>& ts) override { reduce(ts, ncclAvg); }
  void allreduce_sum(std::vector<at::Tensor>& ts) override { reduce(ts, ncclSum); }
  void broadcast(std::vector<at::Tensor>& ts, int root) override {
    each_bucket(ts, [&](at::Tensor& flat) {
      check(ncclBroadcast(flat.data_ptr(), flat.data_ptr(), static_cast<size_t>(flat.numel()), nccl_type(flat), root,
                          comm_, stream_),
            "broadcast");
    });
  }

 private:
  void check(ncclResult_t rc, const char* what) {
    if (rc == ncclSuccess) return;
    std::string msg = std::string("NCCL ") + what + ": " + ncclGetErrorString(rc);
    if (comm_) {
      ncclCommAbort(comm_);
      comm_ = nullptr;
    }
    throw Error(msg);
  }
  static void cuda(cudaError_t rc, const char* what) {
    if (rc != cudaSuccess) throw Error(std::string("CUDA ") + what + ": " + cudaGetErrorString(rc));
  }

  void reduce(std::vector<at::Tensor>& ts, ncclRedOp_t op) {
    if (size() == 1) return;
    each_bucket(ts, [&](at::Tensor& flat) {
      check(ncclAllReduce(flat.data_ptr(), flat.data_ptr(), static_cast<size_t>(flat.numel()), nccl_type(flat), op, comm_,
                          stream_),
            "allreduce");
    });
  }

  template <class Op>
  void each_bucket(std::vector<at::Tensor>& ts, Op op) {
    // The tensors were written on the default stream; ours waits for it.
    cuda(cudaDeviceSynchronize(), "synchronize");
    for (auto range : plan_buckets(ts, bucket_bytes)) {
      if (!ts[range.first].is_cuda()) throw Error("NCCL collective: tensors must be CUDA tensors");
      at::Tensor flat = pack_bucket(ts, range);
      cuda(cudaDeviceSynchronize(), "synchronize");
      op(flat);
      ++collectives_issued;
      cuda(cudaStreamSynchronize(stream_), "stream synchronize");
      unpack_bucket(ts, range, flat);
    }
  }

  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

std::unique_ptr<Collective> make_nccl_collective(std::shared_ptr<Group> group) {
  return std::make_unique<NcclCollective>(std::move(group));
}

}  // namespace zoobench::comm
