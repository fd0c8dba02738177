// Portable seeded randomness: the same seed gives the same numbers with any
// compiler and standard library (std::shuffle and std::uniform_int_distribution
// are implementation-defined, so we do not use them for anything stored).
#pragma once
#include <cstdint>
#include <random>
#include <string_view>
#include <utility>
#include <vector>

namespace zoobench {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Derives an independent stream seed from a seed and a name (FNV-1a + mix).
inline uint64_t derive_seed(uint64_t seed, std::string_view name, uint64_t extra = 0) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ULL;
  return splitmix64(splitmix64(seed ^ h) ^ splitmix64(extra + 0x51ed2701ULL));
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  uint64_t next() { return gen_(); }
  // Uniform in [0, n) without modulo bias (rejection sampling).
  uint64_t below(uint64_t n) {
    if (n <= 1) return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = gen_();
    while (x >= limit);
    return x % n;
  }
  double uniform() { return static_cast<double>(gen_() >> 11) * (1.0 / 9007199254740992.0); }
  template <class T>
  void shuffle(std::vector<T>& v) {  // Fisher-Yates
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }

 private:
  std::mt19937_64 gen_;  // the sequence itself is fixed by the standard
};

}  // namespace zoobench
