#include <mpi.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>

#include "mpi_check.h"
#include "zoobench/comm.h"
#include "zoobench/error.h"

namespace zoobench::comm {
namespace {
int thread_level = MPI_THREAD_SINGLE;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

std::string hostname() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

MPI_Comm handle(const Group& g) { return *static_cast<MPI_Comm*>(g.native()); }
}  // namespace

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(v)) return true;
  return false;
}

World& World::get() {
  static World w;
  return w;
}

World::World() : host_(hostname()) {
  // Without a launcher: one rank, but Slurm's srun without PMI still says which task of the node we are.
  local_rank_ = env_int("SLURM_LOCALID", 0);
  if (!launched_by_mpi()) return;
  // MULTIPLE: the work-queue service thread on rank 0 talks MPI beside the
  // main thread's collectives.
  check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &thread_level), "init");
  initialised_ = true;
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm node;
  check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node), "split");
  MPI_Comm_size(node, &local_size_);
  MPI_Comm_rank(node, &local_rank_);
  MPI_Comm_free(&node);
}

World::~World() {
  if (initialised_) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
}

bool mpi_thread_multiple() { return thread_level >= MPI_THREAD_MULTIPLE; }

void World::barrier() {
  if (initialised_) check(MPI_Barrier(MPI_COMM_WORLD), "barrier");
}

int64_t World::allreduce_sum(int64_t v) {
  if (!initialised_) return v;
  int64_t out = 0;
  check(MPI_Allreduce(&v, &out, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD), "allreduce");
  return out;
}

int64_t World::allreduce_max(int64_t v) {
  if (!initialised_) return v;
  int64_t out = 0;
  check(MPI_Allreduce(&v, &out, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD), "allreduce");
  return out;
}

std::vector<std::string> World::allgather(const std::string& s) {
  if (!initialised_) return {s};
  int len = static_cast<int>(s.size());
  std::vector<int> lens(static_cast<size_t>(size_)), offs(static_cast<size_t>(size_));
  check(MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, MPI_COMM_WORLD), "allgather");
  int total = 0;
  for (int r = 0; r < size_; ++r) offs[r] = total, total += lens[r];
  std::string buf(static_cast<size_t>(total), '\0');
  check(MPI_Allgatherv(s.data(), len, MPI_CHAR, buf.data(), lens.data(), offs.data(), MPI_CHAR, MPI_COMM_WORLD),
        "allgatherv");
  std::vector<std::string> out;
  for (int r = 0; r < size_; ++r) out.push_back(buf.substr(offs[r], lens[r]));
  return out;
}

namespace {
std::string broadcast_on(MPI_Comm comm, int rank, const std::string& s, int root) {
  int64_t len = rank == root ? static_cast<int64_t>(s.size()) : 0;
  check(MPI_Bcast(&len, 1, MPI_INT64_T, root, comm), "broadcast");
  std::string buf = rank == root ? s : std::string(static_cast<size_t>(len), '\0');
  check(MPI_Bcast(buf.data(), static_cast<int>(len), MPI_CHAR, root, comm), "broadcast");
  return buf;
}
}  // namespace

std::string World::broadcast(const std::string& s, int root) {
  if (!initialised_) return s;
  return broadcast_on(MPI_COMM_WORLD, rank_, s, root);
}

std::shared_ptr<Group> World::split(int color, int key) {
  std::shared_ptr<Group> g(new Group());
  if (!initialised_) return g;
  auto* comm = new MPI_Comm;
  int rc = MPI_Comm_split(MPI_COMM_WORLD, color, key, comm);
  if (rc != MPI_SUCCESS) delete comm;
  check(rc, "comm split");
  g->comm_ = comm;
  MPI_Comm_rank(*comm, &g->rank_);
  MPI_Comm_size(*comm, &g->size_);
  int root = rank_;
  check(MPI_Bcast(&root, 1, MPI_INT, 0, *comm), "broadcast");
  g->root_world_rank_ = root;
  return g;
}

