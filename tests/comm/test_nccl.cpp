// GPU path: needs a CUDA device; skipped (not failed) without one.
#include <gtest/gtest.h>

#include "zoobench/comm.h"

using namespace zoobench;

TEST(Nccl, VersionIsReported) { EXPECT_NE(comm::nccl_version(), "not built"); }

TEST(Nccl, AllReduceOverLocalGpus) {
  if (comm::cuda_devices() == 0) GTEST_SKIP() << "no CUDA device on this machine";
  EXPECT_NE(comm::nccl_selftest(1 << 20).find("ok"), std::string::npos);
}
