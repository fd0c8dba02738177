#include "zoobench/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <set>
#include <sstream>

#include "schema.h"
#include "zoobench/error.h"
#include "zoobench/io.h"

namespace zoobench {
namespace {
using config::Field;
using config::Kind;

// A string value keeps the YAML string tag, so the resolved config can quote
// the ones a reader would otherwise take for numbers, booleans or null (class
// names "3", "5", "8"; a domain called "no").
const char* const kStringTag = "tag:yaml.org,2002:str";

YAML::Node string_node(const std::string& s) {
  YAML::Node v(s);
  v.SetTag(kStringTag);
  return v;
}

bool reads_as_non_string(const std::string& s) {
  if (s.empty()) return true;
  static const std::set<std::string> words = {"~",   "null", "Null", "NULL", "true", "True", "TRUE", "false", "False",
                                              "FALSE", "yes", "Yes", "YES", "no",   "No",   "NO",   "on",   "On",
                                              "ON",  "off",  "Off", "OFF", ".inf", ".Inf", ".INF", "-.inf", ".nan", ".NaN"};
  if (words.count(s)) return true;
  // Numbers in any form YAML 1.1 or 1.2 reads (ints, floats, 0x / 0o, 1e3).
  const char* p = s.c_str();
  char* end = nullptr;
  std::strtod(p, &end);
  if (end && *end == '\0' && end != p) return true;
  std::strtoll(p, &end, 0);
  return end && *end == '\0' && end != p;
}

// yaml-cpp's emitter writes every scalar plain when it can; walk the tree so
// string-tagged scalars that would read back as another type get quotes.
void emit_resolved(YAML::Emitter& out, const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      out << YAML::BeginMap;
      for (const auto& kv : n) {
        out << YAML::Key << kv.first.Scalar() << YAML::Value;
        emit_resolved(out, kv.second);
      }
      out << YAML::EndMap;
      break;
    case YAML::NodeType::Sequence:
      out << YAML::BeginSeq;
      for (const auto& e : n) emit_resolved(out, e);
      out << YAML::EndSeq;
      break;
    case YAML::NodeType::Scalar:
      if (n.Tag() == kStringTag && reads_as_non_string(n.Scalar())) out << YAML::DoubleQuoted;
      out << n.Scalar();
      break;
    default: out << YAML::Null;
  }
}

struct Resolver {
  std::string file;

  std::string loc(const YAML::Mark& m) const {
    if (m.is_null()) return file;
    return file + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
  }

  [[noreturn]] void fail(const YAML::Mark& m, const std::string& path, const std::string& msg) const {
    throw ConfigError(loc(m) + ": " + (path.empty() ? "" : path + ": ") + msg);
  }

  static std::string show(const YAML::Node& n) {
    if (n.IsScalar()) return "'" + n.Scalar() + "'";
    if (n.IsSequence()) return "a list";
    if (n.IsMap()) return "a map";
    return "nothing";
  }

  static std::string range_text(const Field& f) {
    std::ostringstream s;
    s << "[" << f.lo << ", " << f.hi << "]";
    return s.str();
  }

