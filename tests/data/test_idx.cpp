#include <gtest/gtest.h>
#include <zlib.h>

#include "../common.h"
#include "zoobench/error.h"
#include "zoobench/pack.h"

using namespace zoobench;

namespace {
std::string idx_bytes(std::vector<uint32_t> dims, const std::vector<uint8_t>& data, uint8_t type = 0x08) {
  std::string s = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  for (uint32_t d : dims)
    for (int k = 3; k >= 0; --k) s += static_cast<char>((d >> (8 * k)) & 0xFF);
  s.append(data.begin(), data.end());
  return s;
}

void write_gz(const std::filesystem::path& p, const std::string& bytes) {
  gzFile f = gzopen(p.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

std::string message(const std::function<void()>& f) { return zbtest::error_of<DataError>(f); }
}  // namespace

TEST(Idx, ReadsPlainAndGzip) {
  zbtest::TempDir d;
  std::vector<uint8_t> px(2 * 3 * 4);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i);
  zbtest::write_text(d / "plain.idx", idx_bytes({2, 3, 4}, px));
  write_gz(d / "packed.idx.gz", idx_bytes({2, 3, 4}, px));
  for (const char* f : {"plain.idx", "packed.idx.gz"}) {
    IdxArrays a = read_idx(d / f);
    EXPECT_EQ(a.dims, (std::vector<int64_t>{2, 3, 4}));
    EXPECT_EQ(a.data, px);
  }
}

TEST(Idx, BadFilesNameTheFileAndTheProblem) {
  zbtest::TempDir d;
  std::vector<uint8_t> px(2 * 3 * 4, 1);
  std::string good = idx_bytes({2, 3, 4}, px);
  write_gz(d / "trunc.gz", good.substr(0, good.size() - 5));
  std::string e = message([&] { read_idx(d / "trunc.gz"); });
  EXPECT_NE(e.find("trunc.gz"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;

  std::string magic = good;
  magic[0] = 0x1f;
  zbtest::write_text(d / "magic.idx", magic);
  e = message([&] { read_idx(d / "magic.idx"); });
  EXPECT_NE(e.find("magic.idx"), std::string::npos) << e;
  EXPECT_NE(e.find("bad magic"), std::string::npos) << e;

  zbtest::write_text(d / "float.idx", idx_bytes({2}, {0, 0, 0, 0, 0, 0, 0, 0}, 0x0D));
  EXPECT_NE(message([&] { read_idx(d / "float.idx"); }).find("not unsigned byte"), std::string::npos);
  zbtest::write_text(d / "extra.idx", good + "xx");
  EXPECT_NE(message([&] { read_idx(d / "extra.idx"); }).find("trailing"), std::string::npos);
  EXPECT_NE(message([&] { read_idx(d / "missing.idx"); }).find("cannot open"), std::string::npos);
}

TEST(Idx, ImporterResizesAndSplits) {
  zbtest::TempDir d;
  const int n = 40;
  std::vector<uint8_t> px(n * 28 * 28), labels(n);
  for (int i = 0; i < n; ++i) {
    labels[i] = static_cast<uint8_t>(i % 4);
    std::fill(px.begin() + i * 784, px.begin() + (i + 1) * 784, static_cast<uint8_t>(i * 5));
  }
  zbtest::write_text(d / "im.idx", idx_bytes({n, 28, 28}, px));
  zbtest::write_text(d / "lb.idx", idx_bytes({n}, labels));
  PackOptions opt;
  ImageSet s = import_idx("mine", d / "im.idx", d / "lb.idx", "", "", opt);
  EXPECT_EQ(s.size(), static_cast<size_t>(n));
  EXPECT_EQ(s.class_names, (std::vector<std::string>{"0", "1", "2", "3"}));
  EXPECT_EQ(s.height, 32);
  EXPECT_EQ(s.image(7)[500], 35);  // constant images stay constant through the resize
  auto counts = s.class_counts();
  for (auto [train, test] : counts) EXPECT_EQ(test, 2u) << "20% of 10 per class";
  zbtest::write_text(d / "lb-short.idx", idx_bytes({n - 1}, std::vector<uint8_t>(labels.begin(), labels.end() - 1)));
  EXPECT_NE(message([&] { import_idx("m", d / "im.idx", d / "lb-short.idx", "", "", opt); }).find("disagree"), std::string::npos);
}
