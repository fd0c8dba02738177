// The YAML config validator: any text either loads or is one ConfigError.
#include <cstddef>
#include <cstdint>

#include "common.h"
#include "zoobench/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  zoobench::fuzz::MemFile file(data, size, "exp.yaml");
  zoobench::fuzz::expect_clean([&] {
    zoobench::Config c = zoobench::load_config(file.path(), /*allow_unset_env=*/true);
    // A config that loads resolves to text that loads again to the same text.
    zoobench::fuzz::MemFile again(reinterpret_cast<const uint8_t*>(c.resolved_yaml.data()), c.resolved_yaml.size());
    zoobench::Config c2 = zoobench::load_config(again.path(), true);
    if (c2.resolved_yaml != c.resolved_yaml) {
      std::fprintf(stderr, "finding: the resolved config does not resolve to itself\n--- first\n%s--- second\n%s",
                   c.resolved_yaml.c_str(), c2.resolved_yaml.c_str());
      std::abort();
    }
  });
  return 0;
}
