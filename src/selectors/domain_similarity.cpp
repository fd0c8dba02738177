// Domain Similarity (Cui et al. 2018): the Earth Mover's Distance between the
// source domain (per-class mean features of the model's own source training
// data, classes with >= 5 images, weighted by class size) and the target
// (per-class mean features of the scored samples, weighted by class size),
// Euclidean ground distance; DS = exp(-0.01 EMD). The transport problem is a
// min-cost flow solved by LEMON's NetworkSimplex; its supplies must balance
// exactly, so the weights are scaled to integers summing to 10^6 each
// (largest remainders) and the cost is divided back.
#include <ATen/ATen.h>
#include <lemon/network_simplex.h>
#include <lemon/smart_graph.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "zoobench/error.h"
#include "zoobench/selector.h"

namespace zoobench {
namespace {
constexpr int64_t kScale = 1000000;
constexpr double kGamma = 0.01;
constexpr double kMinSourceImages = 5;

// Non-negative weights -> integers summing to exactly kScale.
std::vector<int64_t> integer_weights(const std::vector<double>& w) {
  const double total = std::accumulate(w.begin(), w.end(), 0.0);
  std::vector<int64_t> out(w.size());
  std::vector<std::pair<double, size_t>> rem;
  int64_t used = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    const double exact = w[i] / total * static_cast<double>(kScale);
    out[i] = static_cast<int64_t>(std::floor(exact));
    used += out[i];
    rem.emplace_back(exact - static_cast<double>(out[i]), i);
  }
  // Largest remainders first; ties by index keep the rounding deterministic.
  std::sort(rem.begin(), rem.end(), [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  for (size_t k = 0; used < kScale; ++k, ++used) ++out[rem[k % rem.size()].second];
  return out;
}

// The EMD between two weighted point sets (rows of a and b), Euclidean ground distance.
double earth_movers_distance(const at::Tensor& a, const std::vector<double>& wa, const at::Tensor& b,
                             const std::vector<double>& wb) {
  using Graph = lemon::SmartDigraph;
  Graph g;
  std::vector<Graph::Node> na, nb;
  for (size_t i = 0; i < wa.size(); ++i) na.push_back(g.addNode());
  for (size_t j = 0; j < wb.size(); ++j) nb.push_back(g.addNode());
  at::Tensor dist = at::cdist(a.to(at::kDouble).unsqueeze(0), b.to(at::kDouble).unsqueeze(0)).squeeze(0);
  auto da = dist.accessor<double, 2>();
  Graph::ArcMap<double> cost(g);
  for (size_t i = 0; i < na.size(); ++i)
    for (size_t j = 0; j < nb.size(); ++j) cost[g.addArc(na[i], nb[j])] = da[static_cast<int64_t>(i)][static_cast<int64_t>(j)];
  Graph::NodeMap<int64_t> supply(g);
  std::vector<int64_t> ia = integer_weights(wa), ib = integer_weights(wb);
  for (size_t i = 0; i < na.size(); ++i) supply[na[i]] = ia[i];
  for (size_t j = 0; j < nb.size(); ++j) supply[nb[j]] = -ib[j];
  lemon::NetworkSimplex<Graph, int64_t, double> ns(g);
  ns.costMap(cost).supplyMap(supply);
  if (ns.run() != lemon::NetworkSimplex<Graph, int64_t, double>::OPTIMAL)
    throw Error("domain_similarity: the transport problem has no optimal solution");
  return ns.totalCost<double>() / static_cast<double>(kScale);
}

class DomainSimilarity : public Selector {
 public:
  std::string name() const override { return "domain_similarity"; }
  std::string variant() const override { return "class-means-count-weighted-emd-euclidean-gamma0.01-lemon"; }
  unsigned needs() const override { return kNeedFeatures | kNeedSourceDomain; }
  double score(const SelectorInputs& in) const override {
    // Source: classes with at least 5 images.
    std::vector<int64_t> keep;
    std::vector<double> ws;
    at::Tensor counts = in.source_class_counts.to(at::kDouble);
    auto ca = counts.accessor<double, 1>();
    for (int64_t s = 0; s < counts.size(0); ++s)
      if (ca[s] >= kMinSourceImages) keep.push_back(s), ws.push_back(ca[s]);
    if (keep.empty()) throw DataError("domain_similarity: no source class has 5 or more images");
    at::Tensor src = in.source_class_means.to(at::kDouble).index_select(0, at::tensor(keep));
    // Target: every class present among the scored samples.
    at::Tensor onehot = at::one_hot(in.labels, in.classes).to(at::kDouble);
    at::Tensor tc = onehot.sum(0);
    at::Tensor present = (tc > 0).nonzero().squeeze(1);
    at::Tensor tmeans = (at::mm(onehot.t(), in.features.to(at::kDouble)) / tc.clamp_min(1).unsqueeze(1)).index_select(0, present);
    at::Tensor tcount = tc.index_select(0, present).contiguous();
    std::vector<double> wt(tcount.data_ptr<double>(), tcount.data_ptr<double>() + tcount.numel());
    return std::exp(-kGamma * earth_movers_distance(src, ws, tmeans, wt));
  }
};
}  // namespace
ZOOBENCH_REGISTER_SELECTOR(DomainSimilarity)
}  // namespace zoobench
