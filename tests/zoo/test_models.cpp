#include <gtest/gtest.h>
#include <limits>
#include <set>
#include <torch/torch.h>

#include "../common.h"
#include "zoo/model_parts.h"
#include "graph_has.h"
#include "zoo/nets.h"
#include "zoobench/augment.h"
#include "zoobench/error.h"
#include "zoobench/extract.h"
#include "zoobench/h5.h"
#include "zoobench/h5_tensor.h"
#include "zoobench/model.h"
#include "zoobench/simd.h"
#include "zoobench/task.h"

using namespace zoobench;

namespace {

std::string error_of(const std::function<void()>& f) { return zbtest::error_of<Error>(f); }

// tools/export_torchscript.py's small model, with its manifest and
// reference outputs, into `dir`; the exporter's exit status.
int export_small(const std::filesystem::path& dir, const std::string& flags) {
  return zbtest::run_python(std::string(ZB_SOURCE_DIR) + "/tools/export_torchscript.py " + dir.string() + " " + flags +
                            " > /dev/null");
}

// BatchNorm as a trained net has it: scales, shifts and statistics away from
// the identity, so that folding them into the convolutions is exercised.
void trained_batch_norm(zoo::NetImpl& net) {
  torch::NoGradGuard no_graph;
  for (auto& m : net.modules(/*include_self=*/false))
    if (auto* bn = m->as<torch::nn::BatchNorm2dImpl>()) {
      bn->weight.uniform_(0.5, 1.5);
      bn->bias.normal_(0.0, 0.3);
      bn->running_mean.normal_(0.0, 0.5);
      bn->running_var.uniform_(0.2, 3.0);
    }
}

// A built-in model saved to `dir`, with its manifest entry.
struct Builtin {
  zoo::Net net{zoo::NetSpec{"cnn", 2, 1, {3}}};
  Manifest manifest;
  explicit Builtin(const std::filesystem::path& dir, const std::string& arch = "cnn", int width = 2) {
    torch::manual_seed(3);
    net = zoo::Net(zoo::NetSpec{arch, width, 1, {3}});
    trained_batch_norm(*net);
    net->eval();
    torch::save(net, (dir / "w.pt").string());
    ManifestEntry e;
    e.name = "tiny-" + arch;
    e.arch = arch;
    e.width = width;
    e.weights = "w.pt";
    e.sha256 = sha256_file(dir / "w.pt");
    e.in_channels = 1;
    e.mean = {0.5};
    e.std = {0.5};
    e.head_classes = {3};
    e.source_classes = {"a", "b", "c"};
    manifest.dir = dir;
    manifest.entries = {e};
  }
};

}  // namespace

