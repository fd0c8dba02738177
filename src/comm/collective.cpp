// Collective on CPU tensors over MPI, and the factory that picks the backend.
#include <ATen/ATen.h>
#include <mpi.h>

#include "buckets.h"
#include "collective_nccl.h"
#include "mpi_check.h"
#include "zoobench/comm.h"
#include "zoobench/error.h"

namespace zoobench::comm {
namespace {

MPI_Datatype mpi_type(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return MPI_FLOAT;
    case at::kDouble: return MPI_DOUBLE;
    case at::kLong: return MPI_INT64_T;
    default: throw Error(std::string("MPI collective: unsupported dtype ") + c10::toString(t.scalar_type()));
  }
}

class MpiCollective : public Collective {
 public:
  explicit MpiCollective(std::shared_ptr<Group> g) : Collective(std::move(g)) {}
  std::string backend() const override { return "mpi"; }

  void allreduce_average(std::vector<at::Tensor>& ts) override {
    reduce(ts, true);
  }
  void allreduce_sum(std::vector<at::Tensor>& ts) override { reduce(ts, false); }

  void broadcast(std::vector<at::Tensor>& ts, int root) override {
    if (size() == 1) return;
    for_buckets(ts, [&](at::Tensor& flat) {
      check(MPI_Bcast(flat.data_ptr(), static_cast<int>(flat.numel()), mpi_type(flat), root, comm()), "broadcast");
    });
  }

 private:
  MPI_Comm comm() const { return *static_cast<MPI_Comm*>(group_->native()); }

  void reduce(std::vector<at::Tensor>& ts, bool average) {
    if (size() == 1) return;
    for_buckets(ts, [&](at::Tensor& flat) {
      check(MPI_Allreduce(MPI_IN_PLACE, flat.data_ptr(), static_cast<int>(flat.numel()), mpi_type(flat), MPI_SUM, comm()),
            "allreduce");
      if (average) flat.div_(size());
    });
  }

  template <class Op>
  void for_buckets(std::vector<at::Tensor>& ts, Op op) {
    for (auto range : plan_buckets(ts, bucket_bytes)) {
      if (!ts[range.first].device().is_cpu())
        throw Error("MPI collective: tensors must be on the CPU (use the NCCL backend for CUDA)");
      at::Tensor flat = pack_bucket(ts, range);
      op(flat);
      ++collectives_issued;
      unpack_bucket(ts, range, flat);
    }
  }
};

}  // namespace

std::unique_ptr<Collective> Collective::create(std::shared_ptr<Group> group, bool cuda) {
  if (cuda) return make_nccl_collective(std::move(group));
  return std::make_unique<MpiCollective>(std::move(group));
}

}  // namespace zoobench::comm
