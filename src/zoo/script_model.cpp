// TorchScript entries: any model exported from PyTorch with `features` and
// (optionally) `forward` methods. LGC's gradients come from autograd, one
// sample and one logit combination at a time, projected by a dense Gaussian
// sketch: nothing about the architecture is assumed.
#include <torch/csrc/jit/passes/frozen_graph_optimizations.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <sstream>

#include "model_parts.h"
#include "zoobench/error.h"
#include "zoobench/random.h"

namespace zoobench::zoo {
namespace {

// The sketch matrix is drawn in blocks of this many columns, each from its own
// seed, so any chunking of the samples meets the same matrix.
constexpr int64_t kSketchBlock = 8192;

class ScriptTunable : public FineTunable {
 public:
  ScriptTunable(torch::jit::Module m, std::string method, InputTransform in, int64_t dim, int64_t classes)
      : m_(std::move(m)), method_(std::move(method)), in_(std::move(in)), head_(torch::nn::Linear(dim, classes)) {}
  at::Tensor forward(const at::Tensor& x) override { return head_->forward(m_.get_method(method_)({in_(x)}).toTensor()); }
  at::Tensor features(const at::Tensor& x) override {
    torch::NoGradGuard g;
    train(false);
    return m_.get_method(method_)({in_(x)}).toTensor();
  }
  std::vector<at::Tensor> parameters() override {
    std::vector<at::Tensor> p;
    for (const auto& t : m_.parameters()) {
      t.set_requires_grad(true);
      p.push_back(t);
    }
    for (const auto& t : head_->parameters()) p.push_back(t);
    return p;
  }
  std::vector<at::Tensor> buffers() override {
    std::vector<at::Tensor> b;
    for (const auto& t : m_.buffers()) b.push_back(t);
    return b;
  }
  void train(bool on) override {
    m_.train(on);
    head_->train(on);
  }
  void set_sync_batch_norm(comm::Collective* group) override {
    if (group)
      throw Error("data-parallel fine-tuning (execution.ranks_per_cell > 1) needs a zoobench architecture: "
                  "a TorchScript model's BatchNorm cannot be synchronised");
  }
  void to(const at::Device& d) override {
    m_.to(d);
    head_->to(d);
    in_.to(d);
  }

 private:
  torch::jit::Module m_;
  std::string method_;
  InputTransform in_;
  torch::nn::Linear head_;
};

// Only the differentiated tensor requires a gradient while sketching; the
// others are restored afterwards.
class RequiresGradScope {
 public:
  RequiresGradScope(torch::jit::Module& m, const at::Tensor& only) {
    for (const auto& p : m.parameters()) {
      saved_.emplace_back(p, p.requires_grad());
      p.set_requires_grad(p.is_same(only));
    }
  }
  ~RequiresGradScope() {
    for (auto& [p, on] : saved_) p.set_requires_grad(on);
  }

 private:
  std::vector<std::pair<at::Tensor, bool>> saved_;
};

class ScriptModel : public Model {
 public:
  ScriptModel(ManifestEntry e, torch::jit::Module m, std::string file)
      : Model(std::move(e)), m_(std::move(m)), in_(entry_), file_(std::move(file)) {
    m_.eval();
    prepare_inference();
  }
  at::Tensor features(const at::Tensor& x) override { return call(entry_.features_method, x); }
  // One forward pass where the module offers one (tools/export_torchscript.py
  // writes `features_and_logits`): calling `features` and then `forward`
  // would run the whole body twice.
  std::pair<at::Tensor, at::Tensor> features_and_logits(const at::Tensor& x) override {
    const std::string& method = entry_.features_and_logits_method;
    if (method.empty()) return {features(x), logits(x)};
    torch::NoGradGuard g;
    auto fn = inference_.find_method(method);
    if (!fn) throw DataError("zoo entry '" + name() + "': the TorchScript module has no method '" + method + "'");
    c10::IValue out = (*fn)({in_(x)});
    if (!out.isTuple() || out.toTupleRef().elements().size() != 2 || !out.toTupleRef().elements()[0].isTensor() ||
        !out.toTupleRef().elements()[1].isTensor())
      throw DataError("zoo entry '" + name() + "': method '" + method + "' must return a (features, logits) tuple of tensors");
    return {out.toTupleRef().elements()[0].toTensor(), out.toTupleRef().elements()[1].toTensor()};
  }
  at::Tensor logits(const at::Tensor& x) override {
    if (!has_source_head()) throw DataError("zoo entry '" + name() + "' has no source head (logits_method is empty)");
    return call(entry_.logits_method, x);
  }
  int64_t feature_dim() override {
    if (dim_ == 0) dim_ = features(torch::zeros({2, entry_.in_channels, entry_.input_size, entry_.input_size})).size(1);
    return dim_;
  }
  std::string sketch_target() override { return "dense:" + sketch_parameter().first; }