  YAML::Node scalar(const Field& f, const YAML::Node& n, const std::string& path) const {
    if (!n.IsScalar()) fail(n.Mark(), path, std::string("expected ") + config::kind_name(f.kind) + ", got " + show(n));
    if (f.allows_all && n.Scalar() == "all") return YAML::Node("all");
    switch (f.kind) {
      case Kind::Int: {
        long long v = 0;
        if (!YAML::convert<long long>::decode(n, v))
          fail(n.Mark(), path, std::string("expected an integer") + (f.allows_all ? " or all" : "") + ", got " + show(n));
        if (v < f.lo || v > f.hi) fail(n.Mark(), path, "value " + n.Scalar() + " is out of range " + range_text(f));
        return YAML::Node(v);
      }
      case Kind::Float: {
        double v = 0;
        if (!YAML::convert<double>::decode(n, v) || !std::isfinite(v))
          fail(n.Mark(), path, "expected a finite number, got " + show(n));
        if (v < f.lo || v > f.hi) fail(n.Mark(), path, "value " + n.Scalar() + " is out of range " + range_text(f));
        return YAML::Node(v);
      }
      case Kind::Bool: {
        bool v = false;
        if (!YAML::convert<bool>::decode(n, v)) fail(n.Mark(), path, "expected true or false, got " + show(n));
        return YAML::Node(v);
      }
      case Kind::Enum: {
        for (const auto& c : f.choices)
          if (c == n.Scalar()) return YAML::Node(c);
        std::string all;
        for (const auto& c : f.choices) all += (all.empty() ? "" : ", ") + c;
        fail(n.Mark(), path, "invalid value " + show(n) + " (valid: " + all + ")");
      }
      default:
        return string_node(n.Scalar());
    }
  }

  YAML::Node resolve(const Field& f, const YAML::Node& n, const std::string& path, const YAML::Mark& parent) const {
    bool present = n.IsDefined() && !n.IsNull();
    if (!present) {
      if (f.required) fail(parent, path, "missing required key");
      if (f.kind == Kind::Map && f.optional) return YAML::Node(YAML::NodeType::Null);
      if (f.kind == Kind::Map) return resolve_map(f, YAML::Node(YAML::NodeType::Map), path, parent);
      if (f.default_yaml.empty()) return YAML::Node(YAML::NodeType::Null);
      return resolve(f, YAML::Load(f.default_yaml), path, parent);
    }
    switch (f.kind) {
      case Kind::Map: return resolve_map(f, n, path, n.Mark());
      case Kind::ListOfMaps: {
        if (!n.IsSequence()) fail(n.Mark(), path, "expected a list, got " + show(n));
        YAML::Node out(YAML::NodeType::Sequence);
        for (size_t i = 0; i < n.size(); ++i)
          out.push_back(resolve(f.fields.at(0), n[i], path + "[" + std::to_string(i) + "]", n.Mark()));
        return out;
      }
      case Kind::FloatList: {
        if (!n.IsSequence()) fail(n.Mark(), path, "expected a list of numbers, got " + show(n));
        YAML::Node out(YAML::NodeType::Sequence);
        for (size_t i = 0; i < n.size(); ++i) {
          double v = 0;
          if (f.allows_all && n[i].IsScalar() && n[i].Scalar() == "all") {
            out.push_back("all");
            continue;
          }
          if (!n[i].IsScalar() || !YAML::convert<double>::decode(n[i], v) || !std::isfinite(v) || v <= 0)
            fail(n[i].Mark(), path + "[" + std::to_string(i) + "]", std::string("expected a positive number") + (f.allows_all ? " or all" : "") + ", got " + show(n[i]));
          out.push_back(v);
        }
        if (out.size() == 0) fail(n.Mark(), path, "must not be empty");
        return out;
      }
      case Kind::StringList: {
        if (!n.IsSequence()) fail(n.Mark(), path, "expected a list of strings, got " + show(n));
        YAML::Node out(YAML::NodeType::Sequence);
        for (size_t i = 0; i < n.size(); ++i) {
          if (!n[i].IsScalar())
            fail(n[i].Mark(), path + "[" + std::to_string(i) + "]", "expected a string, got " + show(n[i]));
          out.push_back(string_node(n[i].Scalar()));
        }
        return out;
      }
      default: return scalar(f, n, path);
    }
  }

