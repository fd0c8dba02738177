// Colour emoji (npm emoji-datasource-<vendor>, 64x64 PNG) and OpenMoji line
// drawings (npm openmoji, black SVG), labelled by their Unicode subcategory.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>

#include "image_ops.h"
#include "sources.h"
#include "zoobench/error.h"
#include "zoobench/io.h"

namespace zoobench::detail {
namespace fs = std::filesystem;

namespace {

constexpr size_t kMinPerClass = 10;

nlohmann::json load_json(const fs::path& file) {
  try {
    return nlohmann::json::parse(read_file(file));
  } catch (const std::exception& e) {
    throw DataError("'" + file.string() + "': " + e.what());
  }
}

struct Item {
  fs::path file;
  std::string label, group;
};

// Keeps labels with >= kMinPerClass items; class ids follow sorted label names.
std::vector<std::string> keep_frequent(std::vector<Item>& items) {
  std::map<std::string, size_t> count;
  for (const auto& it : items) count[it.label]++;
  std::vector<std::string> names;
  for (const auto& [k, n] : count)
    if (n >= kMinPerClass) names.push_back(k);
  items.erase(std::remove_if(items.begin(), items.end(),
                             [&](const Item& it) { return count[it.label] < kMinPerClass; }),
              items.end());
  return names;
}

// A field as text whatever its JSON type ("skintone" is "" or a number).
std::string text(const nlohmann::json& e, const char* key) {
  auto it = e.find(key);
  if (it == e.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

int64_t index_of(const std::vector<std::string>& names, const std::string& s) {
  return std::lower_bound(names.begin(), names.end(), s) - names.begin();
}

}  // namespace

Source emoji_source(const std::string& vendor) {
  Source s;
  s.name = "emoji-" + vendor;
  s.domains = {"emoji-" + vendor};
  s.description = "colour emoji from npm emoji-datasource-" + vendor + "@16.0.0 (64x64 PNG), labelled by subcategory";
  s.pack = [vendor](const PackOptions& opt, const std::vector<std::string>&) {
    fs::path dir = npm_dir(opt, "emoji-datasource-" + vendor + "@16.0.0");
    NpmMeta meta = npm_meta(dir);
    nlohmann::json list = load_json(dir / "emoji.json");
    if (!list.is_array()) throw DataError("'" + (dir / "emoji.json").string() + "': expected an array");
    std::vector<Item> items;
    for (const auto& e : list) {
      // Skin-tone variants live under "skin_variations" and are never read.
      if (!e.is_object() || !e.value("has_img_" + vendor, false)) continue;
      fs::path file = dir / "img" / vendor / "64" / text(e, "image");
      if (!fs::exists(file)) continue;
      items.push_back({file, text(e, "subcategory"), text(e, "unified")});
    }
    ImageSet set;
    set.name = "emoji-" + vendor;
    set.channels = 3;
    set.group_kind = "unicode_codepoints";
    set.class_names = keep_frequent(items);
    for (const auto& it : items) {
      img::Decoded d = img::decode_png(img::read_bytes(it.file.c_str()), it.file.c_str());
      auto rgb = img::rgba_over_white_planar(d.rgba.data(), d.h, d.w);
      auto small = img::resize(rgb, 3, d.h, d.w, set.height, set.width);
      set.add(small.data(), index_of(set.class_names, it.label), Split::Train, it.group);
    }
    split_stratified(set, opt.seed, opt.test_fraction);
    set.prov = {"emoji-datasource-" + vendor + " (npm)", meta.version, meta.license + " (code); art: see the vendor's license",
                dir.string(),
                vendor + " emoji art composited onto white, 64x64 resized to 32x32; classes = emoji subcategories with >= 10 images",
                "seeded stratified split, 20% test"};
    return std::vector<ImageSet>{std::move(set)};
  };
  return s;
}

Source openmoji_source() {
  Source s;
  s.name = "openmoji";
  s.domains = {"openmoji-line"};
  s.description = "OpenMoji black line drawings from npm openmoji@17.0.0 (SVG, rasterised with librsvg)";
  s.pack = [](const PackOptions& opt, const std::vector<std::string>&) {
    fs::path dir = npm_dir(opt, "openmoji@17.0.0");
    NpmMeta meta = npm_meta(dir);
    nlohmann::json list = load_json(dir / "data" / "openmoji.json");
    if (!list.is_array()) throw DataError("'" + (dir / "data" / "openmoji.json").string() + "': expected an array");
    std::vector<Item> items;
    for (const auto& e : list) {
      if (!text(e, "skintone").empty()) continue;  // skin-tone variants
      std::string hex = text(e, "hexcode");
      fs::path file = dir / "black" / "svg" / (hex + ".svg");
      if (hex.empty() || !fs::exists(file)) continue;
      items.push_back({file, text(e, "subgroups"), hex});
    }
    ImageSet set;
    set.name = "openmoji-line";
    set.group_kind = "unicode_codepoints";
    set.class_names = keep_frequent(items);
    for (const auto& it : items) {
      img::Decoded d = img::render_svg(it.file.c_str(), 2 * kPackedSize);
      auto grey = img::to_grey(img::rgba_over_white_planar(d.rgba.data(), d.h, d.w), d.h, d.w);
      auto small = img::resize(grey, 1, d.h, d.w, set.height, set.width);
      set.add(small.data(), index_of(set.class_names, it.label), Split::Train, it.group);
    }
    split_stratified(set, opt.seed, opt.test_fraction);
    set.prov = {"openmoji (npm)", meta.version, "CC-BY-SA-4.0", dir.string(),
                "OpenMoji black SVGs rendered at 64 px over white, grey, resized to 32x32; classes = subgroups with >= 10 items",
                "seeded stratified split, 20% test"};
    return std::vector<ImageSet>{std::move(set)};
  };
  return s;
}

}  // namespace zoobench::detail
