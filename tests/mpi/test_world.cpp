// Runs under `mpiexec -n 2`: every rank executes every test.
#include <gtest/gtest.h>

#include "zoobench/comm.h"

using namespace zoobench;

TEST(MpiWorld, TwoRanksSeeEachOther) {
  ASSERT_TRUE(comm::launched_by_mpi()) << "run me under mpiexec -n 2";
  auto& w = comm::World::get();
  EXPECT_EQ(w.size(), 2);
  EXPECT_GE(w.local_size(), 1);
  EXPECT_EQ(w.allreduce_sum(w.rank() + 1), 3);
  auto all = w.allgather("rank-" + std::to_string(w.rank()) + std::string(static_cast<size_t>(w.rank()) * 3, '!'));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0], "rank-0");
  EXPECT_EQ(all[1], "rank-1!!!");
  w.barrier();
}

TEST(MpiWorld, LibraryVersionIsOpenMpi) {
  EXPECT_NE(comm::mpi_library_version().find("Open MPI"), std::string::npos) << comm::mpi_library_version();
}