  YAML::Node resolve_map(const Field& f, const YAML::Node& n, const std::string& path, const YAML::Mark& mark) const {
    if (!n.IsMap()) fail(n.Mark(), path, "expected a map, got " + show(n));
    std::set<std::string> known;
    for (const auto& c : f.fields) known.insert(c.key);
    for (const auto& kv : n) {
      std::string key = kv.first.as<std::string>();
      if (!known.count(key)) {
        std::string valid;
        for (const auto& c : f.fields) valid += (valid.empty() ? "" : ", ") + c.key;
        fail(kv.first.Mark(), path, "unknown key '" + key + "' (valid keys: " + valid + ")");
      }
    }
    YAML::Node out(YAML::NodeType::Map);
    for (const auto& c : f.fields) {
      std::string sub = path.empty() ? c.key : path + "." + c.key;
      YAML::Node v = resolve(c, n[c.key], sub, mark);
      if (!v.IsNull()) out[c.key] = v;
    }
    return out;
  }
};

std::vector<std::string> strings(const YAML::Node& n) {
  std::vector<std::string> v;
  for (const auto& e : n) v.push_back(e.as<std::string>());
  return v;
}

}  // namespace

namespace {
Config parse_checked(const std::string& text, const std::string& source);
}

Config parse_config(const std::string& text, const std::string& source) {
  try {
    return parse_checked(text, source);
  } catch (const YAML::Exception& e) {
    // A shape the schema walk did not expect (a list as a map key, ...):
    // still one ConfigError naming the file, line and column.
    Resolver{source}.fail(e.mark, "", e.msg);
  }
  return {};  // not reached: fail() throws
}

