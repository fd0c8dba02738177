#include "sources.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <mutex>
#include <set>

#include "zoobench/error.h"
#include "zoobench/io.h"
#include "zoobench/random.h"
#include "zoobench/version.h"

namespace zoobench {
namespace fs = std::filesystem;

const std::vector<Source>& sources() {
  static const std::vector<Source> all = {
      detail::fashion_mnist_source(), detail::mnist_source(),         detail::opencv_digits_source(),
      detail::optdigits_source(),     detail::glyph_source(),         detail::emoji_source("google"),
      detail::emoji_source("twitter"), detail::openmoji_source(),
  };
  return all;
}

std::vector<std::string> builtin_domains() {
  std::vector<std::string> d;
  for (const auto& s : sources()) d.insert(d.end(), s.domains.begin(), s.domains.end());
  return d;
}

std::vector<std::string> expand_domains(const std::vector<std::string>& names) {
  std::vector<std::string> known = builtin_domains(), out;
  for (const auto& n : names) {
    if (n == "all") {
      for (const auto& k : known)
        if (std::find(out.begin(), out.end(), k) == out.end()) out.push_back(k);
      continue;
    }
    if (std::find(known.begin(), known.end(), n) == known.end()) {
      std::string all;
      for (const auto& k : known) all += (all.empty() ? "" : ", ") + k;
      throw DataError("unknown domain '" + n + "' (known: all, " + all + ")");
    }
    if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
  }
  return out;
}

fs::path default_raw_dir() {
  if (const char* env = std::getenv("ZOOBENCH_RAW_DIR"); env && *env) return env;
  // tools/fetch-data fills the checkout's cache, wherever the binary is run from.
  fs::path in_checkout = fs::path(ZOOBENCH_SOURCE_DIR) / ".cache" / "raw";
  if (fs::exists(in_checkout)) return in_checkout;
  return ".cache/raw";
}

namespace detail {

void split_stratified(ImageSet& set, uint64_t seed, double fraction) {
  std::vector<std::vector<size_t>> by_class(set.class_names.size());
  for (size_t i = 0; i < set.size(); ++i) by_class[set.labels[i]].push_back(i);
  set.split.assign(set.size(), static_cast<uint8_t>(Split::Train));
  for (size_t c = 0; c < by_class.size(); ++c) {
    Rng rng(derive_seed(seed, set.name, c));
    rng.shuffle(by_class[c]);
    size_t n_test = static_cast<size_t>(std::lround(fraction * by_class[c].size()));
    for (size_t k = 0; k < n_test; ++k) set.split[by_class[c][k]] = static_cast<uint8_t>(Split::Test);
  }
}

void split_by_group(ImageSet& set, uint64_t seed, double fraction) {
  std::vector<std::string> groups(set.groups);
  std::sort(groups.begin(), groups.end());
  groups.erase(std::unique(groups.begin(), groups.end()), groups.end());
  Rng rng(derive_seed(seed, set.name + "/groups"));
  rng.shuffle(groups);
  size_t n_test = std::max<size_t>(1, static_cast<size_t>(std::lround(fraction * groups.size())));
  std::set<std::string> test(groups.begin(), groups.begin() + std::min(n_test, groups.size()));
  for (size_t i = 0; i < set.size(); ++i)
    set.split[i] = static_cast<uint8_t>(test.count(set.groups[i]) ? Split::Test : Split::Train);
}

std::string debian_version(const std::string& package) {
  static std::mutex mu;
  static std::map<std::string, std::string> versions;
  static bool loaded = false;
  std::lock_guard<std::mutex> lock(mu);
  if (!loaded) {
    std::ifstream in("/var/lib/dpkg/status");
    std::string line, pkg, status;
    while (std::getline(in, line)) {
      if (line.rfind("Package: ", 0) == 0) pkg = line.substr(9), status.clear();
      else if (line.rfind("Status: ", 0) == 0) status = line.substr(8);
      else if (line.rfind("Version: ", 0) == 0 && status.find("installed") != std::string::npos &&
               status.find("not-installed") == std::string::npos)
        versions[pkg] = line.substr(9);
    }
    loaded = true;
  }
  auto it = versions.find(package);
  return it == versions.end() ? "" : it->second;
}

std::string debian_owner(const std::string& path) {
  static std::mutex mu;
  static std::map<std::string, std::string> owner;
  static bool loaded = false;
  std::lock_guard<std::mutex> lock(mu);
  if (!loaded) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/var/lib/dpkg/info", ec)) {
      if (e.path().extension() != ".list") continue;
      std::string pkg = e.path().stem().string();
      pkg = pkg.substr(0, pkg.find(':'));  // strip ":amd64"
      std::ifstream in(e.path());
      std::string line;
      while (std::getline(in, line))
        if (line.rfind("/usr/share/fonts/", 0) == 0 || line.rfind("/usr/share/datasets/", 0) == 0) owner[line] = pkg;
    }
    loaded = true;
  }
  std::error_code ec;
  fs::path real = fs::canonical(path, ec);
  for (const fs::path& p : {fs::path(path), real}) {
    auto it = owner.find(p.string());
    if (it != owner.end()) return it->second;
  }
  return "";
}

NpmMeta npm_meta(const fs::path& dir) {
  fs::path file = dir / "package.json";
  try {
    auto j = nlohmann::json::parse(read_file(file));
    NpmMeta m;
    m.name = j.value("name", "");
    m.version = j.value("version", "");
    if (j.contains("license") && j["license"].is_string()) m.license = j["license"].get<std::string>();
    return m;
  } catch (const nlohmann::json::exception& e) {
    throw DataError("'" + file.string() + "': " + e.what());
  } catch (const IoError& e) {
    throw DataError(e.what());
  }
}

fs::path npm_dir(const PackOptions& opt, const std::string& spec) {
  fs::path d = opt.raw_dir / "npm" / spec;
  if (!fs::exists(d / "package.json"))
    throw DataError("npm package " + spec + " is not unpacked at '" + d.string() + "' (run tools/fetch-data)");
  return d;
}

}  // namespace detail
}  // namespace zoobench