  // Row i, block l of the result: S g_il / sqrt(k), g_il the gradient of
  // v_l . out(x_i) with respect to the parameter, S a k x P standard Gaussian
  // matrix (k = K / m), the same for every l and sample. Costs N m backward
  // passes, N m P k multiply-adds and ceil(N / chunk) draws of S.
  at::Tensor grad_sketch(const at::Tensor& x, int m, int sketch_dim, uint64_t seed, int memory_mb) override {
    if (m < 1 || sketch_dim < m)
      throw Error("gradient sketch: sketch_dim (" + std::to_string(sketch_dim) + ") must be at least lgc_projections (" +
                  std::to_string(m) + ")");
    auto [pname, w] = sketch_parameter();
    const int64_t n = x.size(0), k = sketch_dim / m, p = w.numel();
    const double bytes_per_sample = 4.0 * static_cast<double>(p) * m;
    const int64_t chunk =
        std::max<int64_t>(1, std::min<int64_t>(n, static_cast<int64_t>(memory_mb * 1048576.0 / bytes_per_sample)));
    RequiresGradScope scope(m_, w);
    const at::Device dev = device();
    at::Tensor out = at::empty({n, m * k}, at::kFloat);
    at::Tensor held = at::empty({chunk * m, p}, w.options().dtype(at::kFloat));
    at::Tensor combos;  // m x outputs, drawn once the output width is known
    for (int64_t lo = 0; lo < n; lo += chunk) {
      const int64_t rows = std::min(chunk, n - lo);
      for (int64_t i = 0; i < rows; ++i) {
        at::Tensor z = output(x.narrow(0, lo + i, 1));
        if (!combos.defined()) combos = gaussian({m, z.size(1)}, seed * 2 + 3).to(dev);
        for (int l = 0; l < m; ++l) {
          at::Tensor s = (z[0] * combos[l]).sum();
          at::Tensor g = torch::autograd::grad({s}, {w}, {}, /*retain_graph=*/l + 1 < m, false, /*allow_unused=*/true)[0];
          if (!g.defined()) throw DataError("zoo entry '" + name() + "': the outputs do not depend on lgc_parameter '" + pname + "'");
          held[i * m + l].copy_(g.flatten());
        }
      }
      at::Tensor acc = at::zeros({rows * m, k}, held.options());
      at::Tensor g = held.narrow(0, 0, rows * m);
      for (int64_t c0 = 0, b = 0; c0 < p; c0 += kSketchBlock, ++b) {
        const int64_t cols = std::min(kSketchBlock, p - c0);
        at::Tensor s = gaussian({k, cols}, derive_seed(seed * 2 + 1, "lgc-sketch-block", static_cast<uint64_t>(b))).to(dev);
        acc.addmm_(g.narrow(1, c0, cols), s.t());
      }
      out.narrow(0, lo, rows).copy_((acc / std::sqrt(static_cast<double>(k))).view({rows, m * k}).cpu());
    }
    return out;
  }

