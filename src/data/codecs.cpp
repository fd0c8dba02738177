// PNG (libpng), JPEG (libjpeg) and SVG (librsvg + cairo) decoding to RGBA.
#include <cstddef>
#include <cstdio>

#include <cairo.h>
#include <jpeglib.h>
#include <librsvg/rsvg.h>
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include "image_ops.h"
#include "zoobench/error.h"

namespace zoobench::img {

std::vector<uint8_t> read_bytes(const char* path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(std::string("cannot open '") + path + "'");
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

namespace {
// A header may claim any size; no target image needs more than this many
// pixels (8k x 8k), and the decoders allocate width x height x 4 bytes.
constexpr uint64_t kMaxPixels = uint64_t(1) << 26;

void check_size(uint64_t w, uint64_t h, const char* kind, const char* name) {
  if (w * h > kMaxPixels)
    throw DataError(std::string(kind) + " '" + name + "' claims " + std::to_string(w) + " x " + std::to_string(h) +
                    " pixels, more than the " + std::to_string(kMaxPixels) + " zoobench decodes");
}
}  // namespace

Decoded decode_png(const std::vector<uint8_t>& bytes, const char* name) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size()))
    throw DataError(std::string("unreadable PNG '") + name + "': " + image.message);
  if (uint64_t(image.width) * image.height > kMaxPixels) {
    png_image_free(&image);
    check_size(image.width, image.height, "PNG", name);
  }
  image.format = PNG_FORMAT_RGBA;
  Decoded d;
  d.h = static_cast<int>(image.height);
  d.w = static_cast<int>(image.width);
  d.rgba.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, d.rgba.data(), 0, nullptr)) {
    std::string msg = image.message;
    png_image_free(&image);
    throw DataError(std::string("unreadable PNG '") + name + "': " + msg);
  }
  return d;
}

namespace {
struct JpegErr {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};
void jpeg_fail(j_common_ptr info) {
  auto* err = reinterpret_cast<JpegErr*>(info->err);
  (*info->err->format_message)(info, err->message);
  std::longjmp(err->jump, 1);
}
}  // namespace

Decoded decode_jpeg(const std::vector<uint8_t>& bytes, const char* name) {
  jpeg_decompress_struct info;
  JpegErr err;
  info.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_fail;
  // Every C++ object lives outside the setjmp / longjmp span: a longjmp
  // skips destructors (fuzzing found the row buffer leaking here).
  Decoded d;
  std::vector<uint8_t> row;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&info);
    throw DataError(std::string("unreadable JPEG '") + name + "': " + err.message);
  }
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&info, TRUE);
  if (uint64_t(info.image_width) * info.image_height > kMaxPixels) {
    const uint64_t w = info.image_width, h = info.image_height;
    jpeg_destroy_decompress(&info);
    check_size(w, h, "JPEG", name);
  }
  info.out_color_space = JCS_RGB;
  jpeg_start_decompress(&info);
  d.w = static_cast<int>(info.output_width);
  d.h = static_cast<int>(info.output_height);
  d.rgba.resize(static_cast<size_t>(d.w) * d.h * 4);
  row.resize(static_cast<size_t>(d.w) * 3);
  while (info.output_scanline < info.output_height) {
    JSAMPROW r = row.data();
    size_t y = info.output_scanline;
    jpeg_read_scanlines(&info, &r, 1);
    for (int x = 0; x < d.w; ++x) {
      uint8_t* p = &d.rgba[(y * d.w + x) * 4];
      p[0] = row[3 * x], p[1] = row[3 * x + 1], p[2] = row[3 * x + 2], p[3] = 255;
    }
  }
  jpeg_finish_decompress(&info);
  jpeg_destroy_decompress(&info);
  return d;
}

Decoded decode_image_file(const char* path) {
  std::vector<uint8_t> bytes = read_bytes(path);
  static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), png_magic, 8) == 0) return decode_png(bytes, path);
  if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) return decode_jpeg(bytes, path);
  throw DataError(std::string("'") + path + "' is neither a PNG nor a JPEG image");
}

Decoded render_svg(const char* path, int size) {
  GError* error = nullptr;
  RsvgHandle* handle = rsvg_handle_new_from_file(path, &error);
  if (!handle) {
    std::string msg = error ? error->message : "unknown error";
    if (error) g_error_free(error);
    throw DataError(std::string("unreadable SVG '") + path + "': " + msg);
  }
  cairo_surface_t* surface = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, size, size);
  cairo_t* cr = cairo_create(surface);
  RsvgRectangle viewport{0, 0, static_cast<double>(size), static_cast<double>(size)};
  gboolean ok = rsvg_handle_render_document(handle, cr, &viewport, &error);
  cairo_destroy(cr);
  g_object_unref(handle);
  if (!ok) {
    std::string msg = error ? error->message : "unknown error";
    if (error) g_error_free(error);
    cairo_surface_destroy(surface);
    throw DataError(std::string("cannot render SVG '") + path + "': " + msg);
  }
  cairo_surface_flush(surface);
  Decoded d;
  d.h = d.w = size;
  d.rgba.resize(static_cast<size_t>(size) * size * 4);
  const unsigned char* data = cairo_image_surface_get_data(surface);
  int stride = cairo_image_surface_get_stride(surface);
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x) {
      uint32_t px;
      std::memcpy(&px, data + static_cast<size_t>(y) * stride + 4 * x, 4);  // premultiplied ARGB, native endian
      uint32_t a = px >> 24;
      uint8_t* o = &d.rgba[(static_cast<size_t>(y) * size + x) * 4];
      for (int c = 0; c < 3; ++c) {
        uint32_t v = (px >> (16 - 8 * c)) & 0xFF;
        o[c] = a ? static_cast<uint8_t>(std::min<uint32_t>(255, (v * 255 + a / 2) / a)) : 0;
      }
      o[3] = static_cast<uint8_t>(a);
    }
  cairo_surface_destroy(surface);
  return d;
}

}  // namespace zoobench::img
