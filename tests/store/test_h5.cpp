#include <gtest/gtest.h>

#include "../common.h"
#include "zoobench/error.h"
#include "zoobench/h5.h"
#include "zoobench/io.h"

using namespace zoobench;

TEST(H5, AttributesAndDatasetsRoundTrip) {
  zbtest::TempDir d;
  {
    auto f = h5::File::create(d / "a.h5");
    f.set_attr("name", std::string("zoo ✓ utf-8"));
    f.set_attr("count", int64_t{42});
    f.set_attr("ratio", 0.25);
    std::vector<float> x = {1, 2, 3, 4, 5, 6};
    f.write("x", x.data(), {2, 3}).set_attr("units", "metres");
    auto g = f.create_group("grp");
    g.write_strings("names", {"a", "", "ünïcode"});
    f.close();
  }
  auto f = h5::File::open(d / "a.h5");
  EXPECT_EQ(f.attr_string("name"), "zoo ✓ utf-8");
  EXPECT_EQ(f.attr_int("count"), 42);
  EXPECT_DOUBLE_EQ(f.attr_double("ratio"), 0.25);
  EXPECT_FALSE(f.has_attr("missing"));
  auto x = f.dataset("x");
  EXPECT_EQ(x.shape(), (std::vector<hsize_t>{2, 3}));
  EXPECT_EQ(x.read<double>(), (std::vector<double>{1, 2, 3, 4, 5, 6}));  // converted on read
  EXPECT_EQ(x.attr_string("units"), "metres");
  EXPECT_TRUE(f.has("grp/names"));
  EXPECT_FALSE(f.has("grp/nope/deeper"));
  EXPECT_EQ(f.open_group("grp").dataset("names").read_strings(), (std::vector<std::string>{"a", "", "ünïcode"}));
}

TEST(H5, FailuresCarryHdf5Message) {
  zbtest::TempDir d;
  zbtest::write_text(d / "not.h5", "this is not HDF5");
  try {
    h5::File::open(d / "not.h5");
    FAIL() << "expected DataError";
  } catch (const DataError& e) {  // a file that is not HDF5 is bad data (exit 3), with HDF5's own reason
    std::string m = e.what();
    EXPECT_NE(m.find("not.h5"), std::string::npos) << m;
    EXPECT_NE(m.find("signature"), std::string::npos) << "HDF5's own reason expected: " << m;
  }
  auto f = h5::File::create(d / "b.h5");
  EXPECT_THROW(f.dataset("nope"), IoError);
  EXPECT_THROW(f.attr_int("nope"), IoError);
  f.write_strings("s", {"x"});
  EXPECT_THROW(f.dataset("s").read<double>(), IoError);  // strings are not numbers
  EXPECT_THROW(f.write_strings("s", {"again"}), IoError);  // exists already
}

TEST(H5, TableAppendsAcrossFlushesAndReopen) {
  zbtest::TempDir d;
  std::vector<h5::Table::Column> cols = {
      {"model", h5::Table::Type::String, "zoo entry"},
      {"seed", h5::Table::Type::Int64, ""},
      {"value", h5::Table::Type::Float64, "score"},
  };
  {
    auto f = h5::File::create(d / "t.h5");
    h5::Table t(f, "scores", cols);
    for (int i = 0; i < 5000; ++i) t.append({std::string("m") + std::to_string(i % 7), int64_t{i}, i * 0.5});
    t.flush();
    t.append({std::string("last"), int64_t{-1}, 1e300});
    EXPECT_EQ(t.rows(), 5001u);
    EXPECT_THROW(t.append({int64_t{1}, int64_t{2}, 3.0}), IoError);  // wrong type, row rolled back
    EXPECT_EQ(t.rows(), 5001u);
  }  // destructor flushes
  {
    auto f = h5::File::open(d / "t.h5", h5::Mode::ReadWrite);
    h5::Table t(f, "scores", cols);
    EXPECT_EQ(t.rows(), 5001u);
    t.append({std::string("reopened"), int64_t{7}, 2.0});
    t.flush();
  }
  auto f = h5::File::open(d / "t.h5");
  auto g = f.open_group("scores");
  auto models = g.dataset("model").read_strings();
  auto seeds = g.dataset("seed").read<int64_t>();
  auto values = g.dataset("value").read<double>();
  ASSERT_EQ(models.size(), 5002u);
  EXPECT_EQ(models[5000], "last");
  EXPECT_EQ(models[5001], "reopened");
  EXPECT_EQ(seeds[4999], 4999);
  EXPECT_DOUBLE_EQ(values[10], 5.0);
  EXPECT_EQ(g.dataset("value").attr_string("description"), "score");
}

// The table a C++ writer makes must read back in h5py + pandas as strings and numbers.
TEST(H5, TableReadsBackInPandas) {
  zbtest::TempDir d;
  {
    auto f = h5::File::create(d / "p.h5");
    f.set_attr("schema_version", int64_t{1});
    h5::Table t(f, "scores",
                {{"model", h5::Table::Type::String, ""}, {"task", h5::Table::Type::String, ""},
                 {"shot", h5::Table::Type::Int64, ""}, {"value", h5::Table::Type::Float64, ""}});
    t.append({std::string("resnet8-fashion"), std::string("opencv-digits"), int64_t{10}, 0.75});
    t.append({std::string("cnn-glyphs"), std::string("thaï"), int64_t{5}, -1.5});
    t.flush();
  }
  std::string script = std::string(ZB_SOURCE_DIR) + "/tests/store/read_table.py";
  EXPECT_EQ(zbtest::run_python(script + " " + (d / "p.h5").string()), 0);
}

TEST(AtomicPath, NothingAppearsUntilCommit) {
  zbtest::TempDir d;
  {
    AtomicPath out(d / "sub" / "x.h5");
    zbtest::write_text(out.tmp(), "partial");
    EXPECT_FALSE(std::filesystem::exists(d / "sub" / "x.h5"));
  }  // not committed: the temporary goes away
  EXPECT_EQ(zbtest::count_files(d.path()), 0u);
  {
    AtomicPath out(d / "x.h5");
    zbtest::write_text(out.tmp(), "whole");
    out.commit();
  }
  EXPECT_EQ(read_file(d / "x.h5"), "whole");
  EXPECT_EQ(zbtest::count_files(d.path()), 1u);
}
