// `zoobench score`: rank a zoo for one target data set ("which model should I
// fine-tune?"). Prints model x score with each score's rank and seconds, or
// JSON; --save-arrays writes the exact arrays it scored beside the scores.
#include <ATen/ATen.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli.h"
#include "zoobench/config.h"
#include "zoobench/dataset.h"
#include "zoobench/error.h"
#include "zoobench/h5.h"
#include "zoobench/h5_tensor.h"
#include "zoobench/io.h"
#include "zoobench/loader.h"
#include "zoobench/reduce.h"
#include "zoobench/score.h"
#include "zoobench/task.h"
#include "zoobench/version.h"

namespace zoobench::cli {
namespace fs = std::filesystem;

namespace {

int list_selectors() {
  std::printf("%-18s %-44s %s\n", "selector", "needs", "variant");
  for (const Selector* s : all_selectors())
    std::printf("%-18s %-44s %s\n", s->name().c_str(), needs_text(s->needs()).c_str(), s->variant().c_str());
  return 0;
}

// The task: --task-spec (a YAML map of task keys) on the packed set; by
// default every class, shots = the smallest class's training images capped
// at extract.max_per_class, no validation split.
TaskSpec task_from(const std::string& spec_text, const ImageSet& set, const ExtractConfig& ex) {
  YAML::Node node;
  std::string text = spec_text;
  if (!text.empty() && text.front() != '{') text = "{" + text + "}";
  try {
    node = text.empty() ? YAML::Node(YAML::NodeType::Map) : YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw UsageError("--task-spec: " + e.msg + " (expected a YAML map, e.g. \"{shots: 10, classes: [a, b]}\")");
  }
  if (!node.IsMap()) throw UsageError("--task-spec: expected a YAML map of task keys, e.g. \"{shots: 10, seed: 1}\"");
  if (!node["dataset"]) node["dataset"] = set.name;
  if (!node["val_fraction"]) node["val_fraction"] = 0.0;
  if (!node["shots"]) {
    std::vector<size_t> per_class(set.class_names.size(), 0);
    for (size_t i = 0; i < set.size(); ++i)
      if (set.split[i] == 0) ++per_class[static_cast<size_t>(set.labels[i])];
    size_t smallest = SIZE_MAX;
    for (size_t n : per_class)
      if (n > 0) smallest = std::min(smallest, n);
    if (smallest == SIZE_MAX) throw DataError(set.name + ": the data set has no training images to score");
    node["shots"] = static_cast<int>(ex.max_per_class > 0 ? std::min<size_t>(smallest, ex.max_per_class) : smallest);
  }
  YAML::Emitter out;
  out << YAML::Flow << node;
  Config c = parse_config(std::string("tasks:\n  - ") + out.c_str() + "\n", "--task-spec");
  TaskSpec t = c.tasks.at(0);
  if (t.dataset != set.name)
    throw UsageError("--task-spec: dataset '" + t.dataset + "' differs from the --data file's data set '" + set.name + "'");
  t.need_test = false;
  return t;
}

void print_line(std::string line) {
  line.erase(line.find_last_not_of(' ') + 1);
  std::cout << line << "\n";
}

std::string cell_text(double v) {
  char b[32];
  const double a = std::abs(v);
  std::snprintf(b, sizeof b, (a != 0 && (a >= 1e5 || a < 1e-3)) ? "%.3e" : "%.4f", v);
  return b;
}

void save_arrays(const fs::path& path, const ImageSet& set, const fs::path& data_file, const fs::path& manifest,
                 const Task& task, const std::vector<const Selector*>& sels, const std::vector<Model*>& models,
                 const TaskScores& ts, const ZooScorer& scorer) {
  for (const Model* m : models)
    if (m->name() == "scores" || m->name() == "_probe")
      throw DataError("--save-arrays: zoo entry '" + m->name() + "' clashes with a reserved group name");
  AtomicPath atomic(path);
  {
    h5::File f = h5::File::create(atomic.tmp());
    f.set_attr("zoobench_version", ZOOBENCH_VERSION);
    f.set_attr("created_utc", utc_now());
    f.set_attr("data", data_file.string());
    f.set_attr("dataset", set.name);
    f.set_attr("manifest", manifest.string());
    f.set_attr("task", task.spec.name);
    f.set_attr("classes", static_cast<int64_t>(task.classes()));
    for (size_t m = 0; m < models.size(); ++m) {
      const CellArrays& arr = ts.cells[m];
      h5::Group g = h5::ensure_group(f, models[m]->name());
      h5::write_matrix(g, "features", arr.features, "N x D float32, the layer before the classifier");
      h5::write_matrix(g, "labels", arr.labels, "N int64 task labels in [0, classes)");
      h5::write_matrix(g, "indices", labels_tensor(arr.indices), "N indices into the packed data set");
      if (arr.source_logits.defined())
        h5::write_matrix(g, "source_probs", at::softmax(arr.source_logits.to(at::kDouble), 1),
                         "N x Cs float64, the source head's softmax");
      if (arr.grad_sketch.defined()) h5::write_matrix(g, "grad_sketch", arr.grad_sketch, "N x K float32 gradient sketches");
      auto src = scorer.sources().find(models[m]->name());
      if (src != scorer.sources().end() && src->second.unavailable.empty()) {
        h5::write_matrix(g, "source_class_means", src->second.means, "S x D float64, per source class (Domain Similarity)");
        h5::write_matrix(g, "source_class_counts", src->second.counts, "S float64, training images per source class");
      }
    }
    if (ts.probe_features.defined()) {
      h5::Group g = h5::ensure_group(f, "_probe");
      h5::write_matrix(g, "features", ts.probe_features, "N x Dp float32, the probe model's features (RSA, DDS)");
      g.set_attr("model", scorer.probe()->name());
      g.set_attr("seconds", ts.probe_seconds);
    }
    using T = h5::Table::Type;
    h5::Table table(f, "scores", {{"model", T::String, "zoo entry"}, {"selector", T::String, ""},
                                  {"value", T::Float64, "higher = better predicted transfer"},
                                  {"seconds", T::Float64, "the score plus the per-cell arrays it reads"},
                                  {"note", T::String, "why the value cannot rank the model (-inf: ranked last), or empty"}});
    for (auto* s : sels) table.group().set_attr("variant." + s->name(), scorer.variant(*s));
    for (const auto& r : ts.rows) table.append({r.model, r.selector, r.value, r.seconds, r.note});
    table.flush();
  }
  atomic.commit();
}

}  // namespace

int cmd_score(const Args& args) {
  po::options_description opts("zoobench score");
  opts.add_options()("zoo", po::value<std::string>(), "the zoo's manifest.yaml")(
      "data", po::value<std::string>(), "the target data set, packed (.h5, e.g. from `data pack --image-folder`)")(
      "task-spec", po::value<std::string>()->default_value(""),
      "YAML map of task keys, e.g. \"{classes: [a, b], shots: 10, seed: 1}\" (default: every class, shots = "
      "the smallest class's training images, at most extract.max_per_class)")(
      "selectors", po::value<std::string>()->default_value("all"), "comma-separated selector names, or 'all'")(
      "json", "print JSON instead of the table")("save-arrays", po::value<std::string>(), "write the scored arrays and scores to this HDF5 file")(
      "list", "list every registered selector with its needs and variant")(
      "config", po::value<std::string>(), "take extract/finetune settings (sketch size, probe) from this experiment config")(
      "data-dir", po::value<std::string>()->default_value(""), "packed source domains, for domain_similarity")(
      "seed", po::value<uint64_t>()->default_value(0), "seed for sketches, probe and source subsets")(
      "probe", po::value<std::string>(), "RSA/DDS's probe model: this zoo entry (default: extract.probe_model, else the generic entry)")(
      "score-memory-mb", po::value<int>(), "MiB one score may allocate; one that needs more gives n/a (default: extract.score_memory_mb, 8192)")(
      "threads", po::value<int>()->default_value(-1), "libtorch threads (default: the config's, else all cores)");
  add_allow_outside_zoo(opts);
  auto vm = parse("zoobench score --zoo MANIFEST --data TARGET.h5 [--task-spec YAML] [--selectors all|a,b] [--json] "
                  "[--save-arrays OUT.h5] [--allow-outside-zoo]\n       zoobench score --list",
                  opts, args);
  if (!vm) return 0;
  if (vm->count("list")) return list_selectors();
  if (!vm->count("zoo") || !vm->count("data")) throw UsageError("zoobench score needs --zoo and --data (or --list)");
  // Only the config's extract/finetune settings matter here, not its paths.
  Config c = vm->count("config") ? load_config((*vm)["config"].as<std::string>(), /*allow_unset_env=*/true)
                                 : parse_config("", "<defaults>");
  if (vm->count("probe")) c.extract.probe_model = (*vm)["probe"].as<std::string>();
  if (vm->count("score-memory-mb")) {
    c.extract.score_memory_mb = (*vm)["score-memory-mb"].as<int>();
    if (c.extract.score_memory_mb < 1) throw UsageError("--score-memory-mb: at least 1, got " + std::to_string(c.extract.score_memory_mb));
  }
  std::vector<const Selector*> sels = selectors_from(split_list((*vm)["selectors"].as<std::string>()));
  if (sels.empty()) throw UsageError("--selectors: no selector named");
  const int t = (*vm)["threads"].as<int>();
  set_threads(t >= 0 ? t : c.threads);

  const fs::path data_file = (*vm)["data"].as<std::string>(), manifest_file = (*vm)["zoo"].as<std::string>();
  ImageSet set = read_packed(data_file);
  Task task = sample_task(task_from((*vm)["task-spec"].as<std::string>(), set, c.extract), set);
  Manifest manifest = Manifest::load(manifest_file);
  LoadRules rules;
  rules.allow_outside_zoo = allow_outside_zoo(*vm);
  std::vector<std::unique_ptr<Model>> owned;
  std::vector<Model*> models;
  for (const auto& e : manifest.entries) {
    owned.push_back(load_model(manifest, e, rules));
    models.push_back(owned.back().get());
  }
  if (models.empty()) throw DataError(manifest_file.string() + ": the manifest lists no models");
  fs::path data_dir = resolve_data_dir((*vm)["data-dir"].as<std::string>(), c.data_dir);
  ZooScorer scorer(sels, models, c.extract, c.finetune, data_dir, (*vm)["seed"].as<uint64_t>());
  TaskScores ts = scorer.score_task(set, task);

  // value[model][selector] and each selector's ranks over the zoo.
  const size_t nm = models.size(), ns = sels.size();
  std::vector<std::vector<double>> value(nm, std::vector<double>(ns)), secs = value;
  std::vector<std::vector<std::string>> note(nm, std::vector<std::string>(ns));
  for (size_t i = 0; i < ts.rows.size(); ++i)
    value[i / ns][i % ns] = ts.rows[i].value, secs[i / ns][i % ns] = ts.rows[i].seconds, note[i / ns][i % ns] = ts.rows[i].note;
  // A selector that saturates on one model ranks nothing on this task (that
  // model's value sits at its limit by construction, above or among the
  // others by rounding), as `reduce` judges it, nor does one that cannot
  // score a model (NaN: no source data); a degenerate model is ranked last.
  std::vector<bool> saturated_sel(ns, false);
  for (size_t m = 0; m < nm; ++m)
    for (size_t k = 0; k < ns; ++k) saturated_sel[k] = saturated_sel[k] || cannot_rank(note[m][k], value[m][k]);
  auto saturated = [&](size_t m, size_t k) { return saturated_sel[k] && !ranked_last(value[m][k]); };
  std::vector<std::vector<int>> rank(nm, std::vector<int>(ns));
  for (size_t k = 0; k < ns; ++k) {
    std::vector<double> col;
    for (size_t m = 0; m < nm; ++m) col.push_back(std::isnan(value[m][k]) ? -HUGE_VAL : value[m][k]);  // NaN cannot be sorted
    std::vector<int> r = descending_ranks(col);
    for (size_t m = 0; m < nm; ++m) rank[m][k] = r[m];
  }
  if (vm->count("save-arrays"))
    save_arrays((*vm)["save-arrays"].as<std::string>(), set, data_file, manifest_file, task, sels, models, ts, scorer);

  const size_t n = ts.cells.front().labels.size(0);
  if (vm->count("json")) {
    nlohmann::json j;
    j["zoobench_version"] = ZOOBENCH_VERSION;
    j["data"] = data_file.string();
    j["manifest"] = manifest_file.string();
    j["task"] = {{"name", task.spec.name}, {"dataset", set.name}, {"classes", task.class_names}, {"samples", n},
                 {"shots", task.spec.shots == TaskSpec::kAllShots ? nlohmann::json("all") : nlohmann::json(task.spec.shots)},
                 {"seed", task.spec.seed}};
    for (auto* s : sels) j["variants"][s->name()] = scorer.variant(*s);
    j["scores"] = nlohmann::json::array();
    for (size_t m = 0; m < nm; ++m)
      for (size_t k = 0; k < ns; ++k) {
        nlohmann::json row = {{"model", models[m]->name()}, {"selector", sels[k]->name()}, {"value", value[m][k]},
                              {"rank", rank[m][k]}, {"seconds", secs[m][k]}};
        if (!std::isfinite(value[m][k])) row["value"] = nullptr;  // JSON has no -inf or NaN: the note says which
        if (saturated(m, k)) row["rank"] = nullptr;
        if (!note[m][k].empty()) row["note"] = note[m][k];
        j["scores"].push_back(row);
      }
    if (ts.probe_features.defined())
      j["shared_seconds"]["probe_features"] = {{"model", scorer.probe()->name()}, {"seconds", ts.probe_seconds}};
    for (const auto& [name, s] : scorer.sources())
      if (s.unavailable.empty()) j["shared_seconds"]["source_class_means"][name] = s.seconds;
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("%zu models x %zu selectors on '%s' (%zu classes, %zu samples); value (rank, 1 = predicted best)\n", nm, ns,
              set.name.c_str(), task.classes(), n);
  size_t w0 = 8;
  for (auto* m : models) w0 = std::max(w0, m->name().size() + 2);
  std::vector<size_t> w(ns);
  std::string line = std::string("model") + std::string(w0 - 5, ' ');
  for (size_t k = 0; k < ns; ++k) {
    w[k] = std::max<size_t>(16, sels[k]->name().size() + 2);
    line += sels[k]->name() + std::string(w[k] - sels[k]->name().size(), ' ');
  }
  print_line(line);
  for (size_t m = 0; m < nm; ++m) {
    line = models[m]->name() + std::string(w0 - models[m]->name().size(), ' ');
    for (size_t k = 0; k < ns; ++k) {
      std::string cell = std::isnan(value[m][k])       ? std::string("n/a (-)")
                         : !std::isfinite(value[m][k]) ? "degenerate (" + std::to_string(rank[m][k]) + ")"
                         : saturated(m, k)             ? cell_text(value[m][k]) + " (-)"
                                                       : cell_text(value[m][k]) + " (" + std::to_string(rank[m][k]) + ")";
      line += cell + std::string(w[k] > cell.size() ? w[k] - cell.size() : 1, ' ');
    }
    print_line(line);
  }
  bool any_note = false;
  for (size_t k = 0; k < ns; ++k)
    for (size_t m = 0; m < nm; ++m)
      if (!note[m][k].empty()) {
        if (!any_note)
          std::cout << "\ncannot rank ((-): the score saturates on this task, or n/a: cannot score a model; "
                       "degenerate: ranked last)\n";
        any_note = true;
        std::cout << "  " << sels[k]->name() << ", " << models[m]->name() << ": " << note[m][k] << "\n";
      }
  // Seconds of every score: the score itself plus the per-cell extraction it reads.
  std::cout << "\nseconds (each score plus the feature or sketch extraction it reads)\n";
  std::vector<double> total(ns, 0.0);
  for (size_t m = 0; m <= nm; ++m) {
    line = m < nm ? models[m]->name() + std::string(w0 - models[m]->name().size(), ' ') : "all" + std::string(w0 - 3, ' ');
    for (size_t k = 0; k < ns; ++k) {
      if (m < nm) total[k] += secs[m][k];
      std::string cell = cell_text(m < nm ? secs[m][k] : total[k]);
      line += cell + std::string(w[k] > cell.size() ? w[k] - cell.size() : 1, ' ');
    }
    print_line(line);
  }
  if (ts.probe_features.defined())
    std::printf("shared: probe model '%s' fine-tuned and extracted in %.2f s\n", scorer.probe()->name().c_str(), ts.probe_seconds);
  for (const auto& [name, s] : scorer.sources())
    if (s.unavailable.empty())
      std::printf("shared: source-domain class means of '%s' in %.2f s\n", name.c_str(), s.seconds);
  return 0;
}

}  // namespace zoobench::cli
