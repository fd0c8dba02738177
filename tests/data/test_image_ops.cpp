#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "data/image_ops.h"
#include "zoobench/error.h"

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

// librsvg behind the OpenMoji importer: geometry, colour and alpha survive the
// render, and a broken file is one DataError naming it.
TEST(ImageOps, SvgRendersShapesColoursAndTransparency) {
  const std::string dir = ::testing::TempDir();
  const std::string path = dir + "/zb-shapes.svg", broken = dir + "/zb-broken.svg";
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    // viewBox 0..100: left half opaque blue, right half transparent, a red 20x20 square at (60, 40).
    std::fputs("<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 100 100'>"
               "<rect x='0' y='0' width='50' height='100' fill='#0000ff'/>"
               "<rect x='60' y='40' width='20' height='20' fill='#ff0000'/></svg>", f);
    std::fclose(f);
    f = std::fopen(broken.c_str(), "w");
    std::fputs("<svg xmlns='http://www.w3.org/2000/svg'><rect", f);
    std::fclose(f);
  }
  img::Decoded d = img::render_svg(path.c_str(), 40);
  ASSERT_EQ(d.h, 40);
  ASSERT_EQ(d.w, 40);
  auto px = [&](int y, int x) { return std::vector<int>(d.rgba.begin() + 4 * (y * 40 + x), d.rgba.begin() + 4 * (y * 40 + x) + 4); };
  EXPECT_EQ(px(5, 5), (std::vector<int>{0, 0, 255, 255}));     // inside the blue half
  EXPECT_EQ(px(20, 28), (std::vector<int>{255, 0, 0, 255}));   // inside the red square (24..32, 16..24)
  EXPECT_EQ(px(5, 35)[3], 0);                                  // transparent background
  EXPECT_EQ(px(35, 28)[3], 0);
  try {
    img::render_svg(broken.c_str(), 40);
    ADD_FAILURE() << "a truncated SVG must not render";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("zb-broken.svg"), std::string::npos) << e.what();
  }
}
