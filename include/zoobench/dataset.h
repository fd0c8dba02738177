// Packed data sets: every domain is one HDF5 file holding uint8 images
// N x C x H x W, int64 labels, class names, a train/test split and its
// provenance. Pure C++ (no torch): see loader.h for tensors.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace zoobench {

// Version of the packed-file layout; readers refuse any other.
inline constexpr int64_t kPackedSchemaVersion = 1;
// Every built-in domain is stored at this resolution.
inline constexpr int kPackedSize = 32;

enum class Split : uint8_t { Train = 0, Test = 1 };

struct Provenance {
  std::string package;      // Debian or npm package the raw data came from
  std::string version;      // its version
  std::string license;
  std::string source_path;  // file or folder read
  std::string description;
  std::string split_rule;   // how train/test was decided
};

struct ImageSet {
  std::string name;  // domain name, e.g. "fashion-mnist"
  int channels = 1, height = kPackedSize, width = kPackedSize;
  std::vector<uint8_t> images;  // N*C*H*W, row-major
  std::vector<int64_t> labels;  // N, in [0, classes)
  std::vector<uint8_t> split;   // N, Split values
  std::vector<std::string> class_names;
  std::vector<std::string> groups;  // optional per image (font family, emoji code)
  std::string group_kind;           // what groups hold, e.g. "font_family"
  Provenance prov;

  size_t size() const { return labels.size(); }
  size_t image_bytes() const { return static_cast<size_t>(channels) * height * width; }
  const uint8_t* image(size_t i) const { return images.data() + i * image_bytes(); }
  // Appends one image (already channels x height x width) with its label.
  void add(const uint8_t* pixels, int64_t label, Split s, std::string group = {});
  // Throws DataError if sizes disagree or labels fall outside the classes.
  void validate() const;
  // Per class: (train count, test count).
  std::vector<std::pair<size_t, size_t>> class_counts() const;
};

// Header of a packed file, read without loading the images.
struct PackedInfo {
  std::filesystem::path path;
  std::string name;
  int64_t images = 0, classes = 0, train = 0, test = 0;
  int channels = 0, height = 0, width = 0;
  std::string group_kind;
  int64_t groups = 0;  // distinct groups (e.g. font families)
  Provenance prov;
};

// Atomic: the file appears complete or not at all.
void write_packed(const ImageSet& set, const std::filesystem::path& path);
// Throws DataError for a missing file, a wrong or older schema_version, or
// inconsistent arrays (naming the file and what is wrong).
ImageSet read_packed(const std::filesystem::path& path);
PackedInfo read_packed_info(const std::filesystem::path& path);

// The data directory: --data-dir if given, else $ZOOBENCH_DATA_DIR, else the config's.
std::filesystem::path resolve_data_dir(const std::string& cli_value, const std::string& config_value);
std::filesystem::path packed_path(const std::filesystem::path& data_dir, const std::string& domain);

}  // namespace zoobench
