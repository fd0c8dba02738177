// Process-wide settings every zoobench program (the CLI, the benchmarks) applies first.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace zoobench {

// glibc hands blocks above its mmap threshold back to the kernel on free, so
// every training step's activations fault their pages in again: on this
// project's machines that cost about 6x in fine-tuning throughput
// (bench/bench_finetune with and without). This keeps freed memory for reuse:
// the largest mmap threshold glibc accepts (32 MiB) and no trimming below
// 1 GiB. A GLIBC_TUNABLES setting in the environment wins. Returns whether it
// changed anything.
bool tune_allocator();

// OpenBLAS chooses its kernels when it is loaded, from the CPU's model
// number, and 0.3.21 (Debian 12's) does not know CPUs newer than itself: on a
// Sapphire Rapids Xeon it falls back to Prescott's SSE3 kernels, and a 1024^2
// float matmul ran at 26.5 GFLOP/s instead of 156 with the SkylakeX ones.
// When OpenBLAS reports Prescott on a CPU with AVX-512 (or AVX2 and FMA),
// this sets OPENBLAS_CORETYPE to SkylakeX (Haswell) and executes the program
// again, same pid and arguments, before anything else has run (MPI included).
// An OPENBLAS_CORETYPE already set is kept, so it happens at most once; a
// failed exec leaves the program running as it was. Call it first in main
// (the exec loads every library again: about 0.7 s here).
void choose_blas_kernels(char** argv);
// The kernels OpenBLAS runs ("SkylakeX"), or "" when the BLAS is not OpenBLAS.
std::string blas_core();

// Peak resident memory of a stretch of work (a unit of the grid):
// reset_peak_rss() hands freed heap back to the kernel, so the stretch starts
// from what is live, and restarts the kernel's high-water mark (Linux:
// /proc/self/clear_refs, "5"); false where the kernel refuses, and the peak is
// then the process's since it began. peak_rss_bytes() reads the mark
// (/proc/self/status VmHWM), -1 where there is none.
bool reset_peak_rss();
int64_t peak_rss_bytes();

// Large arrays written once and read a few times (a data set as floats, the
// N x N Gram and the pair triangles of the RDM scores) fault their memory in
// 4 KiB at a time on first touch, and on a virtual machine the faults cost
// more than the work: PARC and RSA at N = 5,000 ran 3-5x faster with 2 MiB
// pages (README, performance). The kernel gives those only to memory advised
// so (transparent huge pages in "madvise" mode, Debian's default).
// advise_huge_pages advises the whole 4 KiB pages of [p, p + bytes); below
// 2 MiB (one huge page) it does nothing. alloc_huge returns 2 MiB-aligned, advised memory
// (std::free it), or throws std::bad_alloc.
void advise_huge_pages(void* p, size_t bytes);
void* alloc_huge(size_t bytes);
// v.reserve(n), advised before anything touches it.
template <class T>
void reserve_huge(std::vector<T>& v, size_t n) {
  v.reserve(n);
  advise_huge_pages(v.data(), v.capacity() * sizeof(T));
}

}  // namespace zoobench