namespace {
Config parse_checked(const std::string& text, const std::string& source) {
  Resolver r{source};
  YAML::Node doc;
  try {
    doc = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    r.fail(e.mark, "", "YAML syntax error: " + e.msg);
  }
  if (!doc.IsDefined() || doc.IsNull()) doc = YAML::Node(YAML::NodeType::Map);
  YAML::Node res = r.resolve(config::root_schema(), doc, "", doc.Mark());

  Config c;
  c.source = source;
  c.name = res["name"].as<std::string>();
  c.seed = res["seed"].as<uint64_t>();
  c.threads = res["threads"].as<int>();
  // Paths may name environment variables; the identity (resolved_yaml) keeps them as written.
  auto path_of = [&](const std::string& text, const std::string& key) {
    std::vector<std::string> unset;
    std::string p = expand_env(text, source + ": " + key, &unset);
    for (const auto& name : unset) c.unset_env.push_back(key + ": " + name);
    return p;
  };
  c.results_dir = path_of(res["results_dir"].as<std::string>(), "results_dir");
  c.data_dir = path_of(res["data"]["dir"].as<std::string>(), "data.dir");
  c.domains = strings(res["data"]["domains"]);
  if (c.name.empty() || c.name.find('/') != std::string::npos)
    r.fail(doc["name"].Mark(), "name", "must be a non-empty name without '/'");

  std::set<std::string> names;
  const YAML::Node& tasks = res["tasks"];
  for (size_t i = 0; i < tasks.size(); ++i) {
    const YAML::Node& t = tasks[i];
    const YAML::Node orig = doc["tasks"][i];
    TaskSpec s;
    s.dataset = t["dataset"].as<std::string>();
    s.name = t["name"] ? t["name"].as<std::string>() : s.dataset;
    s.classes = strings(t["classes"]);
    s.shots = t["shots"].Scalar() == "all" ? TaskSpec::kAllShots : t["shots"].as<int>();
    s.seed = t["seed"].as<uint64_t>();
    s.val_fraction = t["val_fraction"].as<double>();
    s.test_per_class = t["test_per_class"].as<int>();
    s.drop_small_classes = t["drop_small_classes"].as<bool>();
    if (t["min_steps"].IsDefined() && !t["min_steps"].IsNull()) s.min_steps = t["min_steps"].as<int>();  // optional
    s.where = r.loc(orig.Mark());
    s.group = s.name;
    std::string path = "tasks[" + std::to_string(i) + "]";
    if (s.classes.size() == 1) r.fail(orig["classes"].Mark(), path + ".classes", "a task needs at least 2 classes");
    // shot_grid x seeds: one entry, several samples of the same target.
    std::vector<int> shot_list;
    const YAML::Node grid = t["shot_grid"];  // optional: absent from the resolved entry when not given
    for (const auto& e : grid.IsDefined() && grid.IsSequence() ? grid : YAML::Node(YAML::NodeType::Sequence)) {
      if (e.Scalar() == "all") {
        shot_list.push_back(TaskSpec::kAllShots);
        continue;
      }
      const double v = e.as<double>();
      if (v < 1 || v != std::floor(v)) r.fail(orig["shot_grid"].Mark(), path + ".shot_grid", "shot counts are whole numbers >= 1");
      shot_list.push_back(static_cast<int>(v));
    }
    const int seeds = t["seeds"].as<int>();
    const bool expand = !shot_list.empty() || seeds > 1;
    if (shot_list.empty()) shot_list.push_back(s.shots);
    for (int shots : shot_list)
      for (int k = 0; k < seeds; ++k) {
        TaskSpec e = s;
        e.shots = shots;
        e.seed = s.seed + static_cast<uint64_t>(k);
        if (expand)
          e.name = s.name + "-" + (shots == TaskSpec::kAllShots ? std::string("all") : std::to_string(shots) + "shot") + "-s" +
                   std::to_string(e.seed);
        if (!names.insert(e.name).second)
          r.fail(orig.Mark(), path + ".name", "duplicate task name '" + e.name + "' (set a distinct 'name:')");
        c.tasks.push_back(std::move(e));
      }
  }
  // ---- zoo ----
  const YAML::Node& zoo = res["zoo"];
  c.zoo.dir = path_of(zoo["dir"].as<std::string>(), "zoo.dir");
  c.zoo.manifest = zoo["manifest"] ? path_of(zoo["manifest"].as<std::string>(), "zoo.manifest") : "";
  const YAML::Node& tr = zoo["train"];
  c.zoo.train = {tr["epochs"].as<int>(), tr["batch_size"].as<int>(), tr["lr"].as<double>(),
                 tr["weight_decay"].as<double>(), tr["max_images"].as<int>(), tr["seed"].as<uint64_t>()};
  std::set<std::string> model_names;
  auto add_model = [&](const YAML::Node& m, const YAML::Node& orig, const std::string& path, ModelSpec::Kind kind) {
    ModelSpec spec;
    spec.name = m["name"].as<std::string>();
    spec.arch = m["arch"].as<std::string>();
    spec.width = m["width"].as<int>();
    spec.domains = strings(m["domains"]);
    spec.classes = strings(m["classes"]);
    spec.epochs = m["epochs"].as<int>();
    spec.kind = kind;
    if (spec.domains.empty()) r.fail(orig["domains"].Mark(), path + ".domains", "needs at least one domain");
    if (kind == ModelSpec::Kind::Expert && spec.domains.size() != 1)
      r.fail(orig["domains"].Mark(), path + ".domains", "an expert is trained on exactly one domain");
    if (kind == ModelSpec::Kind::MultiDomain && spec.domains.size() < 2)
      r.fail(orig["domains"].Mark(), path + ".domains", "a multi-domain expert needs at least 2 domains");
    if (!spec.classes.empty() && spec.domains.size() != 1)
      r.fail(orig["classes"].Mark(), path + ".classes", "a class subset needs exactly one domain");
    if (spec.classes.size() == 1) r.fail(orig["classes"].Mark(), path + ".classes", "needs at least 2 classes");
    if (spec.name.empty() || spec.name.find_first_of("/ ") != std::string::npos)
      r.fail(orig["name"].Mark(), path + ".name", "must be a non-empty name without '/' or spaces");
    if (!model_names.insert(spec.name).second)
      r.fail(orig["name"].Mark(), path + ".name", "duplicate zoo model name '" + spec.name + "'");
    c.zoo.models.push_back(std::move(spec));
  };
  for (size_t i = 0; i < zoo["experts"].size(); ++i)
    add_model(zoo["experts"][i], doc["zoo"]["experts"][i], "zoo.experts[" + std::to_string(i) + "]", ModelSpec::Kind::Expert);
  if (zoo["multi_domain"]) add_model(zoo["multi_domain"], doc["zoo"]["multi_domain"], "zoo.multi_domain", ModelSpec::Kind::MultiDomain);
  if (zoo["generic"]) add_model(zoo["generic"], doc["zoo"]["generic"], "zoo.generic", ModelSpec::Kind::Generic);

  const YAML::Node& ft = res["finetune"];
  c.finetune.epochs = ft["epochs"].as<int>();
  c.finetune.min_steps = ft["min_steps"].as<int>();
  c.finetune.batch_size = ft["batch_size"].as<int>();
  c.finetune.lrs = ft["lrs"].as<std::vector<double>>();
  c.finetune.momentum = ft["momentum"].as<double>();
  c.finetune.weight_decay = ft["weight_decay"].as<double>();
  c.finetune.crop_padding = ft["crop_padding"].as<int>();
  if (const YAML::Node d = ft["decay_epochs"]; d.IsDefined() && d.IsSequence()) {  // optional: absent unless given
    for (double v : d.as<std::vector<double>>()) {
      const bool rising = c.finetune.decay_epochs.empty() || v > c.finetune.decay_epochs.back();
      if (v < 1 || v != std::floor(v) || !rising)
        r.fail(doc["finetune"]["decay_epochs"].Mark(), "finetune.decay_epochs", "epochs are increasing whole numbers >= 1");
      c.finetune.decay_epochs.push_back(static_cast<int>(v));
    }
  }
  if (ft["extend_edges"].IsDefined() && !ft["extend_edges"].IsNull()) c.finetune.extend_edges = ft["extend_edges"].as<bool>();
  c.finetune.flip_domains = strings(ft["flip_domains"]);
  const YAML::Node& ex = res["extract"];
  c.extract = {ex["max_per_class"].as<int>(), ex["batch_size"].as<int>(), ex["lgc_projections"].as<int>(),
               ex["sketch_dim"].as<int>(), ex["cache"].as<bool>(), ex["probe_model"] ? ex["probe_model"].as<std::string>() : "",
               ex["probe_epochs"].as<int>(), ex["probe_lr"].as<double>(), ex["source_per_class"].as<int>(),
               ex["lgc_memory_mb"].as<int>(), ex["score_memory_mb"].as<int>()};
  c.selectors = strings(res["selectors"]);
  c.execution.ranks_per_cell = res["execution"]["ranks_per_cell"].as<int>();
  c.execution.device = res["execution"]["device"].as<std::string>();

  YAML::Emitter out;
  emit_resolved(out, res);
  c.resolved_yaml = std::string(out.c_str()) + "\n";
  return c;
}
}  // namespace

