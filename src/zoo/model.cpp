// Model implementations: zoobench's own networks and TorchScript files.
#include <torch/script.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <optional>
#include <sstream>
#include <tuple>

#include "model_parts.h"
#include "nets.h"
#include "zoobench/error.h"
#include "zoobench/model.h"

namespace zoobench {
namespace fs = std::filesystem;
using zoo::Net;

namespace {

at::Tensor channel_tensor(const std::vector<double>& v, int channels, double fill) {
  std::vector<float> f(static_cast<size_t>(channels), static_cast<float>(fill));
  for (size_t c = 0; c < f.size() && c < v.size(); ++c) f[c] = static_cast<float>(v[c]);
  return torch::tensor(f).view({1, channels, 1, 1});
}

}  // namespace

Model::Traced Model::features_logits_and_sketch(const at::Tensor& x, int m, int sketch_dim, uint64_t seed, int memory_mb) {
  Traced t;
  const auto t0 = std::chrono::steady_clock::now();
  if (has_source_head())
    std::tie(t.features, t.logits) = features_and_logits(x);
  else
    t.features = features(x);
  const auto t1 = std::chrono::steady_clock::now();
  t.sketch = grad_sketch(x, m, sketch_dim, seed, memory_mb);
  t.seconds_features = std::chrono::duration<double>(t1 - t0).count();
  t.seconds_sketch = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  return t;
}

at::Tensor resize_to_input(const at::Tensor& x, int input_size) {
  if (x.size(-1) == input_size && x.size(-2) == input_size) return x;
  // torchvision's Resize(antialias=True) calls this kernel: the same
  // triangle filter widened by the scale when shrinking, plain bilinear when
  // enlarging, half-pixel centres.
  return at::_upsample_bilinear2d_aa(x, {input_size, input_size}, /*align_corners=*/false);
}

namespace zoo {

InputTransform::InputTransform(const ManifestEntry& e)
    : mean_(channel_tensor(e.mean, e.in_channels, 0.0)), std_(channel_tensor(e.std, e.in_channels, 1.0)), size_(e.input_size) {}

at::Tensor InputTransform::operator()(const at::Tensor& x) const {
  return (resize_to_input(x.to(mean_.device()), size_) - mean_) / std_;
}

void InputTransform::to(const at::Device& d) {
  mean_ = mean_.to(d);
  std_ = std_.to(d);
}

at::Tensor gaussian(std::vector<int64_t> shape, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat));
}

}  // namespace zoo

namespace {
using zoo::gaussian;
using Normaliser = zoo::InputTransform;

class BuiltinTunable : public FineTunable {
 public:
  BuiltinTunable(Net net, Normaliser norm, int64_t classes) : net_(std::move(net)), norm_(std::move(norm)) {
    head_ = torch::nn::Linear(net_->feature_dim, classes);
  }
  at::Tensor forward(const at::Tensor& x) override {
    if (folded_ && !torch::GradMode::is_enabled()) return head_->forward(folded_->features(norm_(x)));
    return head_->forward(net_->features(norm_(x)));
  }
  at::Tensor features(const at::Tensor& x) override {
    torch::NoGradGuard g;
    train(false);
    return folded_->features(norm_(x));
  }
  std::vector<at::Tensor> parameters() override {
    std::vector<at::Tensor> p;
    // The source heads get no gradient; leave them out so weight decay does not touch them.
    for (const auto& kv : net_->named_parameters())
      if (kv.key().rfind("head", 0) != 0) p.push_back(kv.value());
    for (const auto& t : head_->parameters()) p.push_back(t);
    return p;
  }
  std::vector<at::Tensor> buffers() override {
    std::vector<at::Tensor> b;
    for (const auto& t : net_->buffers()) b.push_back(t);
    return b;
  }
  // Evaluation runs a folded snapshot of the net (zoo::FoldedNet), as
  // extraction does, made when training stops: the weights change only in
  // training mode.
  void train(bool on) override {
    net_->train(on);
    head_->train(on);
    if (on)
      folded_.reset();
    else if (!folded_)
      folded_.emplace(*net_);
  }
  void set_sync_batch_norm(comm::Collective* group) override { net_->set_sync(group); }
  void to(const at::Device& d) override {
    net_->to(d);
    head_->to(d);
    norm_.to(d);
    if (folded_) folded_.emplace(*net_);
  }

