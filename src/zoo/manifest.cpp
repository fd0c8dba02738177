#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>

#include "zoobench/config.h"
#include "zoobench/error.h"
#include "zoobench/io.h"
#include "zoobench/model.h"

namespace zoobench {
namespace fs = std::filesystem;

namespace {

std::string finish_hex(EVP_MD_CTX* ctx) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) out += hex[md[i] >> 4], out += hex[md[i] & 15];
  return out;
}

EVP_MD_CTX* start_sha256() {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  return ctx;
}

}  // namespace

std::string sha256_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open '" + path.string() + "'");
  EVP_MD_CTX* ctx = start_sha256();
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(in.gcount()));
  }
  return finish_hex(ctx);
}

std::string read_verified(const fs::path& file, const std::string& sha256, const std::string& who) {
  std::string bytes = read_file(file);
  if (sha256.empty()) return bytes;
  EVP_MD_CTX* ctx = start_sha256();
  EVP_DigestUpdate(ctx, bytes.data(), bytes.size());
  if (finish_hex(ctx) != sha256)
    throw DataError(who + ": SHA-256 of '" + file.string() +
                    "' differs from the manifest's (file changed or corrupt; `zoobench zoo pin` records a file you trust)");
  return bytes;
}

namespace {

template <class T>
T get(const YAML::Node& n, const char* key, const std::string& who, bool required, T fallback = T()) {
  if (!n[key]) {
    if (required) throw ConfigError(who + ": missing key '" + key + "'");
    return fallback;
  }
  try {
    return n[key].as<T>();
  } catch (const YAML::Exception&) {
    throw ConfigError(who + ": key '" + std::string(key) + "' has the wrong type");
  }
}

void load_entries(const YAML::Node& doc, const fs::path& file, Manifest& m);

}  // namespace

