// Internal to src/comm/: gradient bucketing shared by the MPI and NCCL
// collectives. Consecutive tensors of one dtype are packed into one flat
// buffer of at most bucket_bytes (a larger tensor gets a bucket of its own),
// so a model's many small tensors cost a few messages, not one each.
#pragma once
#include <ATen/ATen.h>

#include <utility>
#include <vector>

namespace zoobench::comm {

// [first, last) index ranges of the buckets; undefined and empty tensors are skipped.
inline std::vector<std::pair<size_t, size_t>> plan_buckets(const std::vector<at::Tensor>& ts, size_t bucket_bytes) {
  std::vector<std::pair<size_t, size_t>> out;
  size_t i = 0;
  while (i < ts.size()) {
    if (!ts[i].defined() || ts[i].numel() == 0) {
      ++i;
      continue;
    }
    size_t j = i, bytes = 0;
    while (j < ts.size() && ts[j].defined() && ts[j].numel() > 0 && ts[j].scalar_type() == ts[i].scalar_type() &&
           (j == i || bytes + ts[j].nbytes() <= bucket_bytes)) {
      bytes += ts[j].nbytes();
      ++j;
    }
    out.emplace_back(i, j);
    i = j;
  }
  return out;
}

// The bucket as one flat tensor; a lone contiguous tensor is used in place.
inline at::Tensor pack_bucket(const std::vector<at::Tensor>& ts, std::pair<size_t, size_t> r) {
  if (r.second - r.first == 1 && ts[r.first].is_contiguous()) return ts[r.first].view({-1});
  std::vector<at::Tensor> parts;
  for (size_t k = r.first; k < r.second; ++k) parts.push_back(ts[k].reshape({-1}));
  return at::cat(parts);
}

// Copies the flat result back into the tensors (nothing to do when used in place).
inline void unpack_bucket(std::vector<at::Tensor>& ts, std::pair<size_t, size_t> r, const at::Tensor& flat) {
  if (r.second - r.first == 1 && ts[r.first].is_contiguous()) return;
  int64_t off = 0;
  for (size_t k = r.first; k < r.second; ++k) {
    const int64_t n = ts[k].numel();
    ts[k].copy_(flat.narrow(0, off, n).view_as(ts[k]));
    off += n;
  }
}

}  // namespace zoobench::comm
