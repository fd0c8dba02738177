// `zoobench data pack|show|tasks`.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "cli.h"
#include "zoobench/comm.h"
#include "zoobench/config.h"
#include "zoobench/error.h"
#include "zoobench/pack.h"
#include "zoobench/task.h"

namespace zoobench::cli {
namespace fs = std::filesystem;

namespace {

std::string short_source(const Provenance& p) {
  if (p.package.find(',') == std::string::npos) return p.package + (p.version.empty() ? "" : " " + p.version);
  size_t n = 1;
  for (char c : p.package) n += c == ',';
  return std::to_string(n) + " Debian font packages";
}

void print_table(const std::vector<PackedInfo>& infos, std::ostream& out) {
  char line[400];
  std::snprintf(line, sizeof line, "%-20s %7s %8s %8s %7s %-8s %-16s %s\n", "domain", "classes", "images", "train",
                "test", "size", "groups", "source");
  out << line;
  for (const auto& i : infos) {
    std::string res = std::to_string(i.height) + "x" + std::to_string(i.width) + "x" + std::to_string(i.channels);
    std::string groups = i.group_kind.empty() ? "-" : std::to_string(i.groups) + " " + (i.group_kind == "font_family" ? "families" : i.group_kind == "file" ? "files" : "codes");
    std::snprintf(line, sizeof line, "%-20s %7lld %8lld %8lld %7lld %-8s %-16s %s\n", i.name.c_str(),
                  static_cast<long long>(i.classes), static_cast<long long>(i.images), static_cast<long long>(i.train),
                  static_cast<long long>(i.test), res.c_str(), groups.c_str(), short_source(i.prov).c_str());
    out << line;
  }
}

nlohmann::json to_json(const PackedInfo& i) {
  return {{"domain", i.name},        {"path", i.path.string()},   {"classes", i.classes},
          {"images", i.images},      {"train", i.train},          {"test", i.test},
          {"channels", i.channels},  {"height", i.height},        {"width", i.width},
          {"group_kind", i.group_kind}, {"groups", i.groups},     {"source_package", i.prov.package},
          {"source_version", i.prov.version}, {"license", i.prov.license}, {"split_rule", i.prov.split_rule}};
}

int default_jobs() {
  int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int ranks = comm::launched_by_mpi() ? comm::World::get().local_size() : 1;
  return std::max(1, cores / ranks);
}

}  // namespace

int cmd_data_pack(const Args& args) {
  po::options_description opts("zoobench data pack");
  opts.add_options()("domains", po::value<std::string>(), "comma-separated domains, or 'all' (default: the config's, else all)")(
      "config", po::value<std::string>(), "take data.dir and data.domains from this experiment config")(
      "data-dir", po::value<std::string>()->default_value(""), "output folder (default: $ZOOBENCH_DATA_DIR, config, ./data)")(
      "raw-dir", po::value<std::string>()->default_value(""), "raw downloads from tools/fetch-data (default .cache/raw)")(
      "font-dir", po::value<std::string>()->default_value("/usr/share/fonts"), "fonts for the glyph domains")(
      "force", "repack even when an up-to-date file exists")(
      "jobs,j", po::value<int>()->default_value(0), "sources packed at once per rank (0 = cores / ranks)")(
      "seed", po::value<uint64_t>()->default_value(0), "seed of the train/test splits that are not given")(
      "test-fraction", po::value<double>()->default_value(0.2), "test share where a source has no split")(
      "image-folder", po::value<std::string>(), "import DIR/<class>/*.png|jpg (or DIR/train|test/<class>/...)")(
      "idx", po::value<std::vector<std::string>>()->multitoken(), "import IDX files: IMAGES LABELS")(
      "idx-test", po::value<std::vector<std::string>>()->multitoken(), "test IDX files for --idx: IMAGES LABELS")(
      "name", po::value<std::string>(), "domain name for --image-folder / --idx")(
      "channels", po::value<int>()->default_value(3), "--image-folder: 1 (grey) or 3 (RGB)")(
      "skip-bad", "skip (and count) unreadable images or fonts instead of failing");
  auto vm = parse("zoobench data pack [--domains a,b|all] [--image-folder DIR|--idx IMAGES LABELS --name NAME]", opts, args);
  if (!vm) return 0;
  const auto& v = *vm;

  std::string config_dir;
  std::vector<std::string> domains{"all"};
  if (v.count("config")) {
    Config c = load_config(v["config"].as<std::string>(), /*allow_unset_env=*/true);
    data_dir_overridden(c, v["data-dir"].as<std::string>());
    require_env(c, {"data.dir"});
    config_dir = c.data_dir;
    domains = c.domains;
  }
  if (v.count("domains")) domains = split_list(v["domains"].as<std::string>());
  fs::path data_dir = resolve_data_dir(v["data-dir"].as<std::string>(), config_dir);
  PackOptions opt;
  opt.raw_dir = v["raw-dir"].as<std::string>().empty() ? default_raw_dir() : fs::path(v["raw-dir"].as<std::string>());
  opt.font_dir = v["font-dir"].as<std::string>();
  opt.seed = v["seed"].as<uint64_t>();
  opt.test_fraction = v["test-fraction"].as<double>();
  opt.skip_bad = v.count("skip-bad") > 0;
  if (opt.test_fraction <= 0 || opt.test_fraction >= 1) throw UsageError("--test-fraction must be in (0, 1)");

  // Users' own data: one domain, packed here and now.
  if (v.count("image-folder") || v.count("idx")) {
    if (!v.count("name")) throw UsageError("--image-folder and --idx need --name NAME for the new domain");
    std::string name = v["name"].as<std::string>();
    if (name.empty() || name.find('/') != std::string::npos) throw UsageError("--name must be a plain name");
    if (const int ch = v["channels"].as<int>(); ch != 1 && ch != 3)
      throw UsageError("--channels must be 1 or 3, got " + std::to_string(ch));
    ImageSet set;
    size_t skipped = 0;
    if (v.count("image-folder")) {
      set = import_image_folder(name, v["image-folder"].as<std::string>(), v["channels"].as<int>(), opt, &skipped);
    } else {
      auto idx = v["idx"].as<std::vector<std::string>>();
      if (idx.size() != 2) throw UsageError("--idx takes IMAGES LABELS");
      std::vector<std::string> test;
      if (v.count("idx-test")) test = v["idx-test"].as<std::vector<std::string>>();
      if (!test.empty() && test.size() != 2) throw UsageError("--idx-test takes IMAGES LABELS");
      set = import_idx(name, idx[0], idx[1], test.empty() ? "" : test[0], test.empty() ? "" : test[1], opt);
    }
    fs::path p = packed_path(data_dir, name);
    write_packed(set, p);
    if (skipped) std::fprintf(stderr, "zoobench: warning: skipped %zu unreadable image(s) (--skip-bad)\n", skipped);
    print_table({read_packed_info(p)}, std::cout);
    return 0;
  }

  std::vector<std::string> wanted = expand_domains(domains);
  auto& world = comm::World::get();
  int jobs = v["jobs"].as<int>() > 0 ? v["jobs"].as<int>() : default_jobs();
  if (world.is_root())
    spdlog::info("packing {} domain(s) into {} ({} rank(s) x {} job(s))", wanted.size(), data_dir.string(), world.size(), jobs);
  auto results = pack_domains(wanted, data_dir, opt, v.count("force") > 0, jobs, world.rank(), world.size());
  for (const auto& r : results) {
    if (r.packed) spdlog::info("packed {:<20} {:>7} images ({:.1f} s for its source)", r.domain, r.images, r.seconds);
    else spdlog::info("kept   {:<20} {:>7} images (up to date; --force repacks)", r.domain, r.images);
  }
  world.barrier();
  if (world.is_root()) {
    std::vector<PackedInfo> infos;
    for (const auto& d : wanted) infos.push_back(read_packed_info(packed_path(data_dir, d)));
    print_table(infos, std::cout);
  }
  return 0;
}

int cmd_data_show(const Args& args) {
  po::options_description opts("zoobench data show");
  opts.add_options()("data-dir", po::value<std::string>()->default_value(""), "folder of packed data sets")(
      "json", "machine-readable output")("names", po::value<std::vector<std::string>>(), "domains to show (default all)");
  po::positional_options_description pos;
  pos.add("names", -1);
  auto vm = parse("zoobench data show [names...] [--data-dir DIR] [--json]", opts, args, &pos);
  if (!vm) return 0;
  fs::path dir = resolve_data_dir((*vm)["data-dir"].as<std::string>(), "");
  std::vector<fs::path> files;
  if (vm->count("names")) {
    for (const auto& n : (*vm)["names"].as<std::vector<std::string>>()) files.push_back(packed_path(dir, n));
  } else {
    if (!fs::is_directory(dir)) throw DataError("data folder '" + dir.string() + "' does not exist (run `zoobench data pack`)");
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".h5") files.push_back(e.path());
    std::sort(files.begin(), files.end());
  }
  std::vector<PackedInfo> infos;
  for (const auto& f : files) infos.push_back(read_packed_info(f));
  if (vm->count("json")) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& i : infos) j.push_back(to_json(i));
    std::cout << j.dump(2) << "\n";
  } else {
    print_table(infos, std::cout);
  }
  return 0;
}

