// Model-selection scores. Each selector is one .cpp in src/selectors/ that
// registers itself by name; selectors see arrays only (no models, files or
// MPI), so they are pure functions any program can call. Higher = better
// predicted transfer for every selector.
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

namespace zoobench {

struct SelectorInputs {
  at::Tensor features;      // N x D, float64
  at::Tensor labels;        // N, int64 in [0, classes)
  int64_t classes = 0;
  at::Tensor source_probs;  // N x Cs, float64, the source head's softmax (when needed)
  at::Tensor grad_sketch;   // N x K, float64 (when needed)
  // A probe model's features of the same N samples (RSA, DDS): N x Dp, float64.
  at::Tensor probe_features;
  // The model's own source training data, summarised per source class (Domain
  // Similarity): S x D mean features, float64, and the S class sizes.
  at::Tensor source_class_means, source_class_counts;
};

enum Need : unsigned {
  kNeedFeatures = 1,
  kNeedSourceProbs = 2,
  kNeedGradSketch = 4,
  kNeedProbeFeatures = 8,
  kNeedSourceDomain = 16,
};
// "features, source_probs", for messages and `score --list`.
std::string needs_text(unsigned needs);

class Selector {
 public:
  virtual ~Selector() = default;
  virtual std::string name() const = 0;
  virtual std::string variant() const = 0;  // the pinned variant (docs/selectors.md), stored with every score
  virtual unsigned needs() const = 0;       // Need bits
  virtual double score(const SelectorInputs& in) const = 0;
  // Scores defined relative to the zoo (NCTI min-max normalises its terms
  // over the models of a task) return their raw terms from terms() and map
  // the terms of every model to scores in combine(). For every other
  // selector terms = {score} and combine passes them through.
  virtual std::vector<double> terms(const SelectorInputs& in) const { return {score(in)}; }
  // Why this score cannot rank models on these inputs, or empty: a score that
  // sits at a limit it reaches by construction whatever the model (H-score =
  // C - 1 once the features span the samples) would rank the zoo by rounding
  // noise or by the order of ties. The value is kept; the ranking is not evidence.
  virtual std::string saturation(const SelectorInputs& in, double value) const {
    (void)in, (void)value;
    return {};
  }
  // The peak memory score() allocates, in bytes, for N samples of D features
  // (Dp: the probe model's), declared by the selectors whose memory grows
  // faster than N x D (the RDM scores hold N^2 / 2 pairs and their ranks), so
  // that a cell is refused before it allocates; 0 = linear in the inputs.
  virtual double memory_bytes(int64_t n, int64_t d, int64_t dp) const {
    (void)n, (void)d, (void)dp;
    return 0;
  }
  virtual std::vector<double> combine(const std::vector<std::vector<double>>& per_model) const {
    std::vector<double> out;
    for (const auto& t : per_model) out.push_back(t.at(0));
    return out;
  }
};

// Selector::combine over the models whose terms are all finite; a model
// ranked last (terms {-inf}: degenerate features) keeps -inf, one that could
// not be scored (a NaN term: no source data) keeps NaN.
std::vector<double> combine_finite(const Selector& s, const std::vector<std::vector<double>>& per_model);

// The registry: an unknown name throws listing every registered one.
void register_selector(std::unique_ptr<Selector> s);
const Selector& selector(const std::string& name);
std::vector<const Selector*> all_selectors();  // sorted by name
// Expands "all" and validates names (Error listing the known ones).
std::vector<const Selector*> selectors_from(const std::vector<std::string>& names);

// Why `s` cannot score these inputs within limit_mb MiB (extract.score_memory_mb):
// the memory it would need, and the largest extract.max_per_class whose
// samples would fit; empty when it fits.
std::string memory_refusal(const Selector& s, const SelectorInputs& in, int64_t limit_mb);

// Checks shapes, label range and finiteness; Error naming `who` (model and task) otherwise.
void validate_inputs(const SelectorInputs& in, unsigned needs, const std::string& who);

#define ZOOBENCH_REGISTER_SELECTOR(Class)                                  \
  namespace {                                                              \
  const bool registered_##Class = [] {                                     \
    ::zoobench::register_selector(std::make_unique<Class>());              \
    return true;                                                           \
  }();                                                                     \
  }

}  // namespace zoobench
