// TorchScript entries: LGC's dense-sketch route, inputs resized to the
// model's resolution, and the errors a user's export can meet.
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <fstream>
#include <regex>

#include "../common.h"
#include "zoo/nets.h"
#include "zoobench/error.h"
#include "zoobench/h5.h"
#include "zoobench/h5_tensor.h"
#include "zoobench/model.h"

using namespace zoobench;

namespace {

std::string error_of(const std::function<void()>& f) { return zbtest::error_of<Error>(f); }

void export_model(const zbtest::TempDir& d, const std::string& flags) {
  ASSERT_EQ(zbtest::run_python(std::string(ZB_SOURCE_DIR) + "/tools/export_torchscript.py " + d.path().string() + " " +
                               flags + " > /dev/null"),
            0);
}

// Replaces `key: ...` in the exported manifest (one entry) or appends it.
void set_manifest_key(const std::filesystem::path& file, const std::string& key, const std::string& value) {
  std::ifstream in(file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::regex line("\n    " + key + ": [^\n]*");
  if (std::regex_search(text, line))
    text = std::regex_replace(text, line, "\n    " + key + ": " + value);
  else
    text += "    " + key + ": " + value + "\n";
  zbtest::write_text(file, text);
}

// Per-sample Jacobians of the outputs with respect to one parameter, exactly:
// J[i] is C x P (float64).
std::vector<at::Tensor> exact_jacobians(const std::filesystem::path& pt, const std::string& param, const at::Tensor& xn) {
  torch::jit::Module m = torch::jit::load(pt.string());
  m.eval();
  at::Tensor w;
  for (const auto& np : m.named_parameters())
    if (np.name == param) w = np.value;
  w.set_requires_grad(true);
  std::vector<at::Tensor> out;
  for (int64_t i = 0; i < xn.size(0); ++i) {
    at::Tensor z = m.forward({xn.narrow(0, i, 1)}).toTensor();
    std::vector<at::Tensor> rows;
    for (int64_t k = 0; k < z.size(1); ++k)
      rows.push_back(torch::autograd::grad({z[0][k]}, {w}, {}, true)[0].flatten().to(at::kDouble));
    out.push_back(at::stack(rows));
  }
  return out;
}

double tr(const at::Tensor& a) { return a.trace().item<double>(); }
double fro2(const at::Tensor& a) { return a.pow(2).sum().item<double>(); }

// docs/selectors.md, "How exact is LGC's sketch": the variance of one entry of
// the dense route's Gram estimate (1/m) sum_l <R J_i^T v_l, R J_j^T v_l>.
double dense_variance(const at::Tensor& ji, const at::Tensor& jj, int m, int64_t k) {
  at::Tensor M = at::mm(ji, jj.t()), Mi = at::mm(ji, ji.t()), Mj = at::mm(jj, jj.t());
  const double trM2 = tr(at::mm(M, M)), f2 = fro2(M), t = tr(M);
  return (trM2 + f2) / m + (t * t + m * trM2 + f2 + tr(Mi) * tr(Mj) + (m + 1) * tr(at::mm(Mi, Mj))) / (m * double(k));
}

}  // namespace

TEST(ScriptLgc, DefaultParameterDeterminismAndChunks) {
  zbtest::TempDir d;
  export_model(d, "--channels 3 --classes 7");
  Manifest man = Manifest::load(d / "manifest.yaml");
  auto model = load_model(man, man.entries[0]);
  // The last weight the features depend on: the second convolution, not the head.
  EXPECT_EQ(model->sketch_target(), "dense:body.4.weight");
  torch::manual_seed(2);
  at::Tensor x = torch::rand({5, 3, 32, 32});
  at::Tensor a = model->grad_sketch(x, 2, 64, 3);
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{5, 64}));
  EXPECT_TRUE(at::equal(a, model->grad_sketch(x, 2, 64, 3)));
  EXPECT_FALSE(at::equal(a, model->grad_sketch(x, 2, 64, 4)));
  // One sample at a time, or batches split differently: the same sketch up to float rounding.
  at::Tensor one = model->grad_sketch(x, 2, 64, 3, /*memory_mb=*/0);
  at::Tensor split = at::cat({model->grad_sketch(x.narrow(0, 0, 2), 2, 64, 3), model->grad_sketch(x.narrow(0, 2, 3), 2, 64, 3)});
  EXPECT_LE((one - a).abs().max().item<float>(), 1e-5f * a.abs().max().item<float>());
  EXPECT_LE((split - a).abs().max().item<float>(), 1e-5f * a.abs().max().item<float>());
  // The parameters keep their requires_grad; features stay graph-free.
  EXPECT_FALSE(model->features(x).requires_grad());
}