void World::abort(int code) {
  if (initialised_) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

Group::~Group() {
  if (!comm_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Comm_free(static_cast<MPI_Comm*>(comm_));
  delete static_cast<MPI_Comm*>(comm_);
}

void Group::barrier() {
  if (comm_) check(MPI_Barrier(handle(*this)), "group barrier");
}

int64_t Group::broadcast(int64_t v, int root) {
  if (comm_) check(MPI_Bcast(&v, 1, MPI_INT64_T, root, handle(*this)), "group broadcast");
  return v;
}

std::string Group::broadcast(const std::string& s, int root) {
  return comm_ ? broadcast_on(handle(*this), rank_, s, root) : s;
}

// ---- Service: the work queue's transport ------------------------------------
struct Service::Impl {
  Handler handler;
  std::function<bool(const std::vector<int64_t>&)> is_final;
  int final_replies = 0;
  std::mutex mutex;
  std::thread thread;
  std::atomic<bool> stop{false};
  MPI_Comm comm = MPI_COMM_NULL;
  bool mpi = false;
  int rank = 0;

  void serve() {
    int finals = 0;
    std::vector<int64_t> msg;
    while (finals < final_replies && !stop.load()) {
      int flag = 0;
      MPI_Status st;
      MPI_Iprobe(MPI_ANY_SOURCE, 1, comm, &flag, &st);
      if (!flag) {
        // Polling, not a blocking receive: Open MPI's blocking calls spin, and
        // this thread shares the cores with rank 0's own unit.
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        continue;
      }
      int count = 0;
      MPI_Get_count(&st, MPI_INT64_T, &count);
      msg.resize(static_cast<size_t>(count));
      MPI_Recv(msg.data(), count, MPI_INT64_T, st.MPI_SOURCE, 1, comm, MPI_STATUS_IGNORE);
      std::vector<int64_t> reply;
      {
        std::lock_guard<std::mutex> lock(mutex);
        reply = handler(st.MPI_SOURCE, msg);
      }
      MPI_Send(reply.data(), static_cast<int>(reply.size()), MPI_INT64_T, st.MPI_SOURCE, 2, comm);
      if (is_final(reply)) ++finals;
    }
  }
};

Service::Service(Handler handler, std::function<bool(const std::vector<int64_t>&)> is_final, int final_replies)
    : impl_(std::make_unique<Impl>()) {
  auto& w = World::get();
  impl_->handler = std::move(handler);
  impl_->is_final = std::move(is_final);
  impl_->final_replies = final_replies;
  impl_->rank = w.rank();
  impl_->mpi = w.size() > 1;
  if (!impl_->mpi) return;
  if (!mpi_thread_multiple())
    throw Error("the work queue needs MPI_THREAD_MULTIPLE, which this MPI library (" + mpi_library_version() +
                ") did not provide");
  check(MPI_Comm_dup(MPI_COMM_WORLD, &impl_->comm), "comm dup");
  if (impl_->rank == 0 && final_replies > 0) impl_->thread = std::thread([this] { impl_->serve(); });
}

Service::~Service() {
  if (impl_->thread.joinable()) {
    // Unwinding from an error: stop serving now (main aborts the world next).
    if (std::uncaught_exceptions() > 0) impl_->stop = true;
    impl_->thread.join();
  }
  if (impl_->comm != MPI_COMM_NULL) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&impl_->comm);
  }
}

std::vector<int64_t> Service::request(const std::vector<int64_t>& msg) {
  auto t0 = std::chrono::steady_clock::now();
  std::vector<int64_t> reply;
  if (impl_->rank == 0 || !impl_->mpi) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    reply = impl_->handler(0, msg);
  } else {
    check(MPI_Send(msg.data(), static_cast<int>(msg.size()), MPI_INT64_T, 0, 1, impl_->comm), "send");
    MPI_Status st;
    check(MPI_Probe(0, 2, impl_->comm, &st), "probe");
    int count = 0;
    MPI_Get_count(&st, MPI_INT64_T, &count);
    reply.resize(static_cast<size_t>(count));
    check(MPI_Recv(reply.data(), count, MPI_INT64_T, 0, 2, impl_->comm, MPI_STATUS_IGNORE), "recv");
  }
  latencies_.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return reply;
}

// ---- timings for bench/ ---------------------------------------------------------
double pingpong_seconds(int bytes, int iterations) {
  auto& w = World::get();
  if (w.size() < 2) throw Error("ping-pong needs 2 ranks");
  std::vector<char> buf(static_cast<size_t>(std::max(bytes, 1)));
  w.barrier();
  double t0 = MPI_Wtime();
  for (int i = 0; i < iterations; ++i) {
    if (w.rank() == 0) {
      MPI_Send(buf.data(), bytes, MPI_CHAR, 1, 7, MPI_COMM_WORLD);
      MPI_Recv(buf.data(), bytes, MPI_CHAR, 1, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else if (w.rank() == 1) {
      MPI_Recv(buf.data(), bytes, MPI_CHAR, 0, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      MPI_Send(buf.data(), bytes, MPI_CHAR, 0, 7, MPI_COMM_WORLD);
    }
  }
  double dt = (MPI_Wtime() - t0) / (2.0 * iterations);
  MPI_Bcast(&dt, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  return dt;
}

double allreduce_seconds(int64_t floats, int iterations) {
  auto& w = World::get();
  std::vector<float> in(static_cast<size_t>(floats), 1.0f), out(static_cast<size_t>(floats));
  w.barrier();
  double t0 = MPI_Wtime();
  for (int i = 0; i < iterations; ++i)
    check(MPI_Allreduce(in.data(), out.data(), static_cast<int>(floats), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "allreduce");
  double dt = (MPI_Wtime() - t0) / iterations, slowest = 0;
  MPI_Allreduce(&dt, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  for (float v : out)
    if (v != static_cast<float>(w.size())) throw Error("allreduce check failed: got " + std::to_string(v));
  return slowest;
}

std::string mpi_library_version() {
  char v[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(v, &len);
  std::string s(v, static_cast<size_t>(len));
  return s.substr(0, s.find_first_of("\r\n,"));
}

}  // namespace zoobench::comm