int cmd_data_tasks(const Args& args) {
  po::options_description opts("zoobench data tasks");
  opts.add_options()("config", po::value<std::string>()->required(), "experiment config")(
      "data-dir", po::value<std::string>()->default_value(""), "folder of packed data sets")(
      "indices", "print every sampled index list too");
  po::positional_options_description pos;
  pos.add("config", 1);
  auto vm = parse("zoobench data tasks <config> [--data-dir DIR] [--indices]", opts, args, &pos);
  if (!vm) return 0;
  Config c = load_config((*vm)["config"].as<std::string>(), /*allow_unset_env=*/true);
  data_dir_overridden(c, (*vm)["data-dir"].as<std::string>());
  require_env(c, {"data.dir"});
  fs::path dir = resolve_data_dir((*vm)["data-dir"].as<std::string>(), c.data_dir);
  std::map<std::string, ImageSet> cache;
  char line[300];
  std::snprintf(line, sizeof line, "%-24s %-20s %7s %5s %6s %5s %6s\n", "task", "dataset", "classes", "shots", "train",
                "val", "test");
  std::cout << line;
  for (const auto& spec : c.tasks) {
    auto it = cache.find(spec.dataset);
    if (it == cache.end()) it = cache.emplace(spec.dataset, read_packed(packed_path(dir, spec.dataset))).first;
    Task t = sample_task(spec, it->second);
    const std::string shots = spec.shots == TaskSpec::kAllShots ? "all" : std::to_string(spec.shots);
    std::snprintf(line, sizeof line, "%-24s %-20s %7zu %5s %6zu %5zu %6zu\n", spec.name.c_str(), spec.dataset.c_str(),
                  t.classes(), shots.c_str(), t.train.size(), t.val.size(), t.test.size());
    std::cout << line;
    if (vm->count("indices")) {
      auto dump = [](const char* what, const std::vector<int64_t>& v) {
        std::cout << "  " << what << ":";
        for (auto i : v) std::cout << " " << i;
        std::cout << "\n";
      };
      dump("train", t.train);
      dump("val", t.val);
      dump("test", t.test);
    }
  }
  return 0;
}

}  // namespace zoobench::cli
