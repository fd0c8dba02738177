#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "zoobench/error.h"
#include "zoobench/loader.h"

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