  std::unique_ptr<FineTunable> finetune_copy(int64_t classes, uint64_t seed) override {
    int64_t dim = feature_dim();
    torch::manual_seed(seed);
    // A fresh load, not Module::clone(): cloned parameters are not leaves and cannot be optimised.
    // Checked again, so that a file changed since load_model is not run.
    std::istringstream bytes(read_verified(file_, entry_.sha256, "zoo entry '" + entry_.name + "'"));
    auto t = std::make_unique<ScriptTunable>(torch::jit::load(bytes), entry_.features_method, in_, dim, classes);
    t->to(device());
    return t;
  }
  void to(const at::Device& d) override {
    m_.to(d);
    in_.to(d);
    param_ = at::Tensor();  // the module holds new tensors now
    prepare_inference();    // a frozen module's weights are constants of its graphs: they do not move
  }
  at::Device device() const override { return in_.device(); }

 private:
  // Extraction runs freeze_for_inference's copy where there is one; the
  // gradient sketch and fine-tuning keep the module itself, whose parameters
  // they differentiate.
  void prepare_inference() {
    std::vector<std::string> methods;
    for (const std::string* m : {&entry_.features_method, &entry_.logits_method, &entry_.features_and_logits_method})
      if (!m->empty()) methods.push_back(*m);
    const at::Tensor probe = torch::randn({2, entry_.in_channels, entry_.input_size, entry_.input_size},
                                          at::detail::createCPUGenerator(0))
                                 .to(device());
    inference_ = freeze_for_inference(m_, methods, probe).value_or(m_);
  }
  at::Tensor call(const std::string& method, const at::Tensor& x) {
    torch::NoGradGuard g;
    return run(method, x, inference_);
  }
  at::Tensor run(const std::string& method, const at::Tensor& x) { return run(method, x, m_); }
  at::Tensor run(const std::string& method, const at::Tensor& x, torch::jit::Module& module) {
    auto fn = module.find_method(method);
    if (!fn) throw DataError("zoo entry '" + name() + "': the TorchScript module has no method '" + method + "'");
    return (*fn)({in_(x)}).toTensor();
  }
  // What LGC differentiates: the source logits, or the features of an entry without a source head.
  at::Tensor output(const at::Tensor& x) { return run(has_source_head() ? entry_.logits_method : entry_.features_method, x); }

  // The named parameter, or the last weight (>= 2 dimensions, in the
  // module's registration order) that the features depend on.
  std::pair<std::string, at::Tensor> sketch_parameter() {
    if (param_.defined()) return {param_name_, param_};
    std::vector<std::pair<std::string, at::Tensor>> weights;
    for (const auto& np : m_.named_parameters(/*recurse=*/true)) {
      if (!entry_.lgc_parameter.empty() && np.name == entry_.lgc_parameter) {
        param_name_ = np.name;
        param_ = np.value;
        return {param_name_, param_};
      }
      if (np.value.dim() >= 2) weights.emplace_back(np.name, np.value);
    }
    const std::string who = "zoo entry '" + name() + "'";
    if (!entry_.lgc_parameter.empty()) {
      std::string list;
      const size_t shown = std::min<size_t>(weights.size(), 24);
      for (size_t i = weights.size() - shown; i < weights.size(); ++i) list += (list.empty() ? "" : ", ") + weights[i].first;
      if (shown < weights.size()) list = "... (" + std::to_string(weights.size() - shown) + " more), " + list;
      throw DataError(who + ": lgc_parameter '" + entry_.lgc_parameter + "' names no parameter of the module; weights: " +
                      (list.empty() ? "none" : list));
    }
    if (weights.empty()) throw DataError(who + ": the module has no weight of 2 or more dimensions for LGC to differentiate");
    std::vector<at::Tensor> tensors;
    for (auto& [n, t] : weights) tensors.push_back(t);
    std::vector<bool> was;
    for (auto& t : tensors) was.push_back(t.requires_grad()), t.set_requires_grad(true);
    at::Tensor f = run(entry_.features_method, torch::rand({1, entry_.in_channels, entry_.input_size, entry_.input_size}));
    auto grads = torch::autograd::grad({f.sum()}, tensors, {}, false, false, /*allow_unused=*/true);
    for (size_t i = 0; i < tensors.size(); ++i) tensors[i].set_requires_grad(was[i]);
    for (size_t i = grads.size(); i-- > 0;)
      if (grads[i].defined()) {
        param_name_ = weights[i].first;
        param_ = weights[i].second;
        return {param_name_, param_};
      }
    throw DataError(who + ": the features depend on none of the module's weights; name one with lgc_parameter");
  }