Config load_config(const std::filesystem::path& file, bool allow_unset_env) {
  std::string text;
  try {
    text = read_file(file);
  } catch (const IoError& e) {
    throw ConfigError(std::string("config: ") + e.what());
  }
  Config c = parse_config(text, file.string());
  if (!allow_unset_env) require_env(c);
  return c;
}

void require_env(const Config& c, const std::vector<std::string>& keys) {
  for (const auto& entry : c.unset_env) {
    const size_t colon = entry.find(": ");
    const std::string key = entry.substr(0, colon);
    if (!keys.empty() && std::find(keys.begin(), keys.end(), key) == keys.end()) continue;
    throw ConfigError(c.source + ": " + key + " names ${" + entry.substr(colon + 2) +
                      "}, which is not set in the environment (export it, or set the path in the config)");
  }
}

void path_overridden(Config& c, const std::string& key) {
  c.unset_env.erase(std::remove_if(c.unset_env.begin(), c.unset_env.end(),
                                   [&](const std::string& e) { return e.rfind(key + ": ", 0) == 0; }),
                    c.unset_env.end());
}

void data_dir_overridden(Config& c, const std::string& cli_value) {
  const char* env = std::getenv("ZOOBENCH_DATA_DIR");
  if (!cli_value.empty() || (env && *env)) path_overridden(c, "data.dir");
}