// Inference's folded network computes what the net computes in eval mode:
// every architecture, a second domain's BatchNorm, through the lane kernels
// and through oneDNN, on a ragged batch (three blocks of
// lanes, the last with 5 images).
TEST(FoldedNet, MatchesTheNetInEvalMode) {
  for (const std::string arch : {"resnet8", "resnet14", "cnn"}) {
    torch::manual_seed(7);
    zoo::Net net(zoo::NetSpec{arch, 6, 3, {3, 5}});
    trained_batch_norm(*net);
    net->set_domain(1);
    net->eval();
    const zoo::FoldedNet folded(*net), folded_onednn(*net, /*lane_kernels=*/false);
    EXPECT_TRUE(folded.uses_lane_kernels()) << arch;
    EXPECT_FALSE(folded_onednn.uses_lane_kernels()) << arch;
    const at::Tensor x = torch::randn({37, 3, 32, 32});
    torch::NoGradGuard no_graph;
    const at::Tensor want = net->features(x);
    for (const zoo::FoldedNet* f : {&folded, &folded_onednn}) {
      const at::Tensor got = f->features(x);
      EXPECT_TRUE(at::allclose(got, want, 1e-4, 1e-5))
          << arch << (f->uses_lane_kernels() ? " (lanes)" : " (oneDNN)") << ": max |diff| "
          << (got - want).abs().max().item<float>() << " of " << want.abs().max().item<float>();
    }
    // The start of LGC's traced pass (its gradients: GradSketch.*), the same
    // from both kernels; the rest of the net from there gives the features.
    const zoo::FoldedNet::LastLayer last = folded.last_layer(x), ref = folded_onednn.last_layer(x);
    EXPECT_TRUE(at::allclose(last.in, ref.in, 1e-4, 1e-5)) << arch;
    EXPECT_TRUE(at::allclose(last.out_bn, ref.out_bn, 1e-4, 1e-5)) << arch;
    EXPECT_EQ(last.skip.defined(), arch != "cnn");
    if (last.skip.defined()) EXPECT_TRUE(at::allclose(last.skip, ref.skip, 1e-4, 1e-5)) << arch;
    EXPECT_TRUE(at::allclose(folded.features_from(last, last.out_bn), want, 1e-4, 1e-5)) << arch;
    // A block's images do not meet: an image's features are the same bits
    // in a batch of 37 and in one of 2.
    EXPECT_TRUE(at::equal(folded.features(x.narrow(0, 17, 2)), folded.features(x).narrow(0, 17, 2))) << arch;
    // A NaN pixel spoils its own image's features, as it would through torch's
    // operators, and no other image's.
    at::Tensor spoilt = x.clone();
    spoilt[18][1][5][5] = std::numeric_limits<float>::quiet_NaN();
    const at::Tensor nan_rows = folded.features(spoilt).isnan().any(1);
    EXPECT_TRUE(nan_rows[18].item<bool>()) << arch;
    EXPECT_EQ(nan_rows.sum().item<int64_t>(), 1) << arch;
    EXPECT_NE(error_of([&] { folded.features(x.narrow(1, 0, 2)); }).find("3 input channels got 2 x 32 x 32"),
              std::string::npos)
        << arch;
    net->set_domain(0);  // the other domain's statistics: another result, so the fold took domain 1's
    EXPECT_FALSE(at::allclose(folded.features(x), net->features(x), 1e-2, 1e-3)) << arch;
  }
}

// Extraction's copy of a TorchScript module: frozen, so no parameters are
// left (they are constants of its graphs, BatchNorm folded into the
// convolutions), with the module's outputs; a method the module lacks leaves
// nothing to freeze, and extraction runs the module itself.
TEST(TorchScript, FrozenForInference) {
  zbtest::TempDir d;
  ASSERT_EQ(export_small(d.path(), "--channels 3 --classes 7"), 0);
  Manifest man = Manifest::load(d / "manifest.yaml");
  torch::jit::Module m = torch::jit::load((man.dir / man.entries[0].weights).string());
  m.eval();
  const at::Tensor x = h5::read_matrix(h5::File::open(d / "reference.h5"), "input");
  const std::optional<torch::jit::Module> frozen = zoo::freeze_for_inference(m, {"features", "forward"}, x);
  ASSERT_TRUE(frozen.has_value());
  EXPECT_GT(m.parameters().size(), 0u);
  EXPECT_EQ(frozen->parameters().size(), 0u);
  torch::NoGradGuard no_graph;
  for (const std::string method : {"features", "forward"}) {
    const at::Tensor want = m.get_method(method)({x}).toTensor();
    const at::Tensor got = torch::jit::Module(*frozen).get_method(method)({x}).toTensor();
    EXPECT_TRUE(at::allclose(got, want, 1e-4, 1e-5)) << method << ": max |diff| " << (got - want).abs().max().item<float>();
  }
  EXPECT_FALSE(zoo::freeze_for_inference(m, {"features", "no_such_method"}, x).has_value());
}

