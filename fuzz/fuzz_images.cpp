// The decoders behind --image-folder and the emoji importers: PNG (libpng),
// JPEG (libjpeg) and SVG (librsvg). The first byte picks the decoder.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../src/data/image_ops.h"
#include "common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t which = data[0] % 3;
  std::vector<uint8_t> bytes(data + 1, data + size);
  zoobench::fuzz::expect_clean([&] {
    zoobench::img::Decoded d;
    if (which == 0) {
      d = zoobench::img::decode_png(bytes, "fuzz.png");
    } else if (which == 1) {
      d = zoobench::img::decode_jpeg(bytes, "fuzz.jpg");
    } else {
      zoobench::fuzz::MemFile file(bytes.data(), bytes.size(), "fuzz.svg");
      d = zoobench::img::render_svg(file.path().c_str(), 32);
    }
    if (d.h <= 0 || d.w <= 0 || d.rgba.size() != static_cast<size_t>(d.h) * d.w * 4) std::abort();
  });
  return 0;
}
