#include "image_ops.h"

#include <algorithm>
#include <cmath>

namespace zoobench::img {
namespace {

struct Taps {
  std::vector<int> first, count;
  std::vector<float> weights;  // count[o] weights per output, packed
  std::vector<int> offset;
};

Taps taps(int in, int out) {
  Taps t;
  double scale = static_cast<double>(in) / out;
  double support = std::max(1.0, scale);  // triangle half-width in input pixels
  for (int o = 0; o < out; ++o) {
    double centre = (o + 0.5) * scale;
    int lo = std::max(0, static_cast<int>(std::floor(centre - support)));
    int hi = std::min(in - 1, static_cast<int>(std::ceil(centre + support)));
    t.first.push_back(lo);
    t.offset.push_back(static_cast<int>(t.weights.size()));
    double sum = 0;
    std::vector<double> w;
    for (int i = lo; i <= hi; ++i) {
      double d = std::abs(i + 0.5 - centre) / support;
      w.push_back(std::max(0.0, 1.0 - d));
      sum += w.back();
    }
    if (sum <= 0) {  // degenerate: nearest pixel
      std::fill(w.begin(), w.end(), 0.0);
      w[std::min<size_t>(w.size() - 1, static_cast<size_t>(centre) - lo)] = 1.0;
      sum = 1.0;
    }
    for (double x : w) t.weights.push_back(static_cast<float>(x / sum));
    t.count.push_back(static_cast<int>(w.size()));
  }
  return t;
}

}  // namespace

void resize(const uint8_t* src, int sh, int sw, uint8_t* dst, int dh, int dw) {
  if (sh == dh && sw == dw) {
    std::copy(src, src + static_cast<size_t>(sh) * sw, dst);
    return;
  }
  Taps tx = taps(sw, dw), ty = taps(sh, dh);
  std::vector<float> tmp(static_cast<size_t>(sh) * dw);
  for (int y = 0; y < sh; ++y)
    for (int x = 0; x < dw; ++x) {
      float acc = 0;
      const float* w = &tx.weights[tx.offset[x]];
      const uint8_t* row = src + static_cast<size_t>(y) * sw + tx.first[x];
      for (int k = 0; k < tx.count[x]; ++k) acc += w[k] * row[k];
      tmp[static_cast<size_t>(y) * dw + x] = acc;
    }
  for (int y = 0; y < dh; ++y)
    for (int x = 0; x < dw; ++x) {
      float acc = 0;
      const float* w = &ty.weights[ty.offset[y]];
      for (int k = 0; k < ty.count[y]; ++k) acc += w[k] * tmp[static_cast<size_t>(ty.first[y] + k) * dw + x];
      dst[static_cast<size_t>(y) * dw + x] = static_cast<uint8_t>(std::clamp(std::lround(acc), 0L, 255L));
    }
}

std::vector<uint8_t> resize(const std::vector<uint8_t>& src, int channels, int sh, int sw, int dh, int dw) {
  std::vector<uint8_t> out(static_cast<size_t>(channels) * dh * dw);
  for (int c = 0; c < channels; ++c)
    resize(src.data() + static_cast<size_t>(c) * sh * sw, sh, sw, out.data() + static_cast<size_t>(c) * dh * dw, dh, dw);
  return out;
}

bool fit_ink(const uint8_t* src, int h, int w, int canvas, int box, uint8_t* dst) {
  int x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      if (src[static_cast<size_t>(y) * w + x]) {
        x0 = std::min(x0, x), x1 = std::max(x1, x);
        y0 = std::min(y0, y), y1 = std::max(y1, y);
      }
  std::fill(dst, dst + static_cast<size_t>(canvas) * canvas, 0);
  if (x1 < 0) return false;
  int cw = x1 - x0 + 1, ch = y1 - y0 + 1;
  std::vector<uint8_t> crop(static_cast<size_t>(cw) * ch);
  for (int y = 0; y < ch; ++y) std::copy_n(src + static_cast<size_t>(y0 + y) * w + x0, cw, crop.data() + static_cast<size_t>(y) * cw);
  double s = static_cast<double>(box) / std::max(cw, ch);
  int nw = std::max(1, static_cast<int>(std::lround(cw * s))), nh = std::max(1, static_cast<int>(std::lround(ch * s)));
  std::vector<uint8_t> scaled(static_cast<size_t>(nw) * nh);
  resize(crop.data(), ch, cw, scaled.data(), nh, nw);
  int ox = (canvas - nw) / 2, oy = (canvas - nh) / 2;
  for (int y = 0; y < nh; ++y) std::copy_n(scaled.data() + static_cast<size_t>(y) * nw, nw, dst + static_cast<size_t>(oy + y) * canvas + ox);
  return true;
}

std::vector<uint8_t> rgba_over_white_planar(const uint8_t* rgba, int h, int w) {
  size_t n = static_cast<size_t>(h) * w;
  std::vector<uint8_t> out(3 * n);
  for (size_t i = 0; i < n; ++i) {
    unsigned a = rgba[4 * i + 3];
    for (int c = 0; c < 3; ++c) out[c * n + i] = static_cast<uint8_t>((rgba[4 * i + c] * a + 255 * (255 - a) + 127) / 255);
  }
  return out;
}

std::vector<uint8_t> to_grey(const std::vector<uint8_t>& rgb, int h, int w) {
  size_t n = static_cast<size_t>(h) * w;
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; ++i)
    out[i] = static_cast<uint8_t>((299 * rgb[i] + 587 * rgb[n + i] + 114 * rgb[2 * n + i] + 500) / 1000);
  return out;
}

}  // namespace zoobench::img
