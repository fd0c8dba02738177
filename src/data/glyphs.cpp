// Printed characters rendered with FreeType from every installed font: one
// pass over the fonts fills the Latin, handwriting and non-Latin domains.
#include <ft2build.h>
#include FT_FREETYPE_H

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "image_ops.h"
#include "sources.h"
#include "zoobench/error.h"

namespace zoobench::detail {
namespace fs = std::filesystem;

namespace {

struct Script {
  std::string domain;
  std::vector<char32_t> chars;
};

std::vector<char32_t> range(char32_t lo, char32_t hi, std::set<char32_t> skip = {}) {
  std::vector<char32_t> v;
  for (char32_t c = lo; c <= hi; ++c)
    if (!skip.count(c)) v.push_back(c);
  return v;
}

const std::vector<Script>& scripts() {
  static const std::vector<Script> s = {
      {"glyphs-latin", range(U'A', U'Z')},
      {"glyphs-greek", range(0x391, 0x3A9, {0x3A2})},                           // capitals, no final-sigma slot
      {"glyphs-cyrillic", range(0x410, 0x42F)},                                 // А..Я
      {"glyphs-hebrew", range(0x5D0, 0x5EA, {0x5DA, 0x5DD, 0x5DF, 0x5E3, 0x5E5})},  // no final forms
      {"glyphs-georgian", range(0x10D0, 0x10F0)},                               // Mkhedruli
      {"glyphs-armenian", range(0x531, 0x556)},                                 // capitals
      {"glyphs-thai", range(0xE01, 0xE2E)},                                     // consonants
      {"glyphs-devanagari", range(0x915, 0x939)},                               // consonants
  };
  return s;
}

// Handwriting-style fonts (by install folder of their Debian package) form a
// held-out domain of their own instead of joining glyphs-latin.
bool is_handwriting(const fs::path& p) {
  static const std::vector<std::string> dirs = {"fifthhorseman", "bwht",        "breip",        "humor-sans",
                                                "femkeklaver",   "comic-neue",  "dancingscript"};
  std::string parent = p.parent_path().filename().string();
  return std::find(dirs.begin(), dirs.end(), parent) != dirs.end();
}

std::string utf8(char32_t c) {
  std::string s;
  if (c < 0x80) s += static_cast<char>(c);
  else if (c < 0x800) s += static_cast<char>(0xC0 | (c >> 6)), s += static_cast<char>(0x80 | (c & 0x3F));
  else if (c < 0x10000)
    s += static_cast<char>(0xE0 | (c >> 12)), s += static_cast<char>(0x80 | ((c >> 6) & 0x3F)),
        s += static_cast<char>(0x80 | (c & 0x3F));
  else
    s += static_cast<char>(0xF0 | (c >> 18)), s += static_cast<char>(0x80 | ((c >> 12) & 0x3F)),
        s += static_cast<char>(0x80 | ((c >> 6) & 0x3F)), s += static_cast<char>(0x80 | (c & 0x3F));
  return s;
}

constexpr int kRenderPx = 64;  // render large, then fit the ink into the 32x32 canvas
constexpr int kInkBox = 26;

// Renders the whole alphabet of a script; empty when the face lacks a glyph
// or one renders blank (fonts that map letters to nothing visible).
std::vector<uint8_t> render_alphabet(FT_Face face, const Script& script) {
  for (char32_t c : script.chars)
    if (FT_Get_Char_Index(face, c) == 0) return {};
  const size_t px = static_cast<size_t>(kPackedSize) * kPackedSize;
  std::vector<uint8_t> out(px * script.chars.size()), plane;
  for (size_t k = 0; k < script.chars.size(); ++k) {
    if (FT_Load_Char(face, script.chars[k], FT_LOAD_RENDER | FT_LOAD_NO_BITMAP)) return {};
    const FT_Bitmap& bm = face->glyph->bitmap;
    if (bm.rows == 0 || bm.width == 0) return {};
    plane.assign(static_cast<size_t>(bm.rows) * bm.width, 0);
    for (unsigned y = 0; y < bm.rows; ++y) {
      const unsigned char* row = bm.buffer + static_cast<ptrdiff_t>(y) * bm.pitch;
      for (unsigned x = 0; x < bm.width; ++x) {
        uint8_t v = bm.pixel_mode == FT_PIXEL_MODE_MONO ? ((row[x >> 3] >> (7 - (x & 7))) & 1) * 255 : row[x];
        plane[static_cast<size_t>(y) * bm.width + x] = v;
      }
    }
    if (!img::fit_ink(plane.data(), static_cast<int>(bm.rows), static_cast<int>(bm.width), kPackedSize, kInkBox,
                      out.data() + k * px))
      return {};
  }
  return out;
}

bool is_font_file(const fs::path& p) {
  static const std::set<std::string> ext = {".ttf", ".otf", ".ttc", ".t1", ".pfb", ".pfa"};
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), ::tolower);
  return ext.count(e) > 0;
}

}  // namespace

