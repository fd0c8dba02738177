// Subcommands of the zoobench CLI. Each takes the words after its name.
#pragma once
#include <boost/program_options.hpp>

#include <optional>
#include <string>
#include <vector>

namespace zoobench::cli {

using Args = std::vector<std::string>;
namespace po = boost::program_options;

struct Command {
  std::string name;  // "data pack"
  std::string summary;
  int (*run)(const Args&);
};
const std::vector<Command>& commands();

// Parses options; prints usage and returns nullopt on --help. Unknown
// options and bad values become UsageError.
std::optional<po::variables_map> parse(const std::string& usage, po::options_description& opts, const Args& args,
                                       const po::positional_options_description* positional = nullptr);

// "a, b,,c" -> {"a", "b", "c"}: comma-separated option values, blanks trimmed.
std::vector<std::string> split_list(const std::string& s);

// --allow-outside-zoo (the commands that load zoo files): the option, and
// whether it or ZOOBENCH_ALLOW_OUTSIDE_ZOO=1 (a Slurm job's environment) is given.
void add_allow_outside_zoo(po::options_description& opts);
bool allow_outside_zoo(const po::variables_map& vm);

// libtorch intra-op threads: requested, else cores / ranks on this node (>= 1).
int set_threads(int requested);

int cmd_version(const Args&);
int cmd_data_pack(const Args&);
int cmd_data_show(const Args&);
int cmd_data_tasks(const Args&);
int cmd_config_explain(const Args&);
int cmd_config_check(const Args&);
int cmd_zoo_train(const Args&);
int cmd_zoo_pin(const Args&);
int cmd_run(const Args&);
int cmd_score(const Args&);
int cmd_reduce(const Args&);
int cmd_plan(const Args&);
int cmd_submit(const Args&);
int cmd_status(const Args&);

}  // namespace zoobench::cli