TEST(TorchScript, FeaturesAndLogitsMatchPython) {
  zbtest::TempDir d;
  ASSERT_EQ(export_small(d.path(), "--channels 3 --classes 7"), 0);
  Manifest m = Manifest::load(d / "manifest.yaml");
  ASSERT_EQ(m.entries.size(), 1u);
  auto model = load_model(m, m.entries[0]);
  h5::File ref = h5::File::open(d / "reference.h5");
  at::Tensor x = h5::read_matrix(ref, "input");
  EXPECT_LE((model->features(x) - h5::read_matrix(ref, "features")).abs().max().item<float>(), 1e-5);
  EXPECT_LE((model->logits(x) - h5::read_matrix(ref, "logits")).abs().max().item<float>(), 1e-5);
  EXPECT_EQ(model->feature_dim(), 16);
  auto tune = model->finetune_copy(4, 0);
  EXPECT_EQ(tune->forward(x).sizes(), (std::vector<int64_t>{6, 4}));
  EXPECT_GT(tune->parameters().size(), 4u);
  EXPECT_EQ(model->grad_sketch(x, 1, 16, 0).sizes(), (std::vector<int64_t>{6, 16}));  // the dense route
  // Without a features_and_logits_method, extraction calls the two methods.
  auto [f, z] = model->features_and_logits(x);
  EXPECT_LE((f - h5::read_matrix(ref, "features")).abs().max().item<float>(), 1e-5);
  EXPECT_LE((z - h5::read_matrix(ref, "logits")).abs().max().item<float>(), 1e-5);
  // A named one must exist and return a (features, logits) tuple.
  ManifestEntry e = m.entries[0];
  e.features_and_logits_method = "both";
  std::string err = error_of([&] { load_model(m, e)->features_and_logits(x); });
  EXPECT_NE(err.find("zoo entry 'external-small': the TorchScript module has no method 'both'"), std::string::npos) << err;
  e.features_and_logits_method = "forward";
  err = error_of([&] { load_model(m, e)->features_and_logits(x); });
  EXPECT_NE(err.find("method 'forward' must return a (features, logits) tuple"), std::string::npos) << err;
}

TEST(TorchScript, WrongShapeIsNamed) {
  zbtest::TempDir d;
  ASSERT_EQ(export_small(d.path(), "--wrong-shape --name bad-export"), 0);
  Manifest m = Manifest::load(d / "manifest.yaml");
  std::string e = error_of([&] { load_model(m, m.entries[0]); });
  EXPECT_NE(e.find("zoo entry 'bad-export'"), std::string::npos) << e;
  EXPECT_NE(e.find("features returned [2 x 16 x 16 x 16]"), std::string::npos) << e;
}

// A fine-tuned copy evaluates through a folded snapshot of its weights, made
// anew each time training stops: what the net itself computes in eval mode.
TEST(Builtin, FineTunedCopyEvaluatesItsLatestWeights) {
  zbtest::TempDir d;
  Builtin b(d.path(), "resnet8", 4);
  auto model = load_model(b.manifest, b.manifest.entries[0]);
  auto tune = model->finetune_copy(3, 0);
  torch::manual_seed(8);
  const at::Tensor x = torch::rand({20, 1, 32, 32});
  auto evaluate = [&](bool graph) {
    tune->train(false);
    torch::AutoGradMode mode(graph);  // with a graph: the net itself; without: the snapshot
    return tune->forward(x).detach();
  };
  const at::Tensor before = evaluate(false);
  EXPECT_TRUE(at::allclose(before, evaluate(true), 1e-4, 1e-5));
  tune->train(true);
  torch::optim::SGD opt(tune->parameters(), torch::optim::SGDOptions(0.5));
  torch::nn::functional::cross_entropy(tune->forward(x), torch::arange(20) % 3).backward();
  opt.step();
  const at::Tensor after = evaluate(false);
  EXPECT_TRUE(at::allclose(after, evaluate(true), 1e-4, 1e-5));
  EXPECT_FALSE(at::allclose(after, before, 1e-3, 1e-3));
}

TEST(Builtin, ChecksumAndMissingWeightsAreNamed) {
  zbtest::TempDir d;
  Builtin b(d.path());
  auto model = load_model(b.manifest, b.manifest.entries[0]);
  at::Tensor x = torch::rand({5, 1, 32, 32});
  EXPECT_EQ(model->features(x).sizes(), (std::vector<int64_t>{5, 8}));
  EXPECT_EQ(model->logits(x).sizes(), (std::vector<int64_t>{5, 3}));
  { std::ofstream(d / "w.pt", std::ios::app) << "x"; }
  std::string e = error_of([&] { load_model(b.manifest, b.manifest.entries[0]); });
  EXPECT_NE(e.find("zoo entry 'tiny-cnn'"), std::string::npos) << e;
  EXPECT_NE(e.find("SHA-256"), std::string::npos) << e;
  std::filesystem::remove(d / "w.pt");
  e = error_of([&] { load_model(b.manifest, b.manifest.entries[0]); });
  EXPECT_NE(e.find("is missing"), std::string::npos) << e;
}

