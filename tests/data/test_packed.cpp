#include <gtest/gtest.h>

#include "../common.h"
#include "zoobench/dataset.h"
#include "zoobench/error.h"
#include "zoobench/h5.h"

using namespace zoobench;

namespace {
ImageSet tiny() {
  ImageSet s;
  s.name = "tiny";
  s.channels = 3;
  s.class_names = {"cat", "dog", "émeu"};
  s.group_kind = "file";
  std::vector<uint8_t> px(s.image_bytes());
  for (int i = 0; i < 12; ++i) {
    std::fill(px.begin(), px.end(), static_cast<uint8_t>(i));
    s.add(px.data(), i % 3, i < 9 ? Split::Train : Split::Test, "f" + std::to_string(i));
  }
  s.prov = {"pkg", "1.0", "MIT", "/src", "desc", "rule"};
  return s;
}
}  // namespace

TEST(Packed, RoundTrip) {
  zbtest::TempDir d;
  ImageSet s = tiny();
  write_packed(s, d / "tiny.h5");
  ImageSet r = read_packed(d / "tiny.h5");
  EXPECT_EQ(r.name, "tiny");
  EXPECT_EQ(r.images, s.images);
  EXPECT_EQ(r.labels, s.labels);
  EXPECT_EQ(r.split, s.split);
  EXPECT_EQ(r.class_names, s.class_names);
  EXPECT_EQ(r.groups, s.groups);
  EXPECT_EQ(r.prov.license, "MIT");
  PackedInfo i = read_packed_info(d / "tiny.h5");
  EXPECT_EQ(i.images, 12);
  EXPECT_EQ(i.train, 9);
  EXPECT_EQ(i.test, 3);
  EXPECT_EQ(i.channels, 3);
  EXPECT_EQ(i.groups, 12);
  EXPECT_EQ(zbtest::count_files(d.path()), 1u) << "no temporary file left behind";
}

TEST(Packed, OlderSchemaIsRefusedWithAdvice) {
  zbtest::TempDir d;
  write_packed(tiny(), d / "old.h5");
  {
    auto f = h5::File::open(d / "old.h5", h5::Mode::ReadWrite);
    f.set_attr("schema_version", int64_t{0});
  }
  try {
    read_packed(d / "old.h5");
    FAIL();
  } catch (const DataError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("old.h5"), std::string::npos) << m;
    EXPECT_NE(m.find("schema_version 0"), std::string::npos) << m;
    EXPECT_NE(m.find("--force"), std::string::npos) << m;
  }
  EXPECT_THROW(read_packed(d / "missing.h5"), DataError);
  zbtest::write_text(d / "junk.h5", "junk");
  EXPECT_THROW(read_packed_info(d / "junk.h5"), DataError);
}

TEST(Packed, InvalidSetsWriteNothing) {
  zbtest::TempDir d;
  ImageSet s = tiny();
  s.labels[4] = 7;  // outside the 3 classes
  EXPECT_THROW(write_packed(s, d / "bad.h5"), DataError);
  s = tiny();
  s.class_names.resize(1);
  EXPECT_THROW(write_packed(s, d / "bad.h5"), DataError);
  EXPECT_EQ(zbtest::count_files(d.path()), 0u);
}

TEST(Packed, DataDirPrecedence) {
  EXPECT_EQ(resolve_data_dir("cli", "cfg"), "cli");
  setenv("ZOOBENCH_DATA_DIR", "env", 1);
  EXPECT_EQ(resolve_data_dir("", "cfg"), "env");
  unsetenv("ZOOBENCH_DATA_DIR");
  EXPECT_EQ(resolve_data_dir("", "cfg"), "cfg");
  EXPECT_EQ(resolve_data_dir("", ""), "data");
}
