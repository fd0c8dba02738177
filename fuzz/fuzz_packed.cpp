// The packed-data reader (data/<domain>.h5): every schema violation a
// well-formed HDF5 file can carry (types, shapes, label ranges, missing
// keys, declared sizes of 2^40 elements) is one DataError, never a crash or
// an allocation the size of the claim.
#include <cstddef>
#include <cstdint>

#include "common.h"
#include "h5_builder.h"
#include "zoobench/dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider p(data, size);
  zoobench::fuzz::TempPath file(".packed.h5");
  {
    zoobench::fuzz::H5Builder b(p, file.path());
    if (!b.ok()) return 0;
    const hsize_t n = p.ConsumeIntegralInRange<hsize_t>(0, 12);
    const hsize_t c = p.ConsumeBool() ? 1 : 3;
    b.attribute(b.root(), "schema_version", "1");
    for (const char* a : {"domain", "source_package", "source_version", "license", "source_path", "description",
                          "split_rule", "group_kind", "created_utc", "zoobench_version"})
      b.attribute(b.root(), a, "x");
    b.dataset(b.root(), "images", {n, c, 32, 32});
    b.dataset(b.root(), "labels", {n});
    b.dataset(b.root(), "split", {n});
    b.dataset(b.root(), "class_names", {p.ConsumeIntegralInRange<hsize_t>(0, 4)});
    b.dataset(b.root(), "groups", {n});
  }
  zoobench::fuzz::expect_clean([&] { zoobench::read_packed(file.path()); });
  zoobench::fuzz::expect_clean([&] { zoobench::read_packed_info(file.path()); });
  return 0;
}