// LoadRules: an unpinned entry, and a file outside the manifest's folder
// unless allowed, are refused before libtorch reads a byte of them.
TEST(Builtin, OnlyPinnedFilesInsideTheZooAreLoaded) {
  zbtest::TempDir d, elsewhere;
  Builtin b(d.path());
  ManifestEntry e = b.manifest.entries[0];
  e.sha256.clear();
  std::string err = zbtest::error_of<ConfigError>([&] { load_model(b.manifest, e); });
  EXPECT_NE(err.find("no sha256"), std::string::npos) << err;
  EXPECT_NE(err.find("zoobench zoo pin"), std::string::npos) << err;

  std::filesystem::copy_file(d / "w.pt", elsewhere / "w.pt");
  e = b.manifest.entries[0];
  e.weights = (elsewhere / "w.pt").string();
  err = zbtest::error_of<ConfigError>([&] { load_model(b.manifest, e); });
  EXPECT_NE(err.find("outside the zoo's folder"), std::string::npos) << err;
  LoadRules allow;
  allow.allow_outside_zoo = true;
  EXPECT_EQ(load_model(b.manifest, e, allow)->feature_dim(), 8);

  // A link inside the folder is judged by where it leads.
  std::filesystem::create_symlink(elsewhere / "w.pt", d / "link.pt");
  e.weights = "link.pt";
  err = zbtest::error_of<ConfigError>([&] { load_model(b.manifest, e); });
  EXPECT_NE(err.find("they resolve to"), std::string::npos) << err;
}

TEST(Manifest, RoundTripAndErrors) {
  zbtest::TempDir d;
  Builtin b(d.path());
  b.manifest.entries[0].train_config = "arch: cnn\nwidth: 2\n";
  b.manifest.save(d / "m.yaml");
  Manifest back = Manifest::load(d / "m.yaml");
  ASSERT_EQ(back.entries.size(), 1u);
  EXPECT_EQ(back.entries[0].sha256, b.manifest.entries[0].sha256);
  EXPECT_EQ(back.entries[0].train_config, "arch: cnn\nwidth: 2\n");
  EXPECT_EQ(back.entries[0].source_classes, (std::vector<std::string>{"a", "b", "c"}));
  zbtest::write_text(d / "bad.yaml", "models:\n  - {name: x, weights: w.pt, in_channels: 1, colour: red}\n");
  EXPECT_NE(error_of([&] { Manifest::load(d / "bad.yaml"); }).find("unknown key 'colour'"), std::string::npos);
  EXPECT_NE(error_of([&] { Manifest::load(d / "none.yaml"); }).find("does not exist"), std::string::npos);
}

// The Kronecker sketch estimates the NTK trace sum_k <grad z_k(x_i), grad z_k(x_j)>
// of the last convolution's weights; compare with exact per-sample gradients.
TEST(GradSketch, EstimatesTheExactNtkTrace) {
  zbtest::TempDir d;
  Builtin b(d.path(), "resnet8", 2);
  auto model = load_model(b.manifest, b.manifest.entries[0]);
  torch::manual_seed(5);
  at::Tensor x = torch::rand({6, 1, 32, 32});
  at::Tensor s = model->grad_sketch(x, 64, 64 * 4096, 11).to(at::kDouble);
  ASSERT_EQ(s.sizes(), (std::vector<int64_t>{6, 64 * 4096}));
  at::Tensor est = at::mm(s, s.t()) / 64.0;
  // Exact: one sample at a time, one logit at a time.
  auto& net = b.net;
  auto conv = net->last_conv();
  std::vector<at::Tensor> g(6);
  at::Tensor exact = torch::zeros({6, 6}, at::kDouble);
  std::vector<std::vector<at::Tensor>> grads(3, std::vector<at::Tensor>(6));
  for (int i = 0; i < 6; ++i) {
    at::Tensor z = net->forward((x.narrow(0, i, 1) - 0.5) / 0.5);
    for (int k = 0; k < 3; ++k)
      grads[k][i] = torch::autograd::grad({z[0][k]}, {conv->weight}, {}, true)[0].flatten().to(at::kDouble);
  }
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < 6; ++i)
      for (int j = 0; j < 6; ++j) exact[i][j] += grads[k][i].dot(grads[k][j]);
  double rel = ((est - exact).norm() / exact.norm()).item<double>();
  EXPECT_LT(rel, 0.25) << "sketch Gram vs exact NTK-trace Gram";
  // Same seed, same sketch; another seed, another sketch.
  EXPECT_TRUE(at::equal(model->grad_sketch(x, 2, 64, 3), model->grad_sketch(x, 2, 64, 3)));
  EXPECT_FALSE(at::equal(model->grad_sketch(x, 2, 64, 3), model->grad_sketch(x, 2, 64, 4)));
}

