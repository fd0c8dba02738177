#include "zoobench/process.h"

#include <malloc.h>

#include <cstdlib>

namespace zoobench {

bool tune_allocator() {
  if (std::getenv("GLIBC_TUNABLES")) return false;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  return true;
}

}  // namespace zoobench
