#include "zoobench/process.h"

#include <dlfcn.h>
#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <new>
#include <fstream>
#include <string>

namespace zoobench {

bool tune_allocator() {
  if (std::getenv("GLIBC_TUNABLES")) return false;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  return true;
}

std::string blas_core() {
  using CoreName = char* (*)();
  auto f = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  return f ? std::string(f()) : std::string();
}

void choose_blas_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") || blas_core() != "Prescott") return;
  __builtin_cpu_init();
  const char* core = __builtin_cpu_supports("avx512f")                                  ? "SkylakeX"
                     : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? "Haswell"
                                                                                         : nullptr;
  if (!core) return;  // an old CPU: Prescott is the right choice
  // The program's own path, not /proc/self/exe, so that it keeps its name (ps, pgrep, comm).
  char self[4096];
  const ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) return;
  self[len] = '\0';
  setenv("OPENBLAS_CORETYPE", core, 1);
  setenv("ZOOBENCH_CHOSE_BLAS_CORETYPE", "Prescott", 1);  // what OpenBLAS chose itself, for `zoobench version`
  execv(self, argv);
  unsetenv("OPENBLAS_CORETYPE");  // the exec failed: nothing changed
  unsetenv("ZOOBENCH_CHOSE_BLAS_CORETYPE");
}

bool reset_peak_rss() {
  malloc_trim(0);
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

int64_t peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;  // "VmHWM:   123456 kB"
  return -1;
}

void advise_huge_pages(void* p, size_t bytes) {
  constexpr size_t kPage = 4096, kWorthIt = size_t{2} << 20;  // one huge page
  if (!p || bytes < kWorthIt) return;
  const auto begin = (reinterpret_cast<uintptr_t>(p) + kPage - 1) / kPage * kPage;
  const auto end = (reinterpret_cast<uintptr_t>(p) + bytes) / kPage * kPage;
  // Advice only: where the kernel has no huge pages to give, the pages are the usual ones.
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

void* alloc_huge(size_t bytes) {
  constexpr size_t kHuge = size_t{2} << 20;
  const size_t rounded = (std::max<size_t>(bytes, 1) + kHuge - 1) / kHuge * kHuge;
  void* p = std::aligned_alloc(kHuge, rounded);
  if (!p) throw std::bad_alloc();
  advise_huge_pages(p, rounded);
  return p;
}

}  // namespace zoobench