// Exactly the Kronecker projection A G B^T of every sample's weight gradient
// G (of V_j . logits, with respect to the last convolution), for both
// architectures' last layers: the sketch computes B's side as a convolution
// of the layer's input, never the gradient or the patches.
TEST(GradSketch, IsTheProjectionOfEachExactGradient) {
  for (const std::string arch : {"resnet8", "cnn"}) {
    zbtest::TempDir d;
    Builtin b(d.path(), arch, 2);
    auto model = load_model(b.manifest, b.manifest.entries[0]);
    torch::manual_seed(6);
    const at::Tensor x = torch::rand({3, 1, 32, 32});
    const int m = 2;
    const int64_t k1 = 4, k2 = 8;  // K / m = 32: the most square factorisation
    const at::Tensor s = model->grad_sketch(x, m, m * k1 * k2, 21);
    auto& net = b.net;
    auto conv = net->last_conv();
    const int64_t cout = conv->weight.size(0), fan_in = conv->weight[0].numel();
    const at::Tensor A = zoo::gaussian({k1, cout}, 43) / std::sqrt(static_cast<double>(k1));
    const at::Tensor B = zoo::gaussian({k2, fan_in}, 44) / std::sqrt(static_cast<double>(k2));
    const at::Tensor V = zoo::gaussian({m, 3}, 45);
    for (int64_t i = 0; i < 3; ++i)
      for (int j = 0; j < m; ++j) {
        at::Tensor z = net->forward((x.narrow(0, i, 1) - 0.5) / 0.5);
        at::Tensor g = torch::autograd::grad({(z[0] * V[j]).sum()}, {conv->weight})[0].view({cout, fan_in});
        at::Tensor want = A.mm(g).mm(B.t()).flatten();
        at::Tensor got = s[i].narrow(0, j * k1 * k2, k1 * k2);
        EXPECT_TRUE(at::allclose(got, want, 1e-4, 1e-5 * want.abs().max().item<double>()))
            << arch << " sample " << i << " combination " << j << ": max |diff| "
            << (got - want).abs().max().item<double>() << " of " << want.abs().max().item<double>();
      }
  }
}

