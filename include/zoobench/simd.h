// Hot loops compiled for more than one vector unit.
#pragma once
#include <cstdint>
#include <cstring>

// A function compiled three times, for AVX-512, AVX2 and the baseline, the
// copy for the CPU chosen when the program loads (GCC's target_clones), so
// that one binary runs everywhere and uses the widest vectors it finds.
#define ZB_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

// The helpers below take and return vectors; they are always inlined into
// the clones, so the ABI of passing a 64-byte vector to a baseline function
// (GCC's -Wpsabi note) never applies. Files with helpers of their own
// taking vectors silence that note too.
#define ZB_INLINE inline __attribute__((always_inline))

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

namespace zoobench::simd {

// GCC's generic vectors: one zmm register in the AVX-512 clone, two ymm in
// the AVX2 one, four xmm in the baseline, from the same source.
inline constexpr int64_t kLanes = 16;
typedef float f32x16 __attribute__((vector_size(kLanes * sizeof(float))));
typedef int32_t i32x16 __attribute__((vector_size(kLanes * sizeof(int32_t))));

// Unaligned: memcpy compiles to one vector load or store.
ZB_INLINE f32x16 load(const float* p) {
  f32x16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
ZB_INLINE void store(float* p, const f32x16& v) { std::memcpy(p, &v, sizeof v); }

// Lane by lane, a where mask is set (all ones, as a comparison leaves it),
// b elsewhere. In bitwise operations: GCC splits a vector ?: into one
// scalar branch a lane.
ZB_INLINE f32x16 select(const i32x16& mask, const f32x16& a, const f32x16& b) {
  return reinterpret_cast<f32x16>((reinterpret_cast<i32x16>(a) & mask) | (reinterpret_cast<i32x16>(b) & ~mask));
}

ZB_INLINE float lane_sum(const f32x16& v) {
  float s = 0;
  for (int64_t l = 0; l < kLanes; ++l) s += v[l];
  return s;
}

// Transposes the 16 x 16 block held in r[0..15] (row i = r[i]) in place:
// four rounds of swapping the off-diagonal s x s sub-blocks (s = 8, 4, 2,
// 1), each round 16 two-vector shuffles (vpermt2ps on AVX-512), instead of
// 256 scalar moves.
ZB_INLINE void transpose16(f32x16 r[kLanes]) {
  // Lane c of the pair (a = row i, b = row i + s), i with bit s clear: the
  // new row i keeps a's lanes where bit s of c is clear and takes b's lanes
  // c - s where it is set; the new row i + s takes a's lanes c + s, then b's.
  static constexpr i32x16 kLo[4] = {{0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},
                                    {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27},
                                    {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29},
                                    {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30}};
  static constexpr i32x16 kHi[4] = {{8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31},
                                    {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31},
                                    {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31},
                                    {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31}};
#pragma GCC unroll 4
  for (int round = 0; round < 4; ++round) {
    const int64_t s = int64_t{8} >> round;
#pragma GCC unroll 16
    for (int64_t i = 0; i < kLanes; ++i) {
      if (i & s) continue;
      const f32x16 a = r[i], b = r[i + s];
      r[i] = __builtin_shuffle(a, b, kLo[round]);
      r[i + s] = __builtin_shuffle(a, b, kHi[round]);
    }
  }
}

}  // namespace zoobench::simd

#pragma GCC diagnostic pop
