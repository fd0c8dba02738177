// Small pixel operations shared by the packers. Planar uint8 images.
#pragma once
#include <cstdint>
#include <vector>

namespace zoobench::img {

// Antialiased bilinear resampling (triangle filter widened when shrinking),
// one channel: good for both up- and down-scaling.
void resize(const uint8_t* src, int sh, int sw, uint8_t* dst, int dh, int dw);
std::vector<uint8_t> resize(const std::vector<uint8_t>& src, int channels, int sh, int sw, int dh, int dw);

// Crops a bright-on-dark image to its ink bounding box, scales it to fit a
// box x box square (aspect kept) and centres it on a canvas x canvas image.
// Returns false when the image has no ink.
bool fit_ink(const uint8_t* src, int h, int w, int canvas, int box, uint8_t* dst);

// Interleaved RGBA (premultiplied = false) composited over white into planar RGB.
std::vector<uint8_t> rgba_over_white_planar(const uint8_t* rgba, int h, int w);
// Planar RGB -> one grey plane (ITU-R 601 luma).
std::vector<uint8_t> to_grey(const std::vector<uint8_t>& rgb_planar, int h, int w);

// Decoders; throw DataError naming the file.
struct Decoded {
  int h = 0, w = 0;
  std::vector<uint8_t> rgba;  // interleaved, 4 bytes per pixel
};
Decoded decode_png(const std::vector<uint8_t>& bytes, const char* name);
Decoded decode_jpeg(const std::vector<uint8_t>& bytes, const char* name);
Decoded decode_image_file(const char* path);  // PNG or JPEG by magic bytes
// Rasterises an SVG at size x size (aspect kept, centred) over transparency.
Decoded render_svg(const char* path, int size);
std::vector<uint8_t> read_bytes(const char* path);

}  // namespace zoobench::img
