// The only door to MPI and NCCL: nothing outside src/comm/ includes mpi.h or
// nccl.h. A process not started by mpiexec is a world of one and never
// touches MPI, so the CLI stays fast and works without a launcher.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace zoobench::comm {

// True when an MPI launcher started this process (OMPI/PMI environment).
bool launched_by_mpi();

class World {
 public:
  static World& get();  // initialises MPI on first use when launched_by_mpi()
  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_size() const { return local_size_; }  // ranks on this node
  bool is_root() const { return rank_ == 0; }
  void barrier();
  int64_t allreduce_sum(int64_t v);
  // Every rank's string, in rank order, on every rank.
  std::vector<std::string> allgather(const std::string& s);
  // Ends every rank (MPI_Abort) so none waits forever on a failed peer.
  [[noreturn]] void abort(int code);
  ~World();

 private:
  World();
  int rank_ = 0, size_ = 1, local_size_ = 1;
  bool initialised_ = false;
};

std::string mpi_library_version();  // first line of MPI_Get_library_version

// NCCL backend (built when CUDA + NCCL were found at configure time).
bool nccl_built();
std::string nccl_version();  // "2.28.9", or "not built"
int cuda_devices();          // 0 when not built or no GPU
// Sums a float vector across every local GPU with ncclAllReduce and checks
// the result; returns a description. Throws Error on a mismatch or NCCL error.
std::string nccl_selftest(int64_t elements);

}  // namespace zoobench::comm
