// The zoo manifest loader: any text either loads or is one Error.
#include <cstddef>
#include <cstdint>

#include "common.h"
#include "zoobench/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  zoobench::fuzz::MemFile file(data, size, "manifest.yaml");
  zoobench::fuzz::expect_clean([&] { zoobench::Manifest::load(file.path()); });
  return 0;
}
