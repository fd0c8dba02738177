// Domain Similarity's view of a model's own source data: one mean feature per
// source class, computed once per model and shared by every task.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>

#include "zoobench/error.h"
#include "zoobench/extract.h"
#include "zoobench/loader.h"
#include "zoobench/random.h"

namespace zoobench {

namespace {
// The entry's classes within one of its domains: generic entries name them
// "<domain>:<class>", single-domain entries by the bare class name.
std::vector<std::string> classes_in(const ManifestEntry& e, const std::string& domain) {
  std::vector<std::string> out;
  const std::string prefix = domain + ":";
  for (const auto& c : e.source_classes)
    if (c.rfind(prefix, 0) == 0) out.push_back(c.substr(prefix.size()));
  if (out.empty() && e.source_domains.size() == 1) out = e.source_classes;
  return out;
}
}  // namespace

SourceSummary source_summary(Model& model, const std::function<const ImageSet&(const std::string&)>& domain_set,
                             int per_class, int batch_size, uint64_t seed) {
  const ManifestEntry& e = model.entry();
  if (e.source_domains.empty())
    throw DataError("zoo entry '" + e.name + "' lists no source_domains: domain_similarity needs its source data");
  auto t0 = std::chrono::steady_clock::now();
  SourceSummary out;
  std::vector<at::Tensor> means;
  std::vector<double> counts;
  for (const auto& domain : e.source_domains) {
    const ImageSet& set = domain_set(domain);
    std::vector<std::string> wanted = classes_in(e, domain);
    if (wanted.empty()) wanted = set.class_names;
    for (const auto& name : wanted) {
      auto it = std::find(set.class_names.begin(), set.class_names.end(), name);
      if (it == set.class_names.end())
        throw DataError("zoo entry '" + e.name + "': source domain '" + domain + "' has no class '" + name + "'");
      const int64_t label = it - set.class_names.begin();
      std::vector<int64_t> idx;
      for (size_t i = 0; i < set.size(); ++i)
        if (set.labels[i] == label && set.split[i] == 0) idx.push_back(static_cast<int64_t>(i));
      if (idx.empty()) continue;
      const double total = static_cast<double>(idx.size());
      if (idx.size() > static_cast<size_t>(per_class)) {  // a seeded subset stands for a large class
        Rng rng(derive_seed(seed, "source/" + e.name + "/" + domain + "/" + name));
        rng.shuffle(idx);
        idx.resize(static_cast<size_t>(per_class));
        std::sort(idx.begin(), idx.end());
      }
      at::Tensor sum = at::zeros({model.feature_dim()}, at::kDouble);
      for (size_t lo = 0; lo < idx.size(); lo += static_cast<size_t>(batch_size)) {
        std::vector<int64_t> b(idx.begin() + static_cast<ptrdiff_t>(lo),
                               idx.begin() + static_cast<ptrdiff_t>(std::min(idx.size(), lo + batch_size)));
        sum += model.features(images_tensor(set, b, e.in_channels)).cpu().to(at::kDouble).sum(0);
      }
      means.push_back(sum / static_cast<double>(idx.size()));
      counts.push_back(total);
      out.classes.push_back(domain + ":" + name);
    }
  }
  if (means.empty()) throw DataError("zoo entry '" + e.name + "': its source domains have no training images");
  out.means = at::stack(means);
  out.counts = at::tensor(counts, at::kDouble);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace zoobench
