// Hot loops compiled for more than one vector unit.
#pragma once

// A function compiled three times, for AVX-512, AVX2 and the baseline, the
// copy for the CPU chosen when the program loads (GCC's target_clones), so
// that one binary runs everywhere and uses the widest vectors it finds.
#define ZB_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
