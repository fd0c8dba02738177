// Process-wide settings every zoobench program (the CLI, the benchmarks) applies first.
#pragma once

namespace zoobench {

// glibc hands blocks above its mmap threshold back to the kernel on free, so
// every training step's activations fault their pages in again: on this
// project's machines that cost about 6x in fine-tuning throughput
// (bench/bench_finetune with and without). This keeps freed memory for reuse:
// the largest mmap threshold glibc accepts (32 MiB) and no trimming below
// 1 GiB. A GLIBC_TUNABLES setting in the environment wins. Returns whether it
// changed anything.
bool tune_allocator();

}  // namespace zoobench
