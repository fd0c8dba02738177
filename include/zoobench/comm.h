// The only door to MPI and NCCL: nothing outside src/comm/ includes mpi.h or
// nccl.h. A process not started by mpiexec is a world of one and never
// touches MPI, so the CLI stays fast and works without a launcher.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace at {
class Tensor;
}

namespace zoobench::comm {

// True when an MPI launcher started this process (OMPI/PMI environment).
bool launched_by_mpi();

class Group;

class World {
 public:
  static World& get();  // initialises MPI on first use when launched_by_mpi()
  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }  // rank among the ranks of this node
  int local_size() const { return local_size_; }  // ranks on this node
  bool is_root() const { return rank_ == 0; }
  const std::string& host() const { return host_; }
  void barrier();
  int64_t allreduce_sum(int64_t v);
  int64_t allreduce_max(int64_t v);
  // Every rank's string, in rank order, on every rank.
  std::vector<std::string> allgather(const std::string& s);
  std::string broadcast(const std::string& s, int root = 0);
  // Ranks with the same color form a group, ordered by key.
  std::shared_ptr<Group> split(int color, int key);
  // Ends every rank (MPI_Abort) so none waits forever on a failed peer.
  [[noreturn]] void abort(int code);
  ~World();

 private:
  World();
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  std::string host_;
  bool initialised_ = false;
};

// A sub-communicator of the world (MPI_Comm_split), or a group of one.
class Group {
 public:
  ~Group();
  int rank() const { return rank_; }
  int size() const { return size_; }
  int world_rank_of_root() const { return root_world_rank_; }
  void barrier();
  int64_t broadcast(int64_t v, int root = 0);
  std::string broadcast(const std::string& s, int root = 0);
  void* native() const { return comm_; }  // the MPI_Comm, for src/comm/ only

 private:
  friend class World;
  Group() = default;
  void* comm_ = nullptr;  // MPI_Comm* owned, nullptr for a group of one without MPI
  int rank_ = 0, size_ = 1, root_world_rank_ = 0;
};

// Request/reply with a service on world rank 0: rank 0 answers every other
// rank's requests from a thread beside its own work, so a request never waits
// for rank 0's current unit. Rank 0's own requests call the handler directly.
// Messages are vectors of int64; the handler runs under one mutex.
class Service {
 public:
  using Handler = std::function<std::vector<int64_t>(int world_rank, const std::vector<int64_t>& request)>;
  // Collective over the world: rank 0 starts the thread, which ends once it has
  // answered `final_replies` requests for which `is_final(reply)` held.
  Service(Handler handler, std::function<bool(const std::vector<int64_t>&)> is_final, int final_replies);
  ~Service();  // joins the thread (rank 0)
  std::vector<int64_t> request(const std::vector<int64_t>& msg);
  // Seconds from sending a request to its reply, over this rank's requests.
  const std::vector<double>& latencies() const { return latencies_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<double> latencies_;
};

// Collectives on tensors over a group: allreduce-average (bucketed), sum,
// broadcast, barrier. The backend follows the device: MPI for CPU tensors,
// NCCL for CUDA tensors (when built).
class Collective {
 public:
  virtual ~Collective() = default;
  // cuda: the group's tensors live on this rank's GPU (NCCL backend).
  static std::unique_ptr<Collective> create(std::shared_ptr<Group> group, bool cuda);
  int rank() const { return group_->rank(); }
  int size() const { return group_->size(); }
  Group& group() { return *group_; }
  virtual std::string backend() const = 0;
  // In place. Tensors are packed in order into flat buckets of at most
  // bucket_bytes (one collective per bucket; 0 = one per tensor).
  virtual void allreduce_average(std::vector<at::Tensor>& tensors) = 0;
  virtual void allreduce_sum(std::vector<at::Tensor>& tensors) = 0;
  virtual void broadcast(std::vector<at::Tensor>& tensors, int root = 0) = 0;
  virtual void barrier() { group_->barrier(); }
  size_t bucket_bytes = size_t{25} << 20;
  int64_t collectives_issued = 0;  // how many MPI/NCCL calls the tensor methods made

 protected:
  explicit Collective(std::shared_ptr<Group> g) : group_(std::move(g)) {}
  std::shared_ptr<Group> group_;
};

std::string mpi_library_version();  // first line of MPI_Get_library_version
bool mpi_thread_multiple();          // MPI was initialised with MPI_THREAD_MULTIPLE

// Point-to-point and collective timings for bench/ (MPI over the world).
double pingpong_seconds(int bytes, int iterations);          // one-way latency, ranks 0 and 1
double allreduce_seconds(int64_t floats, int iterations);    // one MPI_Allreduce of floats, mean over iterations

// NCCL backend (built when CUDA + NCCL were found at configure time).
bool nccl_built();
std::string nccl_version();  // "2.28.9", or "not built"
int cuda_devices();          // 0 when not built or no GPU
// Sums a float vector across every local GPU with ncclAllReduce and checks
// the result; returns a description. Throws Error on a mismatch or NCCL error.
std::string nccl_selftest(int64_t elements);

}  // namespace zoobench::comm
