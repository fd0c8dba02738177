// --image-folder importer: DIR/<class>/<image> (seeded split) or
// DIR/train/<class>/... + DIR/test/<class>/... (given split). PNG and JPEG.
#include <algorithm>
#include <map>

#include "image_ops.h"
#include "sources.h"
#include "zoobench/error.h"

namespace zoobench {
namespace fs = std::filesystem;

namespace {

bool is_image(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), ::tolower);
  return e == ".png" || e == ".jpg" || e == ".jpeg";
}

std::map<std::string, std::vector<fs::path>> scan(const fs::path& dir) {
  std::map<std::string, std::vector<fs::path>> by_class;
  for (const auto& c : fs::directory_iterator(dir)) {
    if (!c.is_directory()) continue;
    auto& files = by_class[c.path().filename().string()];
    for (const auto& f : fs::directory_iterator(c.path()))
      if (f.is_regular_file() && is_image(f.path())) files.push_back(f.path());
    std::sort(files.begin(), files.end());
  }
  return by_class;
}

}  // namespace

ImageSet import_image_folder(const std::string& name, const fs::path& dir, int channels, const PackOptions& opt,
                             size_t* skipped) {
  if (!fs::is_directory(dir)) throw DataError("image folder '" + dir.string() + "' does not exist");
  if (channels != 1 && channels != 3) throw DataError("--channels must be 1 or 3");
  bool given_split = fs::is_directory(dir / "train") && fs::is_directory(dir / "test");
  std::map<std::string, std::vector<fs::path>> parts[2];
  if (given_split) {
    parts[0] = scan(dir / "train");
    parts[1] = scan(dir / "test");
  } else {
    parts[0] = scan(dir);
  }
  ImageSet set;
  set.name = name;
  set.channels = channels;
  set.group_kind = "file";
  std::map<std::string, int64_t> ids;
  // As torchvision's ImageFolder: a class folder without a single image is an error, not a silent drop.
  for (int s = 0; s < 2; ++s)
    for (auto& [cls, files] : parts[s]) {
      if (files.empty() && !opt.skip_bad)
        throw DataError("image folder '" + (given_split ? dir / (s ? "test" : "train") : dir).string() + "': class folder '" + cls +
                        "' has no PNG or JPEG images (remove it, or pass --skip-bad to leave it out)");
      if (!files.empty()) ids.emplace(cls, 0);
    }
  for (auto& [cls, id] : ids) id = static_cast<int64_t>(set.class_names.size()), set.class_names.push_back(cls);
  if (set.class_names.size() < 2)
    throw DataError("image folder '" + dir.string() + "' needs at least 2 class sub-folders with PNG or JPEG images");
  size_t bad = 0;
  for (int s = 0; s < 2; ++s)
    for (auto& [cls, files] : parts[s])
      for (const auto& f : files) {
        img::Decoded d;
        try {
          d = img::decode_image_file(f.c_str());
        } catch (const DataError&) {
          if (!opt.skip_bad) throw;
          ++bad;
          continue;
        }
        auto rgb = img::rgba_over_white_planar(d.rgba.data(), d.h, d.w);
        std::vector<uint8_t> planes = channels == 1 ? img::to_grey(rgb, d.h, d.w) : rgb;
        auto small = img::resize(planes, channels, d.h, d.w, set.height, set.width);
        set.add(small.data(), ids.at(cls), s ? Split::Test : Split::Train, fs::relative(f, dir).string());
      }
  if (skipped) *skipped = bad;
  if (!given_split) detail::split_stratified(set, opt.seed, opt.test_fraction);
  set.prov.package = "user";
  set.prov.source_path = fs::absolute(dir).string();
  set.prov.description = "image folder imported with --image-folder, resized to 32x32";
  set.prov.split_rule = given_split ? "given train/ and test/ folders" : "seeded stratified split";
  return set;
}

}  // namespace zoobench