TEST(ScriptLgc, NamedParameterAndBadNames) {
  zbtest::TempDir d;
  export_model(d, "--channels 1 --classes 4");
  set_manifest_key(d / "manifest.yaml", "lgc_parameter", "body.0.weight");
  Manifest man = Manifest::load(d / "manifest.yaml");
  auto model = load_model(man, man.entries[0]);
  EXPECT_EQ(model->sketch_target(), "dense:body.0.weight");
  EXPECT_EQ(model->grad_sketch(torch::rand({3, 1, 32, 32}), 2, 32, 0).sizes(), (std::vector<int64_t>{3, 32}));
  set_manifest_key(d / "manifest.yaml", "lgc_parameter", "layer4.weight");
  man = Manifest::load(d / "manifest.yaml");
  model = load_model(man, man.entries[0]);
  std::string err = error_of([&] { model->grad_sketch(torch::rand({2, 1, 32, 32}), 2, 32, 0); });
  EXPECT_NE(err.find("'external-small'"), std::string::npos) << err;
  EXPECT_NE(err.find("lgc_parameter 'layer4.weight' names no parameter"), std::string::npos) << err;
  EXPECT_NE(err.find("body.0.weight, body.4.weight, head.weight"), std::string::npos) << err;
}

// The sketch Gram against the exact NTK-trace Gram at the pipeline's m and K
// (and the tiny config's): over seeds, the squared error should average the
// variance derived in docs/selectors.md, neither more (a wrong sketch) nor
// much less (a wrong formula).
TEST(ScriptLgc, ErrorMatchesTheDerivedVariance) {
  zbtest::TempDir d;
  export_model(d, "--channels 1 --classes 5");
  Manifest man = Manifest::load(d / "manifest.yaml");
  auto model = load_model(man, man.entries[0]);
  torch::manual_seed(7);
  at::Tensor x = torch::rand({6, 1, 32, 32});
  auto J = exact_jacobians(d / "model.pt", "body.4.weight", (x - 0.5) / 0.25);
  const int64_t n = x.size(0);
  for (auto [m, K] : std::vector<std::pair<int, int>>{{4, 4096}, {2, 256}}) {
    double err = 0, var = 0;
    const int seeds = 200;
    for (int s = 0; s < seeds; ++s) {
      at::Tensor g = model->grad_sketch(x, m, K, 100 + s).to(at::kDouble);
      at::Tensor est = at::mm(g, g.t()) / m;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = i; j < n; ++j) {
          const double exact = tr(at::mm(J[i], J[j].t()));
          err += std::pow(est[i][j].item<double>() - exact, 2);
          if (s == 0) var += dense_variance(J[i], J[j], m, K / m);
        }
    }
    const double ratio = err / seeds / var;
    RecordProperty("ratio_m" + std::to_string(m), std::to_string(ratio));
    EXPECT_GT(ratio, 0.6) << "m=" << m << " K=" << K;
    EXPECT_LT(ratio, 1.6) << "m=" << m << " K=" << K;
  }
}

// torchvision's Resize(antialias=True) and the C++ resize agree, and so do
// the exported ResNet-18's features at 64 x 64 from 32 x 32 images.
TEST(ScriptInput, ResizedLikeTorchvision) {
  zbtest::TempDir d;
  export_model(d, "--torchvision resnet18 --input-size 64 --num-classes 10");
  Manifest man = Manifest::load(d / "manifest.yaml");
  ASSERT_EQ(man.entries[0].input_size, 64);
  auto model = load_model(man, man.entries[0]);
  h5::File ref = h5::File::open(d / "reference.h5");
  at::Tensor x = h5::read_matrix(ref, "input");
  ASSERT_EQ(x.size(-1), 32);
  at::Tensor resized = resize_to_input(x, 64);
  EXPECT_LE((resized - h5::read_matrix(ref, "resized")).abs().max().item<float>(), 1e-6f);
  at::Tensor f = model->features(x), want = h5::read_matrix(ref, "features");
  EXPECT_EQ(f.sizes(), want.sizes());
  EXPECT_LE((f - want).abs().max().item<float>(), 1e-5f * want.abs().max().item<float>());
  at::Tensor z = model->logits(x), zwant = h5::read_matrix(ref, "logits");
  EXPECT_LE((z - zwant).abs().max().item<float>(), 1e-5f * zwant.abs().max().item<float>());
  EXPECT_EQ(model->sketch_target(), "dense:body.layer4.1.conv2.weight");
  // Shrinking uses the widened (antialiasing) filter: not plain bilinear.
  at::Tensor small = resize_to_input(resized, 16);
  at::Tensor plain = at::upsample_bilinear2d(resized, {16, 16}, false);
  EXPECT_GT((small - plain).abs().max().item<float>(), 1e-3f);
}