  torch::jit::Module m_;
  torch::jit::Module inference_;  // prepare_inference's
  InputTransform in_;
  std::string file_;
  int64_t dim_ = 0;
  std::string param_name_;
  at::Tensor param_;
};

}  // namespace

namespace {
// The two results agree where every tensor in them does, to 1e-4 of the
// largest magnitude: folding changes the rounding, a wrong pass the values.
bool agree(const c10::IValue& got, const c10::IValue& want) {
  if (want.isTensor()) {
    if (!got.isTensor() || got.toTensor().sizes() != want.toTensor().sizes()) return false;
    const at::Tensor g = got.toTensor().to(at::kDouble), w = want.toTensor().to(at::kDouble);
    const double scale = w.numel() ? w.abs().max().item<double>() : 0.0;
    return g.numel() == 0 || (g - w).abs().max().item<double>() <= 1e-4 * scale;
  }
  if (want.isTuple()) {
    if (!got.isTuple()) return false;
    const auto& ge = got.toTupleRef().elements();
    const auto& we = want.toTupleRef().elements();
    if (ge.size() != we.size()) return false;
    for (size_t i = 0; i < we.size(); ++i)
      if (!agree(ge[i], we[i])) return false;
    return true;
  }
  return false;  // nothing this check can compare: not trusted
}
}  // namespace

std::optional<torch::jit::Module> freeze_for_inference(const torch::jit::Module& m, const std::vector<std::string>& methods,
                                                       const at::Tensor& probe) {
  std::vector<std::string> kept;  // `forward` is kept anyway
  for (const std::string& name : methods)
    if (name != "forward" && std::find(kept.begin(), kept.end(), name) == kept.end()) kept.push_back(name);
  std::vector<std::string> checked = kept;
  if (m.find_method("forward")) checked.push_back("forward");
  torch::NoGradGuard no_graph;
  auto agrees_with_the_module = [&](const torch::jit::Module& candidate) {
    for (const std::string& name : checked)
      if (!agree(candidate.get_method(name)({probe}), m.get_method(name)({probe}))) return false;
    return true;
  };
  auto frozen = [&]() {
    torch::jit::Module f = torch::jit::freeze(m, kept);
    // The C++ freeze optimises `forward` alone; Python's, every method kept.
    for (const std::string& name : kept) {
      std::shared_ptr<torch::jit::Graph> graph = f.get_method(name).graph();
      torch::jit::OptimizeFrozenGraph(graph, /*optimize_numerics=*/true);
    }
    return f;
  };
  try {
    if (probe.device().is_cpu()) {
      torch::jit::Module f = frozen();
      torch::jit::Module fast = torch::jit::optimize_for_inference(f, kept);
      if (agrees_with_the_module(fast)) return fast;
    }
    torch::jit::Module f = frozen();
    if (agrees_with_the_module(f)) return f;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

std::unique_ptr<Model> make_script_model(ManifestEntry e, torch::jit::Module m, std::string file) {
  return std::make_unique<ScriptModel>(std::move(e), std::move(m), std::move(file));
}

}  // namespace zoobench::zoo
