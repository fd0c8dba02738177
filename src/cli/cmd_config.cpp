// `zoobench config explain|check`.
#include <iostream>

#include "cli.h"
#include "zoobench/config.h"

namespace zoobench::cli {

int cmd_config_explain(const Args& args) {
  po::options_description opts("zoobench config explain");
  auto vm = parse("zoobench config explain", opts, args);
  if (!vm) return 0;
  std::cout << explain_config();
  return 0;
}

int cmd_config_check(const Args& args) {
  po::options_description opts("zoobench config check");
  opts.add_options()("file", po::value<std::string>()->required(), "config file")(
      "print", "print the resolved config (every key, defaults filled in)");
  po::positional_options_description pos;
  pos.add("file", 1);
  auto vm = parse("zoobench config check <file> [--print]", opts, args, &pos);
  if (!vm) return 0;
  Config c = load_config((*vm)["file"].as<std::string>(), /*allow_unset_env=*/true);
  if (vm->count("print")) std::cout << c.resolved_yaml;
  else std::cout << c.source << ": ok (experiment '" << c.name << "', " << c.tasks.size() << " task(s))\n";
  // Valid as written; the commands that use the paths need the variables.
  for (const auto& u : c.unset_env)
    std::cerr << "zoobench: note: " << u.substr(0, u.find(": ")) << " names ${" << u.substr(u.find(": ") + 2)
              << "}, which is not set here\n";
  return 0;
}

}  // namespace zoobench::cli