 private:
  Net net_;
  Normaliser norm_;
  torch::nn::Linear head_{nullptr};
  std::optional<zoo::FoldedNet> folded_;
};

class BuiltinModel : public Model {
 public:
  // Inference runs the folded snapshot of the net (zoo::FoldedNet): the
  // model's parameters never change after loading; finetune_copy clones the
  // unfolded net.
  BuiltinModel(ManifestEntry e, Net net) : Model(std::move(e)), net_(std::move(net)), norm_(entry_) {
    net_->set_domain(entry_.domain_index);
    net_->eval();
    folded_.emplace(*net_);
  }
  at::Tensor features(const at::Tensor& x) override {
    torch::NoGradGuard g;
    return folded_->features(norm_(x));
  }
  at::Tensor logits(const at::Tensor& x) override {
    torch::NoGradGuard g;
    return net_->heads[net_->active]->forward(folded_->features(norm_(x)));
  }
  std::pair<at::Tensor, at::Tensor> features_and_logits(const at::Tensor& x) override {
    torch::NoGradGuard g;
    at::Tensor f = folded_->features(norm_(x));
    return {f, net_->heads[net_->active]->forward(f)};
  }
  int64_t feature_dim() override { return net_->feature_dim; }

  std::string sketch_target() override {
    const at::Tensor w = net_->last_conv()->weight;
    for (const auto& kv : net_->named_parameters())
      if (kv.value().is_same(w)) return "kronecker:" + kv.key();
    return "kronecker:last_conv";
  }

  at::Tensor grad_sketch(const at::Tensor& x, int m, int sketch_dim, uint64_t seed, int /*memory_mb*/) override {
    return trace(x, m, sketch_dim, seed).sketch;
  }
  Traced features_logits_and_sketch(const at::Tensor& x, int m, int sketch_dim, uint64_t seed, int) override {
    return trace(x, m, sketch_dim, seed);
  }
  std::unique_ptr<FineTunable> finetune_copy(int64_t classes, uint64_t seed) override {
    torch::manual_seed(seed);
    Net copy = zoo::clone_net(net_);  // serialised through the CPU
    auto t = std::make_unique<BuiltinTunable>(copy, norm_, classes);
    t->to(device());
    return t;
  }
  void to(const at::Device& d) override {
    net_->to(d);
    norm_.to(d);
    folded_.emplace(*net_);
  }
  at::Device device() const override { return norm_.device(); }

 private:
  // In chunks whose last-layer activations take about 8 MiB: a batch of 256
  // through a width-128 ResNet made each of the pass's dozen tensors of that
  // size 33 MiB, over glibc's largest mmap threshold (32 MiB), so every one
  // was mapped and faulted in anew (BM_ExtractSketch: README, Performance).
  // The projections are drawn from the seed, the same for every chunk.
  Traced trace(const at::Tensor& x, int m, int sketch_dim, uint64_t seed) {
    // Both architectures halve the image twice before their last layer.
    const int64_t per_image = net_->last_conv()->options.out_channels() * (x.size(-2) / 4) * (x.size(-1) / 4) * 4;
    // At least a block of 16 images for every thread (zoo::FoldedNet).
    const int64_t chunk = std::max<int64_t>(16 * at::get_num_threads(),
                                            (int64_t{8} << 20) / std::max<int64_t>(per_image, 1) / 16 * 16);
    if (x.size(0) <= chunk) return trace_chunk(x, m, sketch_dim, seed);
    Traced all;
    std::vector<at::Tensor> f, z, s;
    for (int64_t lo = 0; lo < x.size(0); lo += chunk) {
      Traced t = trace_chunk(x.narrow(0, lo, std::min(chunk, x.size(0) - lo)), m, sketch_dim, seed);
      f.push_back(t.features);
      z.push_back(t.logits);
      s.push_back(t.sketch);
      all.seconds_features += t.seconds_features;
      all.seconds_sketch += t.seconds_sketch;
    }
    all.features = torch::cat(f);
    all.logits = torch::cat(z);
    all.sketch = torch::cat(s);
    return all;
  }

