#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "zoobench/error.h"
#include "zoobench/loader.h"
#include "zoobench/process.h"

using namespace zoobench;

TEST(Loader, ScalesAndConvertsChannels) {
  ImageSet grey;
  grey.name = "g";
  grey.class_names = {"a", "b"};
  std::vector<uint8_t> px(grey.image_bytes());
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i % 256);
  grey.add(px.data(), 0, Split::Train);
  std::fill(px.begin(), px.end(), 255);
  grey.add(px.data(), 1, Split::Test);

  at::Tensor t = images_tensor(grey);
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{2, 1, 32, 32}));
  EXPECT_EQ(t.scalar_type(), at::kFloat);
  EXPECT_FLOAT_EQ(t[0][0][0][5].item<float>(), 5.0f / 255.0f);
  EXPECT_FLOAT_EQ(t[1].min().item<float>(), 1.0f);

  at::Tensor rgb = images_tensor(grey, {1, 0}, 3);
  EXPECT_EQ(rgb.sizes(), (std::vector<int64_t>{2, 3, 32, 32}));
  EXPECT_TRUE(at::equal(rgb[1][0], rgb[1][2]));
  EXPECT_TRUE(at::equal(rgb[1][1], t[0][0]));

  ImageSet colour;
  colour.name = "c";
  colour.channels = 3;
  colour.class_names = {"a", "b"};
  std::vector<uint8_t> cpx(colour.image_bytes(), 0);
  std::fill(cpx.begin(), cpx.begin() + 1024, 255);  // pure red
  colour.add(cpx.data(), 0, Split::Train);
  at::Tensor g = images_tensor(colour, 1);
  EXPECT_NEAR(g[0][0][3][3].item<float>(), 0.299f, 1e-6);
  EXPECT_THROW(images_tensor(colour, {5}), DataError);
  EXPECT_EQ(labels_tensor({3, 1}).sizes(), (std::vector<int64_t>{2}));
}

// The kernel's huge pages behind the memory alloc_huge hands out: 2 MiB
// aligned always, and backed by huge pages once touched wherever transparent
// huge pages are not switched off (/proc/self/smaps, AnonHugePages of the
// mapping that holds it).
TEST(HugePages, LargeBuffersAreAlignedAndAdvised) {
  constexpr size_t kBytes = size_t{16} << 20, kHuge = size_t{2} << 20;
  void* p = alloc_huge(kBytes);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kHuge, 0u);
  std::memset(p, 1, kBytes);
  std::ifstream mode("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string modes((std::istreambuf_iterator<char>(mode)), std::istreambuf_iterator<char>());
  if (!modes.empty() && modes.find("[never]") == std::string::npos) {
    std::ifstream smaps("/proc/self/smaps");
    const auto at = reinterpret_cast<uintptr_t>(p);
    bool inside = false;
    long huge_kb = -1;
    for (std::string line; std::getline(smaps, line);) {
      uintptr_t lo = 0, hi = 0;
      if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2) {  // a mapping's first line; its fields follow
        inside = lo <= at && at < hi;
      } else if (inside && line.rfind("AnonHugePages:", 0) == 0) {
        huge_kb = std::stol(line.substr(14));
        break;
      }
    }
    EXPECT_GE(huge_kb, 2048) << "THP: " << modes;
  }
  std::free(p);
  std::vector<double> v;
  reserve_huge(v, 1000);  // small: a plain reserve
  EXPECT_GE(v.capacity(), 1000u);
}
