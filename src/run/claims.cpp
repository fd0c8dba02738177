#include "zoobench/claims.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numeric>

#include "zoobench/error.h"
#include "zoobench/io.h"
#include "zoobench/store.h"

namespace zoobench {
namespace fs = std::filesystem;

namespace {
double epoch_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}
bool dependency_unit(const Unit& u) { return u.kind == UnitKind::Probe || u.kind == UnitKind::Source; }
}  // namespace

Share share_from(const std::string& name) {
  if (name == "claims") return Share::Claims;
  if (name == "static") return Share::Static;
  throw UsageError("--share: unknown mode '" + name + "' (known: claims, static)");
}

ClaimQueue::ClaimQueue(const Plan& plan, fs::path exp_dir, store::Owner me, Share share, int worker, int workers,
                       store::JobActive job_active)
    : plan_(plan), exp_(std::move(exp_dir)), me_(std::move(me)), active_(std::move(job_active)),
      done_(plan.units.size(), 0), failed_(plan.units.size(), 0) {
  if (share == Share::Static && (workers < 1 || worker < 0 || worker >= workers))
    throw UsageError("--worker " + std::to_string(worker) + " of --workers " + std::to_string(workers) +
                     ": the worker index must lie in [0, workers)");
  if (const char* a = std::getenv("SLURM_ARRAY_JOB_ID"); a && *a) round_ = std::string("slurm:") + a;
  else if (!me_.job.empty()) round_ = "slurm:" + me_.job;
  else round_ = me_.host + ":" + std::to_string(me_.pid);
  std::error_code ec;
  fs::create_directories(exp_ / "claims", ec);
  if (ec) throw IoError("cannot create '" + (exp_ / "claims").string() + "': " + ec.message());
  // Claims left on units that are done (a worker killed between its shard's
  // rename and dropping the claim) are moot once their holder is gone.
  for (size_t u = 0; u < plan.units.size(); ++u) {
    if (!fs::exists(claim_path(u)) || !is_done(u)) continue;
    auto kv = store::read_keys(claim_path(u));
    if (!kv.empty() && store::owner_gone(store::Owner::from_keys(kv), me_, active_)) fs::remove(claim_path(u), ec);
  }
  if (share == Share::Claims) {
    order_.resize(plan.units.size());
    std::iota(order_.begin(), order_.end(), size_t{0});
    std::stable_sort(order_.begin(), order_.end(),
                     [&](size_t a, size_t b) { return plan.units[a].cost > plan.units[b].cost; });
  } else {
    // The few units others depend on go to whoever is first; the cells are dealt out.
    size_t k = 0;
    for (size_t u = 0; u < plan.units.size(); ++u)
      if (dependency_unit(plan.units[u])) order_.push_back(u);
    for (size_t u = 0; u < plan.units.size(); ++u)
      if (!dependency_unit(plan.units[u]) && k++ % static_cast<size_t>(workers) == static_cast<size_t>(worker))
        order_.push_back(u);
    // Last, what its own units wait on that others were dealt (the grid of a
    // task behind its edge fine-tunes): taken only if still undone, so a dead
    // worker's subset cannot keep this one waiting.
    std::vector<char> listed(plan.units.size(), 0);
    for (size_t u : order_) listed[u] = 1;
    const size_t own = order_.size();
    for (size_t i = 0; i < own; ++i)
      for (int d : plan.units[order_[i]].deps)
        if (!listed[static_cast<size_t>(d)]) listed[static_cast<size_t>(d)] = 1, order_.push_back(static_cast<size_t>(d));
  }
}

ClaimQueue::~ClaimQueue() {
  std::error_code ec;
  for (size_t u : mine_) fs::remove(claim_path(u), ec);
}

fs::path ClaimQueue::claim_path(size_t u) const { return exp_ / "claims" / encode_id(plan_.units[u].id); }
fs::path ClaimQueue::failed_path(size_t u) const { return exp_ / "failed" / (encode_id(plan_.units[u].id) + ".txt"); }

size_t ClaimQueue::done() const { return static_cast<size_t>(std::count(done_.begin(), done_.end(), 1)); }

bool ClaimQueue::is_done(size_t u) {
  if (!done_[u] && fs::exists(store::shard_path(exp_, plan_.units[u]))) done_[u] = 1;
  return done_[u];
}