  // The forward pass up to the logits, without an autograd graph before the
  // last convolution, then m backward passes from its output.
  Traced trace_chunk(const at::Tensor& x, int m, int sketch_dim, uint64_t seed) {
    const auto t0 = std::chrono::steady_clock::now();  // the sketch's clock: its draws, the pass and the rest
    auto conv = net_->last_conv();
    const int64_t cout = conv->options.out_channels(), cin = conv->options.in_channels();
    const auto k = conv->options.kernel_size(), stride = conv->options.stride();
    const auto pad = c10::get<torch::ExpandingArray<2>>(conv->options.padding());
    // K = sketch_dim in all: m combinations of K / m = k1 x k2 entries each.
    if (m < 1 || sketch_dim < m)
      throw Error("gradient sketch: sketch_dim (" + std::to_string(sketch_dim) + ") must be at least lgc_projections (" +
                  std::to_string(m) + ")");
    const int64_t per = sketch_dim / m;
    int64_t k1 = static_cast<int64_t>(std::floor(std::sqrt(static_cast<double>(per))));
    while (per % k1 != 0) --k1;  // the most square exact factorisation k1 x k2 = K / m
    const int64_t k2 = per / k1;
    // Kronecker-structured projection: the weight gradient of sample i is
    // sum_p delta_p (x) patch_p, so (A (x) B) vec(G_i) = sum_p (A delta_p)(B patch_p)^T
    // is computed without ever forming G_i. E[A^T A] = I, E[B^T B] = I.
    at::Tensor A = gaussian({k1, cout}, seed * 2 + 1) / std::sqrt(static_cast<double>(k1));
    at::Tensor B = gaussian({k2, cin * (*k)[0] * (*k)[1]}, seed * 2 + 2) / std::sqrt(static_cast<double>(k2));
    at::Tensor V = gaussian({m, static_cast<int64_t>(entry_.head_classes.at(entry_.domain_index))}, seed * 2 + 3);
    A = A.to(device());  // drawn on the CPU, so every device sketches with the same matrices
    B = B.to(device());
    V = V.to(device());
    Traced out;
    const auto forward = std::chrono::steady_clock::now();
    // The folded net up to the last convolution's output, BatchNorm folded
    // in; the graph starts there. Eval-mode BatchNorm is y = scale * c +
    // shift, so dL/dc = scale * dL/dy, channel by channel.
    const zoo::FoldedNet::LastLayer last = folded_->last_layer(norm_(x));
    const torch::Tensor& last_in = last.in;
    const torch::Tensor last_out = last.out_bn.detach().requires_grad_(true);
    const torch::Tensor scale = folded_->last_scale().view({1, -1, 1, 1});
    torch::Tensor feats = folded_->features_from(last, last_out);
    torch::Tensor z = net_->heads[net_->active]->forward(feats);
    out.features = feats.detach();
    out.logits = z.detach();
    out.seconds_features = std::chrono::duration<double>(std::chrono::steady_clock::now() - forward).count();
    // B patch_p for every position p at once: a convolution of the last
    // convolution's input with B's rows as k2 filters (the patches never
    // formed: unfolding them took N x cin k^2 x L floats, 300 MB a batch).
    namespace F = torch::nn::functional;
    torch::Tensor bp;
    {
      torch::NoGradGuard no_graph;
      bp = F::conv2d(last_in.detach(), B.view({k2, cin, (*k)[0], (*k)[1]}),
                     F::Conv2dFuncOptions().stride({(*stride)[0], (*stride)[1]}).padding({(*pad)[0], (*pad)[1]}))
               .flatten(2);  // N x k2 x L
    }
    std::vector<torch::Tensor> parts;
    for (int j = 0; j < m; ++j) {
      // Eval-mode BatchNorm keeps samples independent, so the gradient of the
      // batch sum is every sample's own gradient.
      torch::Tensor s = (z * V[j]).sum();
      torch::Tensor delta = torch::autograd::grad({s}, {last_out}, {}, /*retain_graph=*/j + 1 < m)[0] * scale;
      torch::Tensor ad = torch::matmul(A, delta.flatten(2));             // N x k1 x L
      parts.push_back(torch::bmm(ad, bp.transpose(1, 2)).flatten(1));    // N x k1*k2
    }
    out.sketch = torch::cat(parts, 1).detach().cpu();
    out.seconds_sketch = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return out;
  }

