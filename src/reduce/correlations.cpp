#include <algorithm>
#include <cstdint>
#include <cstring>
#include <future>
#include <tuple>
#include <utility>
#include <cmath>
#include <limits>
#include <numeric>

#include "zoobench/process.h"
#include "zoobench/reduce.h"

namespace zoobench {

namespace {
// Order-preserving maps of a number to an unsigned key (-0 and +0 share one;
// NaNs sort above +inf, by their bits).
inline uint64_t sort_key(double x) {
  if (x == 0) x = 0;
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return (bits & 0x8000000000000000ULL) ? ~bits : bits ^ 0x8000000000000000ULL;
}
inline uint32_t sort_key(float x) {
  if (x == 0) x = 0;
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return (bits & 0x80000000U) ? ~bits : bits ^ 0x80000000U;
}

// v's values in ascending order and the position each came from. Rounding a
// double to float never reverses two values, so an LSD radix sort on the
// float's 32-bit key (three passes of 11 bits; the double's key took six)
// orders v up to runs of equal float keys, which, a few elements each, are
// then sorted on the double's own key. The values travel with their
// positions: reading v through the sorted positions afterwards, a cache miss
// an element, took more time than the sort. O(n) where std::sort is
// O(n log n): RDM correlations rank 10^5-10^7 values.
struct Sorted {
  std::vector<double> value;
  std::vector<uint32_t> position;
};
inline uint32_t float_key(double x) { return sort_key(static_cast<float>(x)); }

Sorted radix_sort(const std::vector<double>& v) {
  const size_t n = v.size();
  Sorted s, t;
  for (Sorted* x : {&s, &t}) {  // written once each pass: on huge pages (zoobench/process.h)
    reserve_huge(x->value, n);
    reserve_huge(x->position, n);
    x->position.resize(n);
  }
  s.value.assign(v.begin(), v.end());
  t.value.resize(n);
  std::iota(s.position.begin(), s.position.end(), 0u);
  constexpr int kBits = 11;
  constexpr size_t kBuckets = size_t{1} << kBits;
  constexpr int kPasses = 3;
  std::vector<size_t> count(kPasses * kBuckets, 0);  // every pass's histogram from one read
  for (size_t i = 0; i < n; ++i) {
    const uint32_t k = float_key(v[i]);
    for (int p = 0; p < kPasses; ++p) ++count[p * kBuckets + ((k >> (p * kBits)) & (kBuckets - 1))];
  }
  for (int p = 0; p < kPasses; ++p) {
    size_t* c = count.data() + p * kBuckets;
    if (*std::max_element(c, c + kBuckets) == n) continue;  // one digit for all: nothing to move
    size_t sum = 0;
    for (size_t b = 0; b < kBuckets; ++b) sum += std::exchange(c[b], sum);
    const int shift = p * kBits;
    for (size_t i = 0; i < n; ++i) {
      size_t& slot = c[(float_key(s.value[i]) >> shift) & (kBuckets - 1)];
      t.value[slot] = s.value[i], t.position[slot] = s.position[i], ++slot;
    }
    std::swap(s, t);
  }
  std::vector<std::tuple<uint64_t, double, uint32_t>> run;
  for (size_t i = 0; i < n;) {
    const uint32_t k = float_key(s.value[i]);
    size_t j = i + 1;
    while (j < n && float_key(s.value[j]) == k) ++j;
    // A run of one double (PARC's two-valued label RDM is two such runs) needs no sort.
    if (j - i > 1 && std::any_of(s.value.begin() + i + 1, s.value.begin() + j, [&](double x) { return x != s.value[i]; })) {
      run.clear();
      for (size_t m = i; m < j; ++m) run.emplace_back(sort_key(s.value[m]), s.value[m], s.position[m]);
      std::sort(run.begin(), run.end());
      for (size_t m = i; m < j; ++m) std::tie(std::ignore, s.value[m], s.position[m]) = run[m - i];
    }
    i = j;
  }
  return s;
}
}  // namespace

std::vector<double> average_ranks(const std::vector<double>& v) {
  Sorted s;
  if (v.size() > 4096 && v.size() < UINT32_MAX) {
    s = radix_sort(v);
  } else {
    s.position.resize(v.size());
    std::iota(s.position.begin(), s.position.end(), 0u);
    std::stable_sort(s.position.begin(), s.position.end(),
                     [&](uint32_t a, uint32_t b) { return sort_key(v[a]) < sort_key(v[b]); });
    for (uint32_t i : s.position) s.value.push_back(v[i]);
  }
  std::vector<double> r;
  reserve_huge(r, v.size());
  r.resize(v.size());
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && s.value[j + 1] == s.value[i]) ++j;
    const double avg = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;
    for (size_t k = i; k <= j; ++k) r[s.position[k]] = avg;
    i = j + 1;
  }
  return r;
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const size_t n = a.size();
  if (n < 2 || b.size() != n) return std::numeric_limits<double>::quiet_NaN();
  double ma = std::accumulate(a.begin(), a.end(), 0.0) / n, mb = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < n; ++i) sab += (a[i] - ma) * (b[i] - mb), saa += (a[i] - ma) * (a[i] - ma), sbb += (b[i] - mb) * (b[i] - mb);
  if (saa <= 0 || sbb <= 0) return std::numeric_limits<double>::quiet_NaN();
  return sab / std::sqrt(saa * sbb);
}

double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() < 100000) return pearson(average_ranks(a), average_ranks(b));
  // Large (RDM triangles): rank the two sides at once.
  auto ranks_b = std::async(std::launch::async, [&b] { return average_ranks(b); });
  std::vector<double> ranks_a = average_ranks(a);
  return pearson(ranks_a, ranks_b.get());
}

}  // namespace zoobench