TEST(ScriptInput, SizeTheModelCannotTake) {
  zbtest::TempDir d;
  export_model(d, "--channels 1 --classes 3");
  set_manifest_key(d / "manifest.yaml", "input_size", "1");  // max-pooling 1 x 1 by 2 fails
  Manifest man = Manifest::load(d / "manifest.yaml");
  std::string err = error_of([&] { load_model(man, man.entries[0]); });
  EXPECT_NE(err.find("zoo entry 'external-small'"), std::string::npos) << err;
  EXPECT_NE(err.find("(input_size 1) failed"), std::string::npos) << err;
  EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  set_manifest_key(d / "manifest.yaml", "input_size", "0");
  EXPECT_NE(zbtest::error_of<ConfigError>([&] { Manifest::load(d / "manifest.yaml"); }).find("input_size must be in"),
            std::string::npos);
}

namespace {

double fdot(const at::Tensor& a, const at::Tensor& b) { return (a * b).sum().item<double>(); }

// One pair term of the Kronecker route's variance (docs/selectors.md).
double phi(const at::Tensor& P, const at::Tensor& Q, const at::Tensor& P2, const at::Tensor& Q2, double k1, double k2) {
  at::Tensor pq = at::mm(P, Q.t()), pq2 = at::mm(P2, Q2.t()), ptq = at::mm(P.t(), Q), ptq2 = at::mm(P2.t(), Q2);
  return (fdot(pq, pq2) + tr(at::mm(pq, pq2))) / k1 + (fdot(ptq, ptq2) + tr(at::mm(ptq, ptq2))) / k2 +
         (fdot(P, P2) * fdot(Q, Q2) + fdot(P, Q2) * fdot(Q, P2) + tr(at::mm(at::mm(P.t(), P2), at::mm(Q.t(), Q2))) +
          tr(at::mm(at::mm(P, P2.t()), at::mm(Q, Q2.t())))) /
             (k1 * k2);
}

}  // namespace

// The same check for zoobench's own architectures and their Kronecker
// sketch A (x) B, whose variance needs the o x c shape of each gradient.
TEST(BuiltinLgc, ErrorMatchesTheDerivedVariance) {
  zbtest::TempDir d;
  torch::manual_seed(3);
  zoo::Net net(zoo::NetSpec{"resnet8", 2, 1, {3}});
  net->eval();
  torch::save(net, (d / "w.pt").string());
  ManifestEntry e;
  e.name = "tiny-resnet8";
  e.arch = "resnet8";
  e.width = 2;
  e.weights = "w.pt";
  e.sha256 = sha256_file(d / "w.pt");
  e.in_channels = 1;
  e.mean = {0.5};
  e.std = {0.5};
  e.head_classes = {3};
  Manifest man;
  man.dir = d.path();
  man.entries = {e};
  auto model = load_model(man, e);
  torch::manual_seed(5);
  at::Tensor x = torch::rand({6, 1, 32, 32});
  auto conv = net->last_conv();
  const int64_t n = 6, C = 3, o = conv->weight.size(0);
  std::vector<std::vector<at::Tensor>> G(n);  // G[i][k]: o x c
  for (int64_t i = 0; i < n; ++i) {
    at::Tensor z = net->forward((x.narrow(0, i, 1) - 0.5) / 0.5);
    for (int64_t k = 0; k < C; ++k)
      G[i].push_back(torch::autograd::grad({z[0][k]}, {conv->weight}, {}, true)[0].reshape({o, -1}).to(at::kDouble));
  }
  for (auto [m, K] : std::vector<std::pair<int, int>>{{4, 4096}, {2, 256}}) {
    int64_t per = K / m, k1 = static_cast<int64_t>(std::floor(std::sqrt(double(per))));
    while (per % k1 != 0) --k1;
    const double a = double(k1), b = double(per / k1);
    double err = 0, var = 0;
    const int seeds = 200;
    for (int s = 0; s < seeds; ++s) {
      at::Tensor g = model->grad_sketch(x, m, K, 100 + s).to(at::kDouble);
      at::Tensor est = at::mm(g, g.t()) / m;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = i; j < n; ++j) {
          double exact = 0;
          for (int64_t k = 0; k < C; ++k) exact += fdot(G[i][k], G[j][k]);
          err += std::pow(est[i][j].item<double>() - exact, 2);
          if (s > 0) continue;
          at::Tensor Ji = at::stack(G[i]).flatten(1), Jj = at::stack(G[j]).flatten(1), M = at::mm(Ji, Jj.t());
          var += (tr(at::mm(M, M)) + fro2(M)) / m;  // the combinations' share, as for the dense route
          for (int64_t k = 0; k < C; ++k)
            for (int64_t q = 0; q < C; ++q)
              var += phi(G[i][k], G[j][k], G[i][q], G[j][q], a, b) +
                     (phi(G[i][k], G[j][q], G[i][k], G[j][q], a, b) + phi(G[i][k], G[j][q], G[i][q], G[j][k], a, b)) / m;
        }
    }
    const double ratio = err / seeds / var;
    RecordProperty("ratio_m" + std::to_string(m), std::to_string(ratio));
    EXPECT_GT(ratio, 0.6) << "m=" << m << " K=" << K;
    EXPECT_LT(ratio, 1.6) << "m=" << m << " K=" << K;
  }
}