  Net net_;
  Normaliser norm_;
  std::optional<zoo::FoldedNet> folded_;
};

std::string shape_text(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? " x " : "") + std::to_string(t.size(i));
  return s + "]";
}

// TorchScript errors carry the script's traceback; the cause is the last line.
std::string last_line(const std::string& text) {
  size_t end = text.find_last_not_of(" \n");
  if (end == std::string::npos) return text;
  size_t start = text.rfind('\n', end);
  return text.substr(start == std::string::npos ? 0 : start + 1, end + 1 - (start == std::string::npos ? 0 : start + 1));
}

}  // namespace

std::unique_ptr<Model> load_model(const Manifest& manifest, const ManifestEntry& e, const LoadRules& rules) {
  const std::string who = "zoo entry '" + e.name + "'";
  const fs::path file = weights_file(manifest, e, rules);
  // Loaded from the bytes that were hashed, not by opening the file again.
  std::istringstream bytes(read_verified(file, e.sha256, who));
  std::unique_ptr<Model> model;
  if (e.format == "builtin") {
    if (e.head_classes.empty()) throw DataError(who + ": builtin entry lists no head_classes");
    Net net(zoo::NetSpec{e.arch, e.width, e.in_channels, e.head_classes});
    try {
      torch::load(net, bytes);
    } catch (const c10::Error& err) {
      throw DataError(who + ": cannot load '" + file.string() + "': " + std::string(err.what_without_backtrace()));
    }
    model = std::make_unique<BuiltinModel>(e, std::move(net));
  } else if (e.format == "torchscript") {
    torch::jit::Module m;
    try {
      m = torch::jit::load(bytes);
    } catch (const c10::Error& err) {
      throw DataError(who + ": cannot load TorchScript '" + file.string() + "': " + err.what_without_backtrace());
    }
    model = zoo::make_script_model(e, std::move(m), file.string());
  } else {
    throw DataError(who + ": unknown format '" + e.format + "' (known: builtin, torchscript)");
  }
  // Probe the shapes once so a wrong export fails here, not mid-run.
  at::Tensor probe = torch::rand({2, e.in_channels, e.input_size, e.input_size});
  at::Tensor f, z, f1, z1;
  try {
    f = model->features(probe);
    if (model->has_source_head()) z = model->logits(probe);
    if (!e.features_and_logits_method.empty()) std::tie(f1, z1) = model->features_and_logits(probe);
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& err) {
    throw DataError(who + ": running the model on " + shape_text(probe) + " inputs (input_size " +
                    std::to_string(e.input_size) + ") failed: " + last_line(err.what_without_backtrace()));
  } catch (const std::exception& err) {  // TorchScript's interpreter throws its own exceptions
    throw DataError(who + ": running the model on " + shape_text(probe) + " inputs (input_size " +
                    std::to_string(e.input_size) + ") failed: " + last_line(err.what()));
  }
  if (f.dim() != 2 || f.size(0) != 2)
    throw DataError(who + ": features returned " + shape_text(f) + " for 2 inputs, expected 2 x D");
  int64_t cs = static_cast<int64_t>(e.source_classes.size());
  if (model->has_source_head() && (z.dim() != 2 || z.size(0) != 2 || (cs > 0 && z.size(1) != cs)))
    throw DataError(who + ": logits returned " + shape_text(z) + " for 2 inputs, expected 2 x " +
                    (cs > 0 ? std::to_string(cs) : "C") + " (source classes)");
  // The one-pass method must give what the two methods give, in that order.
  if (f1.defined() && (!f1.sizes().equals(f.sizes()) || !z1.sizes().equals(z.sizes()) ||
                       !at::allclose(f1, f, 1e-4, 1e-5) || !at::allclose(z1, z, 1e-4, 1e-5)))
    throw DataError(who + ": " + e.features_and_logits_method + " returned (" + shape_text(f1) + ", " + shape_text(z1) +
                    "), not what " + e.features_method + " and " + e.logits_method + " return (" + shape_text(f) + ", " +
                    shape_text(z) + ")");
  return model;
}

}  // namespace zoobench
