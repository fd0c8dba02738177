// The HDF5 layer every shard, results and packed reader goes through
// (include/zoobench/h5.h): attributes and datasets of any type and shape,
// read as the readers read them. Each read returns or throws an Error.
#include <cstddef>
#include <cstdint>

#include "common.h"
#include "h5_builder.h"
#include "zoobench/h5.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider p(data, size);
  zoobench::fuzz::TempPath file(".shard.h5");
  static const char* names[] = {"unit", "seconds", "schema_version", "identity", "features", "values"};
  {
    zoobench::fuzz::H5Builder b(p, file.path());
    if (!b.ok()) return 0;
    for (const char* a : names) b.attribute(b.root(), a, "finetune/m/t/0.1");
    for (const char* d : names) b.dataset(b.root(), d, {p.ConsumeIntegralInRange<hsize_t>(0, 6)});
  }
  using zoobench::fuzz::expect_clean;
  expect_clean([&] {
    zoobench::h5::File f = zoobench::h5::File::open(file.path());
    for (const char* a : names) {
      if (!f.has_attr(a)) continue;
      expect_clean([&] { f.attr_string(a); });
      expect_clean([&] { f.attr_int(a); });
      expect_clean([&] { f.attr_double(a); });
    }
    for (const std::string& name : f.list()) {
      expect_clean([&] {
        zoobench::h5::Dataset d = f.dataset(name);
        d.shape();
        d.type_name();
        expect_clean([&] { d.read<double>(); });
        expect_clean([&] { d.read<int64_t>(); });
        expect_clean([&] { d.read<uint8_t>(); });
        expect_clean([&] { d.read<float>(); });
        expect_clean([&] { d.read_strings(); });
        expect_clean([&] { d.attr_string("description"); });
      });
    }
  });
  return 0;
}
