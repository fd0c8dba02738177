// The IDX reader (plain or gzip): any bytes either read or are one DataError,
// and memory follows the bytes, not the header's claims (-rss_limit_mb).
#include <cstddef>
#include <cstdint>

#include "common.h"
#include "zoobench/pack.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  zoobench::fuzz::MemFile file(data, size, "images.idx");
  zoobench::fuzz::expect_clean([&] {
    zoobench::IdxArrays a = zoobench::read_idx(file.path());
    uint64_t total = 1;
    for (int64_t d : a.dims) total *= static_cast<uint64_t>(d);
    if (total != a.data.size()) std::abort();  // what it returns is what the header promised
  });
  return 0;
}
