// Units shared through claim files: one holder per unit, dependencies
// respected, stale claims taken over (dead pid, requeued job, job Slurm no
// longer knows), a failure not retried in its round, static subsets.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "zoobench/claims.h"
#include "zoobench/error.h"
#include "zoobench/selector.h"
#include "zoobench/store.h"

using namespace zoobench;
namespace fs = std::filesystem;

namespace {

Plan plan_with_probes() {
  Config c;
  c.finetune.lrs = {0.1, 0.01};
  std::vector<PlanModel> models = {{"a", "builtin", "resnet8", 8, 1, 32, "expert"},
                                   {"g", "builtin", "resnet8", 16, 1, 32, "generic"}};
  std::vector<PlanTask> tasks = {{"t1", 10, 0, 80, 20, 200, 100, 10}, {"t2", 5, 1, 40, 10, 100, 50, 10}};
  return make_plan(c, models, tasks, {"lfc", "rsa"}, kNeedFeatures | kNeedProbeFeatures, 1);
}

struct Folder {
  fs::path dir;
  Folder() {
    char tmpl[] = "/tmp/zoobench-claims-XXXXXX";
    dir = mkdtemp(tmpl);
  }
  ~Folder() { fs::remove_all(dir); }
};

// Marks a unit done the way a worker does: its shard file exists.
void finish(const fs::path& exp, const Plan& p, int64_t u) {
  fs::path s = store::shard_path(exp, p.units[static_cast<size_t>(u)]);
  fs::create_directories(s.parent_path());
  std::ofstream(s) << "x";
}

store::Owner other(const std::string& host, long pid, const std::string& job = "", int restart = 0) {
  store::Owner o;
  o.host = host, o.pid = pid, o.job = job, o.restart = restart, o.since = "2026-01-01T00:00:00Z";
  return o;
}

long dead_pid() {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);
  return pid;
}

}  // namespace

TEST(Claims, EveryUnitOnceAcrossWorkersAndDependenciesFirst) {
  Folder f;
  Plan p = plan_with_probes();
  // Two workers of this process (another pid each: claims are per holder).
  ClaimQueue a(p, f.dir, other(store::hostname(), getpid()), Share::Claims);
  ClaimQueue b(p, f.dir, other(store::hostname(), getppid()), Share::Claims);
  std::set<int64_t> seen;
  for (int round = 0; round < 100 && seen.size() < p.units.size(); ++round) {
    for (ClaimQueue* q : {&a, &b}) {
      int64_t u = q->next();
      if (u < 0) continue;
      EXPECT_TRUE(seen.insert(u).second) << p.units[static_cast<size_t>(u)].id << " handed out twice";
      for (int d : p.units[static_cast<size_t>(u)].deps) EXPECT_TRUE(seen.count(d)) << "dependency not done first";
      finish(f.dir, p, u);
      q->complete(u);
    }
  }
  EXPECT_EQ(seen.size(), p.units.size());
  EXPECT_EQ(a.next(), ClaimQueue::kFinished);
  EXPECT_TRUE(fs::is_empty(f.dir / "claims"));
}

TEST(Claims, HeldUnitIsNotTakenAndWaitingIsReported) {
  Folder f;
  Plan p = plan_with_probes();
  ClaimQueue a(p, f.dir, other(store::hostname(), getpid()), Share::Claims);
  ClaimQueue b(p, f.dir, other(store::hostname(), getppid()), Share::Claims);
  // b never takes what a holds, and no score unit while the probes are not done.
  const int64_t p1 = a.next(), p2 = a.next();
  ASSERT_GE(p1, 0);
  ASSERT_GE(p2, 0);
  std::set<int64_t> held{p1, p2};
  for (int64_t u; (u = b.next()) >= 0;) {
    EXPECT_FALSE(held.count(u));
    EXPECT_NE(p.units[static_cast<size_t>(u)].kind, UnitKind::Score);
    held.insert(u);
  }
  // What is left is held by a (alive) or waits for it.
  EXPECT_NE(b.next(), ClaimQueue::kFinished);
}

TEST(Claims, StaleClaimsAreTakenOver) {
  Folder f;
  Plan p = plan_with_probes();
  const std::string host = store::hostname();
  ClaimQueue q(p, f.dir, other(host, getpid(), "700", 1), Share::Claims,
               0, 1, [](const std::string& job) { return job == "42"; });
  auto plant = [&](size_t u, const store::Owner& o) {
    fs::create_directories(q.claim_path(u).parent_path());
    std::ofstream(q.claim_path(u)) << o.to_text();
  };
  const size_t n = p.units.size();
  for (size_t u = 0; u < n; ++u) plant(u, other("elsewhere", 1, "42"));  // a live job on another host
  plant(0, other(host, dead_pid()));                 // a dead process here
  plant(1, other("elsewhere", 1, "700", 0));         // this very job before its requeue
  plant(2, other("elsewhere", 1, "99"));             // a job Slurm no longer knows
  std::set<int64_t> got;
  for (int64_t u; (u = q.next()) >= 0;) {
    got.insert(u);
    finish(f.dir, p, u);
    q.complete(u);
  }
  EXPECT_EQ(got, (std::set<int64_t>{0, 1, 2}));
  EXPECT_EQ(q.drain_taken_over().size(), 3u);
  EXPECT_EQ(q.held_elsewhere(), n - 3);
}

TEST(Claims, FailureIsNotRetriedThisRoundNorItsDependants) {
  Folder f;
  Plan p = plan_with_probes();
  ClaimQueue q(p, f.dir, other(store::hostname(), getpid()), Share::Claims);
  const int64_t probe = p.find("probe/t1");
  std::vector<int64_t> handed;
  bool failed = false;
  for (int64_t u; (u = q.next()) >= 0;) {
    handed.push_back(u);
    if (u == probe) {
      q.fail(u, "boom\nsecond line");
      failed = true;
      continue;
    }
    finish(f.dir, p, u);
    q.complete(u);
  }
  ASSERT_TRUE(failed);
  EXPECT_EQ(std::count(handed.begin(), handed.end(), probe), 1);
  for (const auto& m : p.models) EXPECT_FALSE(fs::exists(store::shard_path(f.dir, p.units[static_cast<size_t>(p.find("score/" + m.name + "/t1"))])));
  auto kv = store::read_keys(q.failed_path(static_cast<size_t>(probe)));
  EXPECT_EQ(kv["unit"], "probe/t1");
  EXPECT_EQ(kv["error"], "boom");
  EXPECT_EQ(kv["round"], q.round());
  // The next round (a resubmission: another grid job, here another process) tries it again.
  ClaimQueue later(p, f.dir, other(store::hostname(), getppid()), Share::Claims);
  EXPECT_EQ(later.next(), probe);
}

TEST(Claims, StaticSubsetsSplitTheCells) {
  Folder f;
  Plan p = plan_with_probes();
  std::set<int64_t> all;
  for (int w = 0; w < 3; ++w) {
    ClaimQueue q(p, f.dir, other(store::hostname(), 1000 + w), Share::Static, w, 3);
    for (int64_t u; (u = q.next()) >= 0;) {
      EXPECT_TRUE(all.insert(u).second);
      finish(f.dir, p, u);
      q.complete(u);
    }
  }
  EXPECT_EQ(all.size(), p.units.size());
  EXPECT_THROW(ClaimQueue(p, f.dir, other("h", 1), Share::Static, 3, 3), zoobench::Error);
}