Manifest Manifest::load(const fs::path& file) {
  Manifest m;
  m.file = file;
  m.dir = file.parent_path();
  YAML::Node doc;
  try {
    doc = YAML::LoadFile(file.string());
  } catch (const YAML::BadFile&) {
    throw ConfigError("zoo manifest '" + file.string() + "' does not exist (run `zoobench zoo train`)");
  } catch (const YAML::Exception& e) {
    throw ConfigError(file.string() + ":" + std::to_string(e.mark.line + 1) + ": YAML syntax error: " + e.msg);
  }
  if (!doc.IsMap() || !doc["models"] || !doc["models"].IsSequence())
    throw ConfigError("zoo manifest '" + file.string() + "' has no 'models' list");
  try {
    load_entries(doc, file, m);
  } catch (const YAML::Exception& e) {  // a key that is not a string, a list where a map belongs, ...
    throw ConfigError(file.string() + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  return m;
}

namespace {

void load_entries(const YAML::Node& doc, const fs::path& file, Manifest& m) {
  std::set<std::string> names;
  static const std::set<std::string> known = {"name", "format", "kind", "arch", "width", "weights", "sha256",
                                              "in_channels", "input_size", "mean", "std", "source_domains",
                                              "source_classes", "domain_index", "head_classes", "source_test_acc",
                                              "train_config", "features_method", "logits_method",
                                              "features_and_logits_method", "lgc_parameter"};
  for (size_t i = 0; i < doc["models"].size(); ++i) {
    const YAML::Node& n = doc["models"][i];
    std::string who = file.string() + ":" + std::to_string(n.Mark().line + 1) + ": models[" + std::to_string(i) + "]";
    if (!n.IsMap()) throw ConfigError(who + ": expected a map");
    for (const auto& kv : n)
      if (!known.count(kv.first.as<std::string>()))
        throw ConfigError(who + ": unknown key '" + kv.first.as<std::string>() + "'");
    ManifestEntry e;
    e.name = get<std::string>(n, "name", who, true);
    who += " ('" + e.name + "')";
    e.format = get<std::string>(n, "format", who, false, "builtin");
    e.kind = get<std::string>(n, "kind", who, false, e.format == "builtin" ? "expert" : "external");
    e.arch = get<std::string>(n, "arch", who, e.format == "builtin");
    e.width = get<int>(n, "width", who, e.format == "builtin");
    {
      std::vector<std::string> unset;
      const std::string raw = get<std::string>(n, "weights", who, true);
      e.weights = expand_env(raw, who + ": weights", &unset);
      if (!unset.empty()) e.unset_env = unset.front();
      // A variable's relative value means what it does in the shell that set it: relative to the
      // working directory, as config paths are, not to the manifest's folder.
      if (unset.empty() && raw.find("${") != std::string::npos && fs::path(e.weights).is_relative())
        e.weights = fs::absolute(e.weights).string();
    }
    // An empty `sha256:` is no digest (yaml-cpp reads it as "null"); lower case, as sha256_file writes it.
    if (n["sha256"] && !n["sha256"].IsNull()) {
      e.sha256 = get<std::string>(n, "sha256", who, false);
      std::transform(e.sha256.begin(), e.sha256.end(), e.sha256.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      if (!e.sha256.empty() &&
          (e.sha256.size() != 64 || e.sha256.find_first_not_of("0123456789abcdef") != std::string::npos))
        throw ConfigError(who + ": sha256 must be 64 hexadecimal digits (`zoobench zoo pin` writes it)");
    }
    e.in_channels = get<int>(n, "in_channels", who, true);
    e.input_size = get<int>(n, "input_size", who, false, 32);
    e.mean = get<std::vector<double>>(n, "mean", who, false);
    e.std = get<std::vector<double>>(n, "std", who, false);
    e.source_domains = get<std::vector<std::string>>(n, "source_domains", who, false);
    e.source_classes = get<std::vector<std::string>>(n, "source_classes", who, false);
    e.domain_index = get<int>(n, "domain_index", who, false, 0);
    e.head_classes = get<std::vector<int64_t>>(n, "head_classes", who, e.format == "builtin");
    e.source_test_acc = get<double>(n, "source_test_acc", who, false, -1.0);
    e.train_config = get<std::string>(n, "train_config", who, false);
    e.features_method = get<std::string>(n, "features_method", who, false, "features");
    e.logits_method = get<std::string>(n, "logits_method", who, false, "forward");
    e.features_and_logits_method = get<std::string>(n, "features_and_logits_method", who, false);
    e.lgc_parameter = get<std::string>(n, "lgc_parameter", who, false);
    if (e.input_size < 1 || e.input_size > 4096) throw ConfigError(who + ": input_size must be in [1, 4096]");
    if (e.format == "builtin" && e.input_size != 32)
      throw ConfigError(who + ": zoobench's own architectures take 32 x 32 inputs (input_size 32)");
    if (e.format == "builtin" && !e.lgc_parameter.empty())
      throw ConfigError(who + ": lgc_parameter applies to TorchScript entries (builtin ones sketch their last convolution)");
    if (!e.features_and_logits_method.empty() && (e.format != "torchscript" || e.logits_method.empty()))
      throw ConfigError(who + ": features_and_logits_method applies to TorchScript entries with a source head (logits_method)");
    if (e.in_channels != 1 && e.in_channels != 3) throw ConfigError(who + ": in_channels must be 1 or 3");
    for (double s : e.std)
      if (!(s > 0)) throw ConfigError(who + ": std values must be positive");
    if (!names.insert(e.name).second) throw ConfigError(who + ": duplicate model name");
    m.entries.push_back(std::move(e));
  }
}

}  // namespace

void Manifest::save(const fs::path& file) const {
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "zoobench_manifest" << YAML::Value << 1;
  out << YAML::Key << "models" << YAML::Value << YAML::BeginSeq;
  for (const auto& e : entries) {
    out << YAML::BeginMap;
    out << YAML::Key << "name" << YAML::Value << e.name;
    out << YAML::Key << "format" << YAML::Value << e.format;
    out << YAML::Key << "kind" << YAML::Value << e.kind;
    if (!e.arch.empty()) out << YAML::Key << "arch" << YAML::Value << e.arch << YAML::Key << "width" << YAML::Value << e.width;
    out << YAML::Key << "weights" << YAML::Value << e.weights;
    out << YAML::Key << "sha256" << YAML::Value << e.sha256;
    out << YAML::Key << "in_channels" << YAML::Value << e.in_channels;
    out << YAML::Key << "input_size" << YAML::Value << e.input_size;
    out << YAML::Key << "mean" << YAML::Value << YAML::Flow << e.mean;
    out << YAML::Key << "std" << YAML::Value << YAML::Flow << e.std;
    out << YAML::Key << "source_domains" << YAML::Value << YAML::Flow << e.source_domains;
    out << YAML::Key << "source_classes" << YAML::Value << YAML::Flow << e.source_classes;
    out << YAML::Key << "domain_index" << YAML::Value << e.domain_index;
    out << YAML::Key << "head_classes" << YAML::Value << YAML::Flow << e.head_classes;
    out << YAML::Key << "source_test_acc" << YAML::Value << e.source_test_acc;
    if (!e.train_config.empty()) out << YAML::Key << "train_config" << YAML::Value << YAML::Literal << e.train_config;
    if (e.format == "torchscript")
      out << YAML::Key << "features_method" << YAML::Value << e.features_method << YAML::Key << "logits_method"
          << YAML::Value << e.logits_method;
    if (!e.features_and_logits_method.empty())
      out << YAML::Key << "features_and_logits_method" << YAML::Value << e.features_and_logits_method;
    if (!e.lgc_parameter.empty()) out << YAML::Key << "lgc_parameter" << YAML::Value << e.lgc_parameter;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
  AtomicPath p(file);
  {
    std::ofstream f(p.tmp());
    f << "# zoobench model zoo: written by `zoobench zoo train`; weights paths are relative to this file\n"
      << out.c_str() << "\n";
    if (!f) throw IoError("cannot write '" + p.tmp().string() + "'");
  }
  p.commit();
}

OutsideZoo outside_zoo(const Manifest& manifest, const fs::path& file) {
  // Resolved, so that neither `..` nor a symbolic link leads out of the folder.
  std::error_code ec, ec_home;
  OutsideZoo o;
  o.real = fs::canonical(file, ec);
  o.home = fs::canonical(manifest.dir.empty() ? fs::path(".") : manifest.dir, ec_home);
  if (ec || ec_home)
    throw IoError("cannot resolve '" + (ec ? file : manifest.dir).string() + "': " + (ec ? ec : ec_home).message());
  o.outside = std::mismatch(o.home.begin(), o.home.end(), o.real.begin(), o.real.end()).first != o.home.end();
  return o;
}

fs::path weights_file(const Manifest& manifest, const ManifestEntry& e, const LoadRules& rules) {
  const std::string where = manifest.file.empty() ? "<manifest>" : manifest.file.string();
  const std::string who = where + ": zoo entry '" + e.name + "'";
  if (!e.unset_env.empty())
    throw ConfigError(who + ": weights '" + e.weights + "' names ${" + e.unset_env + "}, which is not set in the environment");
  const fs::path file = manifest.dir / e.weights;
  std::error_code ec;
  const bool exists = fs::exists(file, ec);
  if (ec) throw IoError(who + ": cannot look at '" + file.string() + "': " + ec.message());
  if (!exists) throw DataError(who + ": weights file '" + file.string() + "' is missing");
  if (!rules.allow_outside_zoo) {
    const OutsideZoo out = outside_zoo(manifest, file);
    if (out.outside)
      throw ConfigError(who + ": weights '" + file.string() + "' lie outside the zoo's folder '" + out.home.string() + "'" +
                        (out.real != fs::absolute(file).lexically_normal() ? " (they resolve to '" + out.real.string() + "')"
                                                                            : "") +
                        "; --allow-outside-zoo loads a zoo kept elsewhere");
  }
  if (rules.require_pinned && e.sha256.empty())
    throw ConfigError(who + ": no sha256 for '" + file.string() +
                      "': model files are code that libtorch runs, and only pinned ones are loaded; `zoobench zoo pin " +
                      where + "` records the digests of files you trust");
  return file;
}

const ManifestEntry* Manifest::find(const std::string& name) const {
  for (const auto& e : entries)
    if (e.name == name) return &e;
  return nullptr;
}

}  // namespace zoobench
