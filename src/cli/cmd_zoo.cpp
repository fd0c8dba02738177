// `zoobench zoo pin`, and the trust option shared by the commands that load a
// zoo (`run`, `score`, `submit`).
#include <cstdlib>
#include <iostream>

#include "cli.h"
#include "zoobench/error.h"
#include "zoobench/model.h"

namespace zoobench::cli {

void add_allow_outside_zoo(po::options_description& opts) {
  opts.add_options()("allow-outside-zoo",
                     "load weights that lie outside the manifest's folder (a zoo kept elsewhere, e.g. under "
                     "${ZOO_ROOT}); also ZOOBENCH_ALLOW_OUTSIDE_ZOO=1");
}

bool allow_outside_zoo(const po::variables_map& vm) {
  if (vm.count("allow-outside-zoo")) return true;
  const char* v = std::getenv("ZOOBENCH_ALLOW_OUTSIDE_ZOO");
  if (!v || !*v || std::string(v) == "0") return false;
  if (std::string(v) != "1") throw UsageError("ZOOBENCH_ALLOW_OUTSIDE_ZOO='" + std::string(v) + "': expected 1 or 0");
  return true;
}

int cmd_zoo_pin(const Args& args) {
  po::options_description opts("zoobench zoo pin");
  opts.add_options()("manifest", po::value<std::string>()->required(), "the zoo's manifest.yaml")(
      "check", "change nothing: list each entry as pinned, unpinned or changed, exit 1 unless all are pinned");
  add_allow_outside_zoo(opts);
  po::positional_options_description pos;
  pos.add("manifest", 1);
  auto vm = parse("zoobench zoo pin <manifest> [--check] [--allow-outside-zoo]", opts, args, &pos);
  if (!vm) return 0;
  const std::string manifest = (*vm)["manifest"].as<std::string>();
  const bool check = vm->count("check") > 0;
  LoadRules rules;
  rules.allow_outside_zoo = allow_outside_zoo(*vm);
  const std::vector<Pin> pins = pin_manifest(manifest, rules, !check);
  int unpinned = 0, changed = 0;
  for (const auto& p : pins) {
    const char* state = p.before == p.after ? "pinned" : p.before.empty() ? "unpinned" : "changed";
    unpinned += p.before.empty() ? 1 : 0;
    changed += !p.before.empty() && p.before != p.after ? 1 : 0;
    if (check)
      std::cout << p.name << ": " << state << "  " << p.file.string() << "\n";
    else
      std::cout << p.name << ": " << (p.before == p.after ? "pinned, unchanged" : p.before.empty() ? "pinned" : "re-pinned (the file changed)")
                << "  sha256 " << p.after.substr(0, 16) << "...  " << p.file.string() << "\n";
  }
  if (check && (unpinned || changed))
    throw Error(manifest + ": " + std::to_string(unpinned) + " unpinned and " + std::to_string(changed) + " changed of " +
                std::to_string(pins.size()) + " entries (`zoobench zoo pin " + manifest + "` pins the files as they are)");
  if (!check) std::cout << "manifest: " << manifest << (unpinned || changed ? " (updated)" : " (unchanged)") << "\n";
  return 0;
}

}  // namespace zoobench::cli
