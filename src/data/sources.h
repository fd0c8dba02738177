// Internal to src/data: the built-in sources and helpers they share.
#pragma once
#include <map>
#include <string>

#include "zoobench/pack.h"

namespace zoobench::detail {

Source fashion_mnist_source();
Source mnist_source();
Source opencv_digits_source();
Source optdigits_source();
Source glyph_source();
Source emoji_source(const std::string& vendor);  // "google" or "twitter"
Source openmoji_source();

// Marks round(fraction * n_c) images of each class as test, seeded per class.
void split_stratified(ImageSet& set, uint64_t seed, double fraction);
// Marks whole groups (e.g. font families) as test so test groups are unseen.
void split_by_group(ImageSet& set, uint64_t seed, double fraction);

// Installed Debian package version ("" when not installed).
std::string debian_version(const std::string& package);
// Which installed Debian package owns a file ("" when none); from /var/lib/dpkg/info.
std::string debian_owner(const std::string& path);
// npm package.json fields of an unpacked package directory.
struct NpmMeta {
  std::string name, version, license;
};
NpmMeta npm_meta(const std::filesystem::path& dir);
// <raw_dir>/npm/<spec>, or DataError telling to run tools/fetch-data.
std::filesystem::path npm_dir(const PackOptions& opt, const std::string& spec);

}  // namespace zoobench::detail
