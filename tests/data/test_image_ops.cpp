#include <gtest/gtest.h>

#include "data/image_ops.h"

using namespace zoobench;

TEST(ImageOps, ResizeKeepsConstantsAndMass) {
  std::vector<uint8_t> src(28 * 28, 77), dst(32 * 32);
  img::resize(src.data(), 28, 28, dst.data(), 32, 32);
  for (auto v : dst) EXPECT_EQ(v, 77);
  std::vector<uint8_t> big(64 * 64, 0), small(32 * 32);
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 32; ++x) big[y * 64 + x] = 200;  // left half bright
  img::resize(big.data(), 64, 64, small.data(), 32, 32);
  EXPECT_EQ(small[5 * 32 + 3], 200);
  EXPECT_EQ(small[5 * 32 + 28], 0);
  long sum = 0;
  for (auto v : small) sum += v;
  EXPECT_NEAR(sum / (32.0 * 32.0), 100.0, 1.0);  // area preserved when shrinking
}

TEST(ImageOps, FitInkCentresTheBoundingBox) {
  std::vector<uint8_t> src(50 * 80, 0), dst(32 * 32);
  for (int y = 10; y < 20; ++y)
    for (int x = 60; x < 70; ++x) src[y * 80 + x] = 255;  // a 10x10 square off-centre
  ASSERT_TRUE(img::fit_ink(src.data(), 50, 80, 32, 26, dst.data()));
  EXPECT_EQ(dst[16 * 32 + 16], 255);
  EXPECT_EQ(dst[3 * 32 + 3], 255);    // box 26 in 32: starts at 3
  EXPECT_EQ(dst[2 * 32 + 16], 0);
  std::vector<uint8_t> empty(10 * 10, 0);
  EXPECT_FALSE(img::fit_ink(empty.data(), 10, 10, 32, 26, dst.data()));
}

TEST(ImageOps, CompositingAndGrey) {
  uint8_t rgba[8] = {255, 0, 0, 255, 0, 0, 0, 0};  // opaque red, transparent
  auto rgb = img::rgba_over_white_planar(rgba, 1, 2);
  EXPECT_EQ(rgb, (std::vector<uint8_t>{255, 255, 0, 255, 0, 255}));
  auto g = img::to_grey(rgb, 1, 2);
  EXPECT_EQ(g[0], 76);   // 0.299 * 255
  EXPECT_EQ(g[1], 255);
}
