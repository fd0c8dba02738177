// Runs under `mpiexec -n 2`: the Collective's MPI backend and data-parallel
// fine-tuning with synchronised BatchNorm against one rank on the whole batch.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "../common.h"
#include "zoo/nets.h"
#include "zoobench/comm.h"
#include "zoobench/config.h"
#include "zoobench/finetune.h"
#include "zoobench/model.h"

using namespace zoobench;

namespace {

std::shared_ptr<comm::Group> whole_world() {
  auto& w = comm::World::get();
  return w.split(0, w.rank());
}

// Tensors of mixed sizes (tiny biases beside larger weights), different on every rank.
std::vector<at::Tensor> rank_tensors(int rank) {
  at::Generator g = at::detail::createCPUGenerator(100 + rank);
  std::vector<at::Tensor> ts;
  for (int64_t n : {3, 1000, 7, 65536, 1, 4096}) ts.push_back(at::randn({n}, g));
  ts.push_back(at::randn({5, 7}, g).t());  // not contiguous
  return ts;
}

struct Saved {
  zoo::Net net{nullptr};
  Manifest manifest;
  Saved(const std::filesystem::path& dir, const std::string& arch) {
    torch::manual_seed(7);
    net = zoo::Net(zoo::NetSpec{arch, 4, 1, {5}});
    net->eval();
    torch::save(net, (dir / "w.pt").string());
    ManifestEntry e;
    e.name = "dp-" + arch;
    e.arch = arch;
    e.width = 4;
    e.weights = "w.pt";
    e.sha256 = sha256_file(dir / "w.pt");
    e.in_channels = 1;
    e.mean = {0.5};
    e.std = {0.25};
    e.head_classes = {5};
    e.source_classes = {"a", "b", "c", "d", "e"};
    manifest.dir = dir;
    manifest.entries = {e};
  }
};

double max_diff(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, (a[i] - b[i]).abs().max().item<double>());
  return d;
}

}  // namespace

TEST(Collective, BucketedAllreduceEqualsOnePerTensorAndTheMean) {
  ASSERT_TRUE(comm::launched_by_mpi()) << "run me under mpiexec -n 2";
  auto& w = comm::World::get();
  ASSERT_EQ(w.size(), 2);
  auto coll = comm::Collective::create(whole_world(), false);
  EXPECT_EQ(coll->backend(), "mpi");
  auto bucketed = rank_tensors(w.rank()), single = rank_tensors(w.rank());
  coll->allreduce_average(bucketed);
  EXPECT_EQ(coll->collectives_issued, 1);  // 71 K floats fit one 25 MB bucket
  coll->bucket_bytes = 0;
  coll->allreduce_average(single);
  EXPECT_EQ(coll->collectives_issued, 1 + 7);
  auto a = rank_tensors(0), b = rank_tensors(1);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::equal(bucketed[i], single[i])) << "tensor " << i;
    EXPECT_LT((bucketed[i] - (a[i] + b[i]) / 2).abs().max().item<double>(), 1e-6) << "tensor " << i;
  }
  // Small buckets: several messages, same values.
  auto small = rank_tensors(w.rank());
  coll->bucket_bytes = 16 * 1024;
  coll->collectives_issued = 0;
  coll->allreduce_average(small);
  EXPECT_GT(coll->collectives_issued, 2);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(small[i], single[i])) << "tensor " << i;
}

TEST(Collective, BroadcastFromTheFirstRank) {
  auto& w = comm::World::get();
  auto coll = comm::Collective::create(whole_world(), false);
  auto ts = rank_tensors(w.rank());
  coll->broadcast(ts, 0);
  auto want = rank_tensors(0);
  for (size_t i = 0; i < ts.size(); ++i) EXPECT_TRUE(torch::equal(ts[i], want[i]));
}

// Two ranks with half of every batch each compute what one rank computes on
// the whole batch: same parameters and BatchNorm statistics after 12 steps.
class DataParallel : public ::testing::TestWithParam<std::string> {};

TEST_P(DataParallel, TwoRanksEqualOneRank) {
  at::set_num_threads(1);
  auto& w = comm::World::get();
  // Rank 0 makes the folder, both use it.
  std::string dir = w.broadcast(w.is_root() ? zbtest::TempDir().path().string() + "-dp" : "");
  std::filesystem::create_directories(dir);
  if (w.is_root()) Saved(dir, GetParam()).manifest.save(std::filesystem::path(dir) / "manifest.yaml");
  w.barrier();
  Manifest m = Manifest::load(std::filesystem::path(dir) / "manifest.yaml");
  auto model = load_model(m, m.entries[0]);
  at::Generator g = at::detail::createCPUGenerator(11);
  at::Tensor x = at::rand({64, 1, 32, 32}, g), y = at::randint(0, 4, {64}, g);
  FinetuneConfig cfg;
  cfg.batch_size = 16;
  cfg.lrs = {0.05};
  auto alone = finetune_train(*model, x, y, 4, cfg, 0.05, 3, true, 42, nullptr);
  auto coll = comm::Collective::create(whole_world(), false);
  auto together = finetune_train(*model, x, y, 4, cfg, 0.05, 3, true, 42, coll.get());
  const double dp = max_diff(alone->parameters(), together->parameters());
  const double db = max_diff(alone->buffers(), together->buffers());
  RecordProperty("max_param_diff", std::to_string(dp));
  EXPECT_LT(dp, 1e-5) << GetParam();
  EXPECT_LT(db, 1e-5) << GetParam();
  // The parameters moved: the comparison is not between two untouched copies.
  auto fresh = model->finetune_copy(4, 42);
  EXPECT_GT(max_diff(fresh->parameters(), together->parameters()), 1e-3);
  // One allreduce per tensor gives the same model as the buckets.
  coll->bucket_bytes = 0;
  auto per_tensor = finetune_train(*model, x, y, 4, cfg, 0.05, 3, true, 42, coll.get());
  EXPECT_LT(max_diff(per_tensor->parameters(), together->parameters()), 1e-6);
  // And the two ranks hold the same model.
  std::vector<at::Tensor> mine = together->parameters(), r0 = together->parameters();
  for (auto& t : r0) t = t.clone();
  coll->broadcast(r0, 0);
  EXPECT_EQ(max_diff(mine, r0), 0.0);
  w.barrier();
  if (w.is_root()) std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Archs, DataParallel, ::testing::Values("resnet8", "cnn"));