Source glyph_source() {
  Source s;
  s.name = "glyphs";
  for (const auto& sc : scripts()) s.domains.push_back(sc.domain);
  s.domains.insert(s.domains.begin() + 1, "glyphs-handwriting");
  s.description = "characters rendered with FreeType from the installed Debian font packages";
  s.pack = [](const PackOptions& opt, const std::vector<std::string>& wanted) {
    std::vector<fs::path> files;
    std::error_code ec;
    if (!fs::is_directory(opt.font_dir)) throw DataError("font directory '" + opt.font_dir.string() + "' does not exist");
    for (auto it = fs::recursive_directory_iterator(opt.font_dir, ec); it != fs::recursive_directory_iterator(); it.increment(ec))
      if (it->is_regular_file() && is_font_file(it->path())) files.push_back(it->path());
    std::sort(files.begin(), files.end());  // determinism: the first file of a family/style wins

    FT_Library lib;
    if (FT_Init_FreeType(&lib)) throw DataError("cannot initialise FreeType");
    std::unique_ptr<FT_LibraryRec_, decltype(&FT_Done_FreeType)> lib_guard(lib, FT_Done_FreeType);

    std::map<std::string, ImageSet> sets;
    std::map<std::string, std::set<std::vector<uint8_t>>> seen_alphabets;  // identical designs under other names
    std::map<std::string, std::set<std::string>> packages;  // per domain
    auto set_for = [&](const std::string& domain, const Script& sc) -> ImageSet& {
      auto [it, fresh] = sets.try_emplace(domain);
      if (fresh) {
        it->second.name = domain;
        it->second.group_kind = "font_family";
        for (char32_t c : sc.chars) it->second.class_names.push_back(utf8(c));
      }
      return it->second;
    };
    std::set<std::string> seen_faces;
    for (const auto& file : files) {
      FT_Face probe;
      if (FT_New_Face(lib, file.c_str(), -1, &probe)) {
        if (opt.skip_bad) continue;
        throw DataError("font file '" + file.string() + "' cannot be opened by FreeType (use --skip-bad to skip it)");
      }
      FT_Long faces = probe->num_faces;
      FT_Done_Face(probe);
      for (FT_Long fi = 0; fi < faces; ++fi) {
        FT_Face face;
        if (FT_New_Face(lib, file.c_str(), fi, &face)) {
          if (opt.skip_bad) continue;
          throw DataError("font file '" + file.string() + "' face " + std::to_string(fi) + " cannot be opened by FreeType");
        }
        std::unique_ptr<FT_FaceRec_, decltype(&FT_Done_Face)> guard(face, FT_Done_Face);
        if (!FT_IS_SCALABLE(face) || !face->family_name) continue;
        if (FT_Select_Charmap(face, FT_ENCODING_UNICODE)) continue;  // symbol fonts
        std::string family = face->family_name;
        std::string key = family + "|" + (face->style_name ? face->style_name : "");
        if (!seen_faces.insert(key).second) continue;
        if (FT_Set_Pixel_Sizes(face, 0, kRenderPx)) continue;
        bool hand = is_handwriting(file);
        for (const auto& sc : scripts()) {
          std::string domain = sc.domain;
          if (hand) {
            if (domain != "glyphs-latin") continue;
            domain = "glyphs-handwriting";
          }
          if (std::find(wanted.begin(), wanted.end(), domain) == wanted.end()) continue;
          std::vector<uint8_t> alphabet = render_alphabet(face, sc);
          if (alphabet.empty() || !seen_alphabets[domain].insert(alphabet).second) continue;
          ImageSet& set = set_for(domain, sc);
          const size_t px = static_cast<size_t>(kPackedSize) * kPackedSize;
          for (size_t k = 0; k < sc.chars.size(); ++k)
            set.add(alphabet.data() + k * px, static_cast<int64_t>(k), Split::Train, family);
          if (std::string pkg = debian_owner(file.string()); !pkg.empty()) packages[domain].insert(pkg);
        }
      }
    }
    std::vector<ImageSet> out;
    for (const auto& d : wanted) {
      auto it = sets.find(d);
      if (it == sets.end() || it->second.size() == 0)
        throw DataError("no installed font covers every character of domain '" + d + "' under '" + opt.font_dir.string() +
                        "' (run tools/setup to install the font packages)");
      ImageSet& set = it->second;
      std::string pkg_list, versions;
      for (const auto& p : packages[d]) {
        pkg_list += (pkg_list.empty() ? "" : ",") + p;
        versions += (versions.empty() ? "" : ",") + p + "=" + debian_version(p);
      }
      set.split.assign(set.size(), 0);
      split_by_group(set, opt.seed, opt.test_fraction);
      set.prov = {pkg_list, versions, "per font package (OFL-1.1, GPL with font exception, Apache-2.0, LPPL, ...)",
                  opt.font_dir.string(),
                  "one image per font face and character: rendered at 64 px, ink fitted into 26x26 and centred on 32x32, white on black",
                  "seeded split by font family, 20% of families test"};
      out.push_back(std::move(set));
    }
    return out;
  };
  return s;
}

}  // namespace zoobench::detail