// A batch longer than the traced pass's chunk (8 MiB of last-layer
// activations: 4,096 images at width 2) is sketched in chunks with the same
// projections: each image's sketch, features and logits as on its own.
TEST(GradSketch, ChunksAreInvisible) {
  zbtest::TempDir d;
  Builtin b(d.path(), "resnet8", 2);
  auto model = load_model(b.manifest, b.manifest.entries[0]);
  torch::manual_seed(9);
  const at::Tensor x = torch::rand({4100, 1, 32, 32});
  const Model::Traced all = model->features_logits_and_sketch(x, 2, 64, 5);
  const Model::Traced tail = model->features_logits_and_sketch(x.narrow(0, 4090, 10), 2, 64, 5);
  ASSERT_EQ(all.sketch.size(0), 4100);
  EXPECT_TRUE(at::allclose(all.sketch.narrow(0, 4090, 10), tail.sketch, 1e-4, 1e-6));
  EXPECT_TRUE(at::allclose(all.features.narrow(0, 4090, 10), tail.features, 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(all.logits.narrow(0, 4090, 10), tail.logits, 1e-5, 1e-6));
}

TEST(Extract, DeterministicAndSampled) {
  zbtest::TempDir d;
  Builtin b(d.path());
  auto model = load_model(b.manifest, b.manifest.entries[0]);
  ImageSet set;
  set.name = "rand";
  set.class_names = {"a", "b", "c"};
  torch::manual_seed(1);
  at::Tensor px = torch::randint(0, 256, {90, 32 * 32}, at::kByte);
  for (int i = 0; i < 90; ++i) set.add(px[i].data_ptr<uint8_t>(), i % 3, i < 75 ? Split::Train : Split::Test);
  TaskSpec spec;
  spec.name = "t";
  spec.dataset = "rand";
  spec.shots = 20;
  Task task = sample_task(spec, set);
  ExtractConfig cfg;
  cfg.max_per_class = 12;
  cfg.batch_size = 7;  // ragged batches must not matter
  cfg.sketch_dim = 64;
  cfg.lgc_projections = 2;
  CellArrays a = extract_cell(*model, set, task, cfg, true, 9);
  CellArrays c = extract_cell(*model, set, task, cfg, true, 9);
  EXPECT_EQ(a.features.size(0), 36);
  EXPECT_EQ(a.grad_sketch.sizes(), (std::vector<int64_t>{36, 64}));  // K = 64 in all, 32 per combination
  EXPECT_TRUE(at::equal(a.features, c.features));
  EXPECT_TRUE(at::equal(a.source_logits, c.source_logits));
  EXPECT_TRUE(at::equal(a.grad_sketch, c.grad_sketch));
  for (int k = 0; k < 3; ++k) EXPECT_EQ(a.labels.eq(k).sum().item<int64_t>(), 12);
  // With the sketch, the features and logits come from the pass it traces:
  // the same as extraction's own pass. Each cost counts that pass.
  CellArrays plain = extract_cell(*model, set, task, cfg, false, 9);
  EXPECT_TRUE(at::allclose(a.features, plain.features, 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(a.source_logits, plain.source_logits, 1e-5, 1e-6));
  EXPECT_GT(a.seconds_features, 0.0);
  EXPECT_GT(a.seconds_sketch, a.seconds_features);
  EXPECT_EQ(plain.seconds_sketch, 0.0);
}

TEST(Augment, AssembledBatchIsTheStackedOne) {
  torch::manual_seed(3);
  for (int64_t c : {1, 3})
    for (int pad : {0, 2, 5})
      for (bool flip : {false, true}) {
        SCOPED_TRACE("c " + std::to_string(c) + " pad " + std::to_string(pad) + " flip " + std::to_string(flip));
        at::Tensor images = torch::rand({10, c, 6, 9});  // H != W: a swapped axis would show
        at::Tensor idx = torch::tensor({3, 0, 7, 7, 9, 2, 5, 1}, at::kLong);
        at::Generator g1 = at::detail::createCPUGenerator(11), g2 = at::detail::createCPUGenerator(11);
        at::Tensor out;
        for (int64_t b : {8, 5}) {  // a ragged last batch reuses the storage
          at::Tensor rows = idx.narrow(0, 0, b);
          at::Tensor want = augment(images.index_select(0, rows), pad, flip, g1);
          const void* before = out.defined() ? out.data_ptr() : nullptr;
          assemble_batch(out, images, rows, pad, flip, g2);
          EXPECT_TRUE(at::equal(out, want));
          if (before) EXPECT_EQ(out.data_ptr(), before);
        }
        // Both drew the same numbers: the next draws agree.
        EXPECT_TRUE(at::equal(at::randint(0, 1000, {4}, g1, at::kLong), at::randint(0, 1000, {4}, g2, at::kLong)));
      }
  at::Tensor out;
  at::Generator g = at::detail::createCPUGenerator(1);
  EXPECT_THROW(assemble_batch(out, torch::rand({4, 1, 6, 6}).to(at::kDouble), torch::tensor({0}), 2, false, g),
               std::invalid_argument);
}

TEST(LaneConv, IsTorchsConvolutionWithItsGradients) {
  struct Case {
    int64_t n, cin, cout, k, stride, h, w;
    bool input_grad;
  };
  // Full and ragged lane blocks, 1 x 1 and 3 x 3, strides 1 and 2, odd and
  // non-square images, channel counts off the block of 4, a stem (no dL/dx),
  // stride 3 (every pixel on the checked path).
  for (const Case& c : {Case{32, 4, 8, 3, 2, 32, 32, true}, Case{5, 3, 6, 3, 1, 9, 7, true},
                        Case{17, 8, 16, 1, 2, 8, 8, true}, Case{20, 1, 4, 3, 1, 12, 12, false},
                        Case{16, 6, 5, 3, 2, 11, 10, true}, Case{40, 8, 8, 3, 1, 16, 13, true},
                        Case{9, 2, 3, 3, 3, 10, 11, true}}) {
    SCOPED_TRACE("n " + std::to_string(c.n) + " cin " + std::to_string(c.cin) + " cout " + std::to_string(c.cout) +
                 " k " + std::to_string(c.k) + " stride " + std::to_string(c.stride));
    torch::manual_seed(c.n);
    at::Tensor x = torch::randn({c.n, c.cin, c.h, c.w}).requires_grad_(c.input_grad);
    at::Tensor w = torch::randn({c.cout, c.cin, c.k, c.k}).requires_grad_(true);
    at::Tensor x2 = x.detach().clone().requires_grad_(c.input_grad), w2 = w.detach().clone().requires_grad_(true);
    at::Tensor y = zoo::lane_conv2d(x, w, c.stride);
    at::Tensor want = torch::conv2d(x2, w2, {}, c.stride, c.k / 2);
    ASSERT_EQ(y.sizes(), want.sizes());
    EXPECT_TRUE(at::allclose(y, want, 1e-4, 1e-4)) << (y - want).abs().max().item<double>();
    at::Tensor g = torch::randn_like(want);
    y.backward(g);
    want.backward(g);
    EXPECT_TRUE(at::allclose(w.grad(), w2.grad(), 1e-4, 1e-3)) << (w.grad() - w2.grad()).abs().max().item<double>();
    if (c.input_grad)
      EXPECT_TRUE(at::allclose(x.grad(), x2.grad(), 1e-4, 1e-4)) << (x.grad() - x2.grad()).abs().max().item<double>();
  }
}

// The register transpose behind the layout changes, in the baseline build
// (the AVX-512 copy runs inside lane_conv2d above).
TEST(Simd, Transpose16IsTheTranspose) {
  simd::f32x16 r[simd::kLanes];
  for (int64_t i = 0; i < simd::kLanes; ++i)
    for (int64_t j = 0; j < simd::kLanes; ++j) r[i][j] = static_cast<float>(i * 100 + j);
  simd::transpose16(r);
  for (int64_t i = 0; i < simd::kLanes; ++i)
    for (int64_t j = 0; j < simd::kLanes; ++j) EXPECT_EQ(r[i][j], static_cast<float>(j * 100 + i)) << i << "," << j;
}

TEST(LaneConv, TrainingUsesItAndEvaluationDoesNot) {
  torch::manual_seed(2);
  zoo::Net net(zoo::NetSpec{"resnet8", 4, 1, {10}});
  at::Tensor x = torch::randn({6, 1, 32, 32});
  net->train();
  at::Tensor lane = net->forward(x);
  EXPECT_TRUE(zbtest::graph_has(lane, "LaneConv"));
  lane.sum().backward();
  at::Tensor g_lane = net->stem->weight.grad().clone();
  net->zero_grad();
  // The same step through the modules' own kernels: what train_conv replaced.
  at::Tensor h = torch::relu(net->stem_bn(net->stem->forward(x)));
  for (auto& b : net->blocks) {
    at::Tensor c1 = torch::relu(b->bn1(b->conv1->forward(h)));
    at::Tensor skip = b->down ? b->down_bn(b->down->forward(h)) : h;
    h = torch::relu(b->bn2(b->conv2->forward(c1)) + skip);
  }
  at::Tensor ref = net->heads[0]->forward(torch::adaptive_avg_pool2d(h, {1, 1}).flatten(1));
  EXPECT_FALSE(zbtest::graph_has(ref, "LaneConv"));
  ref.sum().backward();
  EXPECT_TRUE(at::allclose(lane, ref, 1e-4, 1e-4));
  EXPECT_TRUE(at::allclose(g_lane, net->stem->weight.grad(), 1e-3, 1e-3));
  net->eval();  // evaluation keeps the modules' kernels (extraction runs zoo::FoldedNet)
  EXPECT_FALSE(zbtest::graph_has(net->forward(x), "LaneConv"));
}
