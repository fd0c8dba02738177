#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <mutex>

#include "zoobench/error.h"
#include "zoobench/selector.h"

namespace zoobench {
namespace {
std::map<std::string, std::unique_ptr<Selector>>& table() {
  static std::map<std::string, std::unique_ptr<Selector>> t;
  return t;
}
std::string known() {
  std::string s;
  for (const auto& [k, v] : table()) s += (s.empty() ? "" : ", ") + k;
  return s;
}
}  // namespace

void register_selector(std::unique_ptr<Selector> s) {
  std::string n = s->name();
  table()[n] = std::move(s);
}

const Selector& selector(const std::string& name) {
  auto it = table().find(name);
  if (it == table().end()) throw ConfigError("unknown selector '" + name + "' (known: " + known() + ")");
  return *it->second;
}

std::vector<const Selector*> all_selectors() {
  std::vector<const Selector*> v;
  for (const auto& [k, s] : table()) v.push_back(s.get());
  return v;
}

std::vector<const Selector*> selectors_from(const std::vector<std::string>& names) {
  std::vector<const Selector*> out;
  for (const auto& n : names) {
    if (n == "all") return all_selectors();
    const Selector* s = &selector(n);
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  }
  return out;
}

std::vector<double> combine_finite(const Selector& s, const std::vector<std::vector<double>>& per_model) {
  std::vector<double> out(per_model.size(), -std::numeric_limits<double>::infinity());
  std::vector<std::vector<double>> finite;
  std::vector<size_t> where;
  for (size_t m = 0; m < per_model.size(); ++m) {
    if (std::any_of(per_model[m].begin(), per_model[m].end(), [](double x) { return std::isnan(x); }))
      out[m] = std::numeric_limits<double>::quiet_NaN();  // not scored (no source data): no value, not last
    else if (std::all_of(per_model[m].begin(), per_model[m].end(), [](double x) { return std::isfinite(x); }))
      finite.push_back(per_model[m]), where.push_back(m);
  }
  if (finite.empty()) return out;
  std::vector<double> v = s.combine(finite);
  for (size_t i = 0; i < where.size(); ++i) out[where[i]] = v[i];
  return out;
}

std::string needs_text(unsigned needs) {
  static const std::pair<unsigned, const char*> names[] = {{kNeedFeatures, "features"},
                                                           {kNeedSourceProbs, "source_probs"},
                                                           {kNeedGradSketch, "grad_sketch"},
                                                           {kNeedProbeFeatures, "probe_features"},
                                                           {kNeedSourceDomain, "source_domain"}};
  std::string s;
  for (const auto& [bit, name] : names)
    if (needs & bit) s += (s.empty() ? "" : ", ") + std::string(name);
  return s;
}

namespace {
std::string gigabytes(double bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f GB", bytes / 1e9);
  return b;
}
std::string thousands(int64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}
}  // namespace

std::string memory_refusal(const Selector& s, const SelectorInputs& in, int64_t limit_mb) {
  const int64_t n = in.features.defined() ? in.features.size(0) : in.labels.size(0);
  const int64_t d = in.features.defined() ? in.features.size(1) : 0;
  const int64_t dp = in.probe_features.defined() ? in.probe_features.size(1) : 0;
  const double limit = static_cast<double>(limit_mb) * 1048576.0;
  const double need = s.memory_bytes(n, d, dp);
  if (need <= limit) return {};
  // The largest N that fits (the estimates grow with N), then per class.
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (s.memory_bytes(mid, d, dp) <= limit) lo = mid;
    else hi = mid - 1;
  }
  const int64_t per_class = in.classes > 0 ? lo / in.classes : 0;
  std::string msg = "selector '" + s.name() + "' would need " + gigabytes(need) + " at N = " + thousands(n) +
                    " samples, over extract.score_memory_mb = " + std::to_string(limit_mb) + " MiB; ";
  if (per_class >= 1)
    msg += "extract.max_per_class: " + std::to_string(per_class) + " would fit (N <= " + thousands(per_class * in.classes) +
           " over " + std::to_string(in.classes) + " classes)";
  else
    msg += "no extract.max_per_class fits: raise extract.score_memory_mb";
  return msg;
}

void validate_inputs(const SelectorInputs& in, unsigned needs, const std::string& who) {
  auto fail = [&](const std::string& m) { throw DataError(who + ": " + m); };
  if (!in.labels.defined() || in.labels.dim() != 1) fail("labels must be a vector");
  const int64_t n = in.labels.size(0);
  if (n == 0) fail("no samples (N = 0)");
  if (in.classes < 2) fail("needs at least 2 classes");
  if (in.labels.min().item<int64_t>() < 0 || in.labels.max().item<int64_t>() >= in.classes)
    fail("labels out of range [0, " + std::to_string(in.classes) + ")");
  auto check = [&](const at::Tensor& t, const char* what) {
    if (!t.defined()) fail(std::string(what) + " are missing (the model provides none)");
    if (t.dim() != 2) fail(std::string(what) + " must be a matrix");
    if (t.size(0) != n)
      fail(std::string(what) + " have " + std::to_string(t.size(0)) + " rows, labels " + std::to_string(n));
    if (!at::isfinite(t).all().item<bool>()) fail(std::string(what) + " contain NaN or Inf");
  };
  if (needs & kNeedFeatures) check(in.features, "features");
  if (needs & kNeedSourceProbs) check(in.source_probs, "source probabilities");
  if (needs & kNeedGradSketch) check(in.grad_sketch, "gradient sketches");
  if (needs & kNeedProbeFeatures) check(in.probe_features, "probe-model features");
  if (needs & kNeedSourceDomain) {
    const at::Tensor& m = in.source_class_means;
    if (!m.defined() || !in.source_class_counts.defined())
      fail("source-domain features are missing (the model lists no source data)");
    if (m.dim() != 2 || m.size(0) == 0) fail("source-domain class means must be a non-empty S x D matrix");
    if (in.features.defined() && m.size(1) != in.features.size(1))
      fail("source-domain class means have " + std::to_string(m.size(1)) + " columns, features " +
           std::to_string(in.features.size(1)));
    if (in.source_class_counts.dim() != 1 || in.source_class_counts.size(0) != m.size(0))
      fail("source-domain class counts must hold one count per class mean");
    if (!at::isfinite(m).all().item<bool>()) fail("source-domain class means contain NaN or Inf");
  }
}

}  // namespace zoobench