std::string expand_env(const std::string& text, const std::string& who, std::vector<std::string>* unset) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text.compare(i, 2, "${") != 0) {
      out += text[i];
      continue;
    }
    const size_t end = text.find('}', i + 2);
    if (end == std::string::npos) throw ConfigError(who + ": '" + text + "' has a '${' without its '}'");
    const std::string name = text.substr(i + 2, end - i - 2);
    const bool valid = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])) &&
                       std::all_of(name.begin(), name.end(), [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; });
    if (!valid) throw ConfigError(who + ": '" + text + "' names '${" + name + "}': a variable name is [A-Za-z_][A-Za-z0-9_]*");
    if (const char* v = std::getenv(name.c_str()); v && *v) {  // empty counts as unset: "${ROOT}/x" must not become "/x"
      out += v;
    } else {
      out += text.substr(i, end - i + 1);
      if (unset) unset->push_back(name);
    }
    i = end;
  }
  return out;
}

namespace {
void explain(const Field& f, const std::string& path, std::ostringstream& out) {
  if (f.kind == Kind::Map) {
    for (const auto& c : f.fields) explain(c, path.empty() ? c.key : path + "." + c.key, out);
    return;
  }
  if (f.kind == Kind::ListOfMaps) {
    out << path << "  (" << config::kind_name(f.kind) << ", default " << f.default_yaml << ")  " << f.help << "\n";
    for (const auto& c : f.fields.at(0).fields) explain(c, path + "[]." + c.key, out);
    return;
  }
  std::string type = config::kind_name(f.kind);
  if (f.allows_all) type += " or all";
  if (f.kind == Kind::Enum) {
    type += " {";
    for (size_t i = 0; i < f.choices.size(); ++i) type += (i ? "," : "") + f.choices[i];
    type += "}";
  }
  if (std::isfinite(f.lo) || std::isfinite(f.hi)) {
    std::ostringstream s;
    s << " in [" << f.lo << ", " << f.hi << "]";
    type += s.str();
  }
  std::string dflt = f.required ? "required" : (f.default_yaml.empty() ? "unset" : "default " + f.default_yaml);
  char line[512];
  std::snprintf(line, sizeof line, "%-26s %-28s %-16s %s\n", path.c_str(), type.c_str(), dflt.c_str(), f.help.c_str());
  out << line;
}
}  // namespace

std::string explain_config() {
  std::ostringstream out;
  out << "Experiment config keys (YAML). Unknown keys are errors.\n\n";
  char line[256];
  std::snprintf(line, sizeof line, "%-26s %-28s %-16s %s\n", "key", "type", "default", "meaning");
  out << line;
  explain(config::root_schema(), "", out);
  return out.str();
}

FinetuneConfig finetune_for(const FinetuneConfig& cfg, const TaskSpec& task) {
  FinetuneConfig f = cfg;
  if (task.min_steps >= 0) f.min_steps = task.min_steps;
  return f;
}

double lr_factor(const FinetuneConfig& cfg, int epochs, int e) {
  const std::vector<int> at = cfg.decay_epochs.empty() ? std::vector<int>{epochs / 2, static_cast<int>(epochs * 0.83)}
                                                        : cfg.decay_epochs;
  int passed = 0;
  for (int m : at) passed += e >= m ? 1 : 0;
  return std::pow(10.0, -passed);  // 0.1, 0.01 as the literals are: no drift from repeated products
}

int finetune_epochs(const FinetuneConfig& cfg, int64_t train_images) {
  const int64_t bs = cfg.batch_size;
  const int64_t full = train_images / bs, rest = train_images % bs;
  const int64_t batches = full + (rest >= 2 || (full == 0 && rest == 1) ? 1 : 0);
  if (cfg.min_steps <= 0 || batches <= 0) return cfg.epochs;
  return static_cast<int>(std::max<int64_t>(cfg.epochs, (cfg.min_steps + batches - 1) / batches));
}

}  // namespace zoobench