void ClaimQueue::read_failures() {
  std::fill(failed_.begin(), failed_.end(), 0);
  std::error_code ec;
  if (!fs::is_directory(exp_ / "failed")) return;
  for (const auto& e : fs::directory_iterator(exp_ / "failed", ec)) {
    auto kv = store::read_keys(e.path());
    if (kv.empty() || kv["round"] != round_) continue;
    const int u = plan_.find(kv["unit"]);
    if (u >= 0) failed_[static_cast<size_t>(u)] = 1;
  }
}

bool ClaimQueue::try_claim(size_t u, bool& held) {
  const fs::path path = claim_path(u);
  for (int attempt = 0; attempt < 3; ++attempt) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd >= 0) {
      const std::string text = me_.to_text() + "unit=" + plan_.units[u].id + "\n";
      const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
      ::close(fd);
      if (!ok) throw IoError("cannot write the claim '" + path.string() + "': " + std::strerror(errno));
      return true;
    }
    if (errno != EEXIST) throw IoError("cannot create the claim '" + path.string() + "': " + std::strerror(errno));
    // Which file was judged: only that one may be taken over (another worker
    // may replace it while squeue answers).
    struct stat seen {};
    if (::stat(path.c_str(), &seen) != 0) continue;  // gone meanwhile: try to create it again
    auto kv = store::read_keys(path);
    bool gone = false;
    std::string who;
    if (kv.empty()) {
      // Being written this instant, or its writer died between create and write.
      gone = epoch_now() - static_cast<double>(seen.st_mtime) > 60.0;
      who = "an empty claim";
    } else {
      const store::Owner holder = store::Owner::from_keys(kv);
      // A claim of this very process that this queue does not hold: left by
      // an earlier process that had the same host and pid.
      if (holder.host == me_.host && holder.pid == me_.pid && !mine_.count(u)) return true;
      gone = !(holder.host == me_.host && holder.pid == me_.pid) && store::owner_gone(holder, me_, active_);
      who = holder.describe();
    }
    if (!gone) {
      held = true;
      return false;
    }
    if (!store::remove_if_unchanged(path, seen)) continue;  // taken over by another worker: look again
    taken_over_.push_back(plan_.units[u].id + " (" + who + ")");
  }
  held = true;
  return false;
}

int64_t ClaimQueue::next() {
  held_elsewhere_ = 0;
  bool waiting = false;
  read_failures();
  for (size_t u : order_) {
    if (mine_.count(u)) continue;
    if (is_done(u) || failed_this_round(u)) continue;
    bool ready = true, hopeless = false;
    for (int d : plan_.units[u].deps) {
      if (is_done(static_cast<size_t>(d))) continue;
      ready = false;
      hopeless = hopeless || failed_this_round(static_cast<size_t>(d));
    }
    if (!ready) {
      waiting = waiting || !hopeless;  // a unit whose dependency failed cannot run this round
      continue;
    }
    bool held = false;
    if (try_claim(u, held)) {
      if (is_done(u)) {  // finished by another worker between the check and the claim
        std::error_code ec;
        fs::remove(claim_path(u), ec);
        continue;
      }
      mine_.insert(u);
      return static_cast<int64_t>(u);
    }
    if (held) {
      // Wait for it: its holder may fail, be requeued or be gone, and a
      // worker that left early would let the reduce start on an unfinished grid.
      ++held_elsewhere_;
      waiting = true;
    }
  }
  return waiting ? kWait : kFinished;
}

void ClaimQueue::complete(int64_t unit) {
  const size_t u = static_cast<size_t>(unit);
  done_[u] = 1;
  std::error_code ec;
  fs::remove(failed_path(u), ec);
  fs::remove(claim_path(u), ec);
  mine_.erase(u);
}

void ClaimQueue::fail(int64_t unit, const std::string& error) {
  const size_t u = static_cast<size_t>(unit);
  std::string one_line = error.substr(0, error.find('\n'));
  char at[32];
  std::snprintf(at, sizeof at, "%.3f", epoch_now());
  std::error_code ec;
  fs::create_directories(failed_path(u).parent_path(), ec);
  {
    AtomicPath out(failed_path(u));
    std::ofstream(out.tmp()) << "unit=" << plan_.units[u].id << "\nerror=" << one_line << "\nat=" << at << "\nround="
                             << round_ << "\n" << me_.to_text();
    out.commit();
  }
  release(unit);
}

void ClaimQueue::release(int64_t unit) {
  std::error_code ec;
  fs::remove(claim_path(static_cast<size_t>(unit)), ec);
  mine_.erase(static_cast<size_t>(unit));
}

}  // namespace zoobench
