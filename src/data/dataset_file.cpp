#include <cstdlib>
#include <set>

#include "zoobench/dataset.h"
#include "zoobench/error.h"
#include "zoobench/h5.h"
#include "zoobench/io.h"
#include "zoobench/version.h"

namespace zoobench {
namespace fs = std::filesystem;

void ImageSet::add(const uint8_t* pixels, int64_t label, Split s, std::string group) {
  images.insert(images.end(), pixels, pixels + image_bytes());
  labels.push_back(label);
  split.push_back(static_cast<uint8_t>(s));
  if (!group_kind.empty()) groups.push_back(std::move(group));
}

void ImageSet::validate() const {
  auto bad = [&](const std::string& m) { throw DataError("data set '" + name + "': " + m); };
  if (channels != 1 && channels != 3) bad("channels must be 1 or 3, got " + std::to_string(channels));
  if (height <= 0 || width <= 0) bad("bad resolution");
  if (images.size() != size() * image_bytes()) bad("image bytes do not match the label count");
  if (split.size() != size()) bad("split has " + std::to_string(split.size()) + " entries for " + std::to_string(size()) + " images");
  if (!group_kind.empty() && groups.size() != size()) bad("groups do not match the image count");
  if (class_names.size() < 2) bad("needs at least 2 classes, has " + std::to_string(class_names.size()));
  for (size_t i = 0; i < size(); ++i) {
    if (labels[i] < 0 || labels[i] >= static_cast<int64_t>(class_names.size()))
      bad("label " + std::to_string(labels[i]) + " of image " + std::to_string(i) + " is outside [0, " +
          std::to_string(class_names.size()) + ")");
    if (split[i] > 1) bad("split value of image " + std::to_string(i) + " is not 0 (train) or 1 (test)");
  }
}

std::vector<std::pair<size_t, size_t>> ImageSet::class_counts() const {
  std::vector<std::pair<size_t, size_t>> c(class_names.size());
  for (size_t i = 0; i < size(); ++i) (split[i] ? c[labels[i]].second : c[labels[i]].first)++;
  return c;
}

void write_packed(const ImageSet& set, const fs::path& path) {
  set.validate();
  AtomicPath out(path);
  {
    h5::File f = h5::File::create(out.tmp());
    f.set_attr("schema_version", kPackedSchemaVersion);
    f.set_attr("zoobench_version", ZOOBENCH_VERSION);
    f.set_attr("git_sha", ZOOBENCH_GIT_SHA);
    f.set_attr("created_utc", utc_now());
    f.set_attr("domain", set.name);
    f.set_attr("channels", static_cast<int64_t>(set.channels));
    f.set_attr("height", static_cast<int64_t>(set.height));
    f.set_attr("width", static_cast<int64_t>(set.width));
    f.set_attr("source_package", set.prov.package);
    f.set_attr("source_version", set.prov.version);
    f.set_attr("license", set.prov.license);
    f.set_attr("source_path", set.prov.source_path);
    f.set_attr("description", set.prov.description);
    f.set_attr("split_rule", set.prov.split_rule);
    f.set_attr("group_kind", set.group_kind);
    hsize_t n = set.size();
    f.write("images", set.images.data(),
            {n, static_cast<hsize_t>(set.channels), static_cast<hsize_t>(set.height), static_cast<hsize_t>(set.width)})
        .set_attr("description", "uint8 pixels, N x C x H x W, 0 = black");
    f.write("labels", set.labels).set_attr("description", "class index into class_names");
    f.write("split", set.split).set_attr("description", "0 = train, 1 = test");
    f.write_strings("class_names", set.class_names);
    if (!set.group_kind.empty()) f.write_strings("groups", set.groups).set_attr("description", set.group_kind);
    f.close();
  }
  out.commit();
}

namespace {

h5::File open_checked(const fs::path& path) {
  if (!fs::exists(path)) throw DataError("packed data set '" + path.string() + "' does not exist (run `zoobench data pack`)");
  h5::File f = [&] {
    try {
      return h5::File::open(path);
    } catch (const IoError& e) {
      throw DataError("'" + path.string() + "' is not a readable HDF5 file: " + e.what());
    }
  }();
  if (!f.has_attr("schema_version"))
    throw DataError("'" + path.string() + "' is not a zoobench packed data set (no schema_version attribute)");
  int64_t v = f.attr_int("schema_version");
  if (v != kPackedSchemaVersion)
    throw DataError("'" + path.string() + "' has packed schema_version " + std::to_string(v) + ", this zoobench reads " +
                    std::to_string(kPackedSchemaVersion) + "; repack it with `zoobench data pack --force`");
  for (const char* key : {"images", "labels", "split", "class_names"})
    if (!f.has(key)) throw DataError("'" + path.string() + "' lacks the dataset /" + std::string(key));
  return f;
}

Provenance read_prov(const h5::File& f) {
  Provenance p;
  p.package = f.attr_string("source_package");
  p.version = f.attr_string("source_version");
  p.license = f.attr_string("license");
  p.source_path = f.attr_string("source_path");
  p.description = f.attr_string("description");
  p.split_rule = f.attr_string("split_rule");
  return p;
}

}  // namespace

ImageSet read_packed(const fs::path& path) {
  h5::File f = open_checked(path);
  ImageSet s;
  try {
    s.name = f.attr_string("domain");
    s.prov = read_prov(f);
    s.group_kind = f.attr_string("group_kind");
    auto shape = f.dataset("images").shape();
    if (shape.size() != 4) throw DataError("'" + path.string() + "': /images must be N x C x H x W");
    s.channels = static_cast<int>(shape[1]);
    s.height = static_cast<int>(shape[2]);
    s.width = static_cast<int>(shape[3]);
    if (s.height != kPackedSize || s.width != kPackedSize || (s.channels != 1 && s.channels != 3))
      throw DataError("'" + path.string() + "': /images is N x " + std::to_string(shape[1]) + " x " + std::to_string(shape[2]) +
                      " x " + std::to_string(shape[3]) + ", the schema says N x (1 or 3) x " + std::to_string(kPackedSize) +
                      " x " + std::to_string(kPackedSize));
    // HDF5 would convert any number silently (floats clipped to bytes): the types are part of the schema.
    for (auto [key, want] : {std::pair<const char*, const char*>{"images", "uint8"}, {"split", "uint8"}}) {
      const std::string got = f.dataset(key).type_name();
      if (got != want) throw DataError("'" + path.string() + "': /" + key + " is " + got + ", the schema says " + want);
    }
    if (f.dataset("labels").type_name().rfind("int", 0) != 0)
      throw DataError("'" + path.string() + "': /labels is " + f.dataset("labels").type_name() + ", the schema says int64");
    s.images = f.dataset("images").read<uint8_t>();
    s.labels = f.dataset("labels").read<int64_t>();
    s.split = f.dataset("split").read<uint8_t>();
    s.class_names = f.dataset("class_names").read_strings();
    if (!s.group_kind.empty()) s.groups = f.dataset("groups").read_strings();
  } catch (const IoError& e) {
    throw DataError("'" + path.string() + "': " + e.what());
  }
  try {
    s.validate();
  } catch (const DataError& e) {
    throw DataError("'" + path.string() + "': " + e.what());
  }
  return s;
}

PackedInfo read_packed_info(const fs::path& path) {
  h5::File f = open_checked(path);
  PackedInfo info;
  info.path = path;
  info.name = f.attr_string("domain");
  info.prov = read_prov(f);
  info.group_kind = f.attr_string("group_kind");
  auto shape = f.dataset("images").shape();
  if (shape.size() != 4) throw DataError("'" + path.string() + "': /images must be N x C x H x W");
  info.images = static_cast<int64_t>(shape[0]);
  info.channels = static_cast<int>(shape[1]);
  info.height = static_cast<int>(shape[2]);
  info.width = static_cast<int>(shape[3]);
  info.classes = static_cast<int64_t>(f.dataset("class_names").size());
  for (uint8_t v : f.dataset("split").read<uint8_t>()) (v ? info.test : info.train)++;
  if (!info.group_kind.empty()) {
    auto g = f.dataset("groups").read_strings();
    info.groups = static_cast<int64_t>(std::set<std::string>(g.begin(), g.end()).size());
  }
  return info;
}

fs::path resolve_data_dir(const std::string& cli_value, const std::string& config_value) {
  if (!cli_value.empty()) return cli_value;
  if (const char* env = std::getenv("ZOOBENCH_DATA_DIR"); env && *env) return env;
  return config_value.empty() ? "data" : config_value;
}

fs::path packed_path(const fs::path& data_dir, const std::string& domain) { return data_dir / (domain + ".h5"); }

}  // namespace zoobench
