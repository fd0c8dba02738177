#include <algorithm>
#include <cstdint>
#include <cstring>
#include <future>
#include <utility>
#include <cmath>
#include <limits>
#include <numeric>

#include "zoobench/reduce.h"

namespace zoobench {

namespace {
// Order-preserving map of a double to an unsigned key (-0 and +0 share one).
inline uint64_t sort_key(double x) {
  if (x == 0) x = 0;
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return (bits & 0x8000000000000000ULL) ? ~bits : bits ^ 0x8000000000000000ULL;
}

// Stable LSD radix sort of the positions by key, 11 bits a pass; passes in
// which every key has the same digit are skipped. O(n) where std::sort is
// O(n log n): RDM correlations rank 10^5-10^7 values.
std::vector<uint32_t> radix_order(const std::vector<double>& v) {
  const size_t n = v.size();
  std::vector<uint64_t> key(n), key2(n);
  std::vector<uint32_t> idx(n), idx2(n);
  for (size_t i = 0; i < n; ++i) key[i] = sort_key(v[i]), idx[i] = static_cast<uint32_t>(i);
  constexpr int kBits = 11;
  constexpr size_t kBuckets = size_t{1} << kBits;
  std::vector<size_t> count(kBuckets);
  for (int shift = 0; shift < 64; shift += kBits) {
    std::fill(count.begin(), count.end(), 0);
    for (size_t i = 0; i < n; ++i) ++count[(key[i] >> shift) & (kBuckets - 1)];
    if (*std::max_element(count.begin(), count.end()) == n) continue;
    size_t sum = 0;
    for (auto& c : count) sum += std::exchange(c, sum);
    for (size_t i = 0; i < n; ++i) {
      size_t& slot = count[(key[i] >> shift) & (kBuckets - 1)];
      key2[slot] = key[i], idx2[slot] = idx[i], ++slot;
    }
    key.swap(key2);
    idx.swap(idx2);
  }
  return idx;
}
}  // namespace

std::vector<double> average_ranks(const std::vector<double>& v) {
  std::vector<uint32_t> order;
  if (v.size() > 4096 && v.size() < UINT32_MAX) {
    order = radix_order(v);
  } else {
    order.resize(v.size());
    std::iota(order.begin(), order.end(), 0u);
    std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return v[a] < v[b]; });
  }
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    double avg = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;
    for (size_t k = i; k <= j; ++k) r[order[k]] = avg;
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
