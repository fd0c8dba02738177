#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>

#include "cli.h"
#include "zoobench/comm.h"
#include "zoobench/error.h"
#include "zoobench/process.h"
#include "zoobench/version.h"

namespace zoobench::cli {

const std::vector<Command>& commands() {
  static const std::vector<Command> all = {
      {"version", "versions of zoobench and its libraries, BLAS and threads", cmd_version},
      {"data pack", "pack raw sources (or your own images) into data/<domain>.h5", cmd_data_pack},
      {"data show", "list packed data sets: classes, images, resolution, source", cmd_data_show},
      {"data tasks", "sample a config's few-shot tasks and print their sizes", cmd_data_tasks},
      {"zoo train", "train the config's zoo models that are missing; writes manifest.yaml", cmd_zoo_train},
      {"zoo pin", "record the SHA-256 of every zoo file in its manifest (run and score load only pinned files)", cmd_zoo_pin},
      {"score", "rank a zoo for one target data set: every selector, table or JSON, --save-arrays", cmd_score},
      {"run", "the whole pipeline: data, zoo, tasks, scores, fine-tuning, results.h5", cmd_run},
      {"reduce", "merge an experiment's shards; correlation, gain, cost and ground-truth tables (CSV, Markdown)", cmd_reduce},
      {"plan", "a config's grid, the paths it needs, its estimated cost and how to split it (--ranks N)", cmd_plan},
      {"submit", "the campaign on Slurm: prepare -> grid (job array or MPI) -> reduce, chained; --dry-run", cmd_submit},
      {"status", "units done, in flight and failed; the Slurm jobs of the last submission", cmd_status},
      {"config explain", "print every config key with its type, default and meaning", cmd_config_explain},
      {"config check", "validate a config file without running anything", cmd_config_check},
  };
  return all;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::optional<po::variables_map> parse(const std::string& usage, po::options_description& opts, const Args& args,
                                       const po::positional_options_description* positional) {
  opts.add_options()("help,h", "show this help");
  po::variables_map vm;
  try {
    auto parser = po::command_line_parser(args).options(opts);
    if (positional) parser.positional(*positional);
    po::store(parser.run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: " << usage << "\n\n" << opts << "\n";
      return std::nullopt;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(std::string(e.what()) + " (see `" + usage.substr(0, usage.find(" [")) + " --help`)");
  }
  return vm;
}

namespace {
void print_usage(std::ostream& out) {
  out << "zoobench " << ZOOBENCH_VERSION << " - which pre-trained model should I fine-tune?\n\n"
      << "usage: zoobench <command> [options]   (zoobench <command> --help for its options)\n\ncommands:\n";
  for (const auto& c : commands()) {
    char line[160];
    std::snprintf(line, sizeof line, "  %-16s %s\n", c.name.c_str(), c.summary.c_str());
    out << line;
  }
}

int dispatch(const Args& argv) {
  if (argv.empty() || argv[0] == "--help" || argv[0] == "-h" || argv[0] == "help") {
    print_usage(std::cout);
    return argv.empty() ? 2 : 0;
  }
  if (argv[0] == "--version") return cmd_version({});
  for (const auto& c : commands()) {
    // Commands are one or two words; match the longest.
    auto space = c.name.find(' ');
    if (space == std::string::npos) {
      if (argv[0] == c.name) return c.run(Args(argv.begin() + 1, argv.end()));
    } else if (argv[0] == c.name.substr(0, space) && argv.size() > 1 && argv[1] == c.name.substr(space + 1)) {
      return c.run(Args(argv.begin() + 2, argv.end()));
    }
  }
  std::string known;
  for (const auto& c : commands()) known += (known.empty() ? "" : ", ") + c.name;
  std::string what = argv[0] + (argv.size() > 1 && argv[1][0] != '-' ? " " + argv[1] : "");
  throw UsageError("unknown command '" + what + "' (commands: " + known + ")");
}
}  // namespace
}  // namespace zoobench::cli

int main(int argc, char** argv) {
  using namespace zoobench;
  // Loading libtorch again costs about 0.7 s: only for the commands whose
  // work is linear algebra (and `version`, which reports the kernels).
  if (argc > 1) {
    const std::string cmd = argv[1];
    if (cmd == "score" || cmd == "run" || cmd == "zoo" || cmd == "version") choose_blas_kernels(argv);
  }
  tune_allocator();
  spdlog::set_default_logger(spdlog::stderr_color_mt("zoobench"));
  spdlog::set_pattern("[%H:%M:%S] %v");
  cli::Args args(argv + 1, argv + argc);
  int code = 0;
  try {
    code = cli::dispatch(args);
  } catch (const AgreedError& e) {
    if (!comm::launched_by_mpi() || comm::World::get().is_root()) std::fprintf(stderr, "zoobench: error: %s\n", e.what());
    std::fflush(stdout);
    return e.exit_code();
  } catch (const Error& e) {
    std::fprintf(stderr, "zoobench: error: %s\n", e.what());
    code = e.exit_code();
  } catch (const std::exception& e) {
    // Library errors (libtorch's c10::Error) append a backtrace: keep the first line.
    std::string what = e.what();
    std::fprintf(stderr, "zoobench: error: %s\n", what.substr(0, what.find('\n')).c_str());
    code = 1;
  }
  std::fflush(stdout);
  // Under MPI a failed rank takes the others down instead of leaving them in a collective.
  if (code != 0 && comm::launched_by_mpi() && comm::World::get().size() > 1) comm::World::get().abort(code);
  return code;
}
