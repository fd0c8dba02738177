// Writes small PNG and JPEG files for importer tests (libpng / libjpeg).
#pragma once
#include <cstddef>
#include <cstdio>

#include <jpeglib.h>
#include <png.h>

#include <filesystem>
#include <stdexcept>
#include <vector>

namespace zbtest {

inline void write_png_rgba(const std::filesystem::path& p, int h, int w, const std::vector<uint8_t>& rgba) {
  std::filesystem::create_directories(p.parent_path());
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(w);
  image.height = static_cast<png_uint_32>(h);
  image.format = PNG_FORMAT_RGBA;
  if (!png_image_write_to_file(&image, p.c_str(), 0, rgba.data(), 0, nullptr)) throw std::runtime_error("png write");
}

inline void write_jpeg_rgb(const std::filesystem::path& p, int h, int w, const std::vector<uint8_t>& rgb) {
  std::filesystem::create_directories(p.parent_path());
  FILE* f = std::fopen(p.c_str(), "wb");
  jpeg_compress_struct info;
  jpeg_error_mgr err;
  info.err = jpeg_std_error(&err);
  jpeg_create_compress(&info);
  jpeg_stdio_dest(&info, f);
  info.image_width = static_cast<JDIMENSION>(w);
  info.image_height = static_cast<JDIMENSION>(h);
  info.input_components = 3;
  info.in_color_space = JCS_RGB;
  jpeg_set_defaults(&info);
  jpeg_set_quality(&info, 95, TRUE);
  jpeg_start_compress(&info, TRUE);
  while (info.next_scanline < info.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(&rgb[static_cast<size_t>(info.next_scanline) * w * 3]);
    jpeg_write_scanlines(&info, &row, 1);
  }
  jpeg_finish_compress(&info);
  jpeg_destroy_compress(&info);
  std::fclose(f);
}

}  // namespace zbtest
