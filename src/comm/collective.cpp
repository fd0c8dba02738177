// Collective on CPU tensors over MPI, and the factory that picks the backend.
#include <ATen/ATen.h>
#include <mpi.h>

#include "collective_nccl.h"
#include "zoobench/comm.h"
#include "zoobench/error.h"

namespace zoobench::comm {
namespace {

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw Error(std::string("MPI ") + what + ": " + std::string(msg, static_cast<size_t>(len)));
}

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

  // Packs consecutive tensors of one dtype into a flat buffer of at most
  // bucket_bytes, runs `op` on it and copies the results back: one message
  // per bucket instead of one per (often tiny) tensor.
  template <class Op>
  void for_buckets(std::vector<at::Tensor>& ts, Op op) {
    size_t i = 0;
    while (i < ts.size()) {
      if (!ts[i].defined() || ts[i].numel() == 0) {
        ++i;
        continue;
      }
      if (!ts[i].device().is_cpu()) throw Error("MPI collective: tensors must be on the CPU (use the NCCL backend for CUDA)");
      size_t j = i, bytes = 0;
      std::vector<at::Tensor> bucket;
      while (j < ts.size() && ts[j].defined() && ts[j].scalar_type() == ts[i].scalar_type() &&
             (bucket.empty() || bytes + ts[j].nbytes() <= bucket_bytes)) {
        bytes += ts[j].nbytes();
        bucket.push_back(ts[j].reshape({-1}));
        ++j;
      }
      at::Tensor flat = bucket.size() == 1 && ts[i].is_contiguous() ? ts[i].view({-1}) : at::cat(bucket);
      op(flat);
      ++collectives_issued;
      if (!(bucket.size() == 1 && ts[i].is_contiguous())) {
        int64_t off = 0;
        for (size_t k = i; k < j; ++k) {
          int64_t n = ts[k].numel();
          ts[k].copy_(flat.narrow(0, off, n).view_as(ts[k]));
          off += n;
        }
      }
      i = j;
    }
  }
};

}  // namespace

std::unique_ptr<Collective> Collective::create(std::shared_ptr<Group> group, bool cuda) {
  if (cuda) return make_nccl_collective(std::move(group));
  return std::make_unique<MpiCollective>(std::move(group));
}

}  // namespace zoobench::comm
