// Closed forms and direct dense forms, one block per selector.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "selectors/softmax_kernel.h"
#include "zoobench/error.h"
#include "zoobench/reduce.h"
#include "zoobench/selector.h"

using namespace zoobench;

namespace {

SelectorInputs clusters(int64_t n, int64_t d, int64_t c, double spread, uint64_t seed) {
  at::Generator g = at::detail::createCPUGenerator(seed);
  SelectorInputs in;
  in.classes = c;
  in.labels = at::arange(n, at::kLong).remainder(c);
  at::Tensor centres = at::randn({c, d}, g, at::kDouble) * spread;
  in.features = centres.index_select(0, in.labels) + at::randn({n, d}, g, at::kDouble);
  return in;
}

// LogME's evidence, independently: the N-dimensional Gaussian log-density
// log N(y | 0, F F^T / alpha + I / beta) (Cholesky, nothing of the
// eigen-decomposition or the fixed point), maximised over (alpha, beta) by a
// grid over both logarithms, then nested golden-section searches around the
// best grid point. The fixed point must land on that maximum.
double gaussian_evidence(const at::Tensor& ffT, const at::Tensor& y, double log_alpha, double log_beta) {
  const int64_t n = y.size(0);
  at::Tensor cov = ffT * std::exp(-log_alpha) + at::eye(n, at::kDouble) * std::exp(-log_beta);
  at::Tensor l = at::linalg_cholesky(cov);
  at::Tensor z = at::linalg_solve_triangular(l, y.unsqueeze(1), false);
  return -0.5 * z.pow(2).sum().item<double>() - at::log(at::diagonal(l)).sum().item<double>() -
         0.5 * static_cast<double>(n) * std::log(2 * M_PI);
}

template <class F>
double golden_max(F f, double lo, double hi, double* best_x) {
  const double r = (std::sqrt(5.0) - 1) / 2;
  double a = lo, b = hi, c = b - r * (b - a), d = a + r * (b - a), fc = f(c), fd = f(d);
  for (int it = 0; it < 60; ++it) {
    if (fc > fd) b = d, d = c, fd = fc, c = b - r * (b - a), fc = f(c);
    else a = c, c = d, fc = fd, d = a + r * (b - a), fd = f(d);
  }
  *best_x = (a + b) / 2;
  return f(*best_x);
}

double logme_by_search(const at::Tensor& f, const at::Tensor& labels, int64_t classes) {
  const int64_t n = f.size(0);
  at::Tensor ffT = at::mm(f, f.t());
  double total = 0;
  for (int64_t c = 0; c < classes; ++c) {
    at::Tensor y = (labels == c).to(at::kDouble);
    auto e = [&](double la, double lb) { return gaussian_evidence(ffT, y, la, lb); };
    double best = -std::numeric_limits<double>::infinity(), la0 = 0, lb0 = 0;
    for (double la = -12; la <= 12; la += 0.5)
      for (double lb = -12; lb <= 12; lb += 0.5)
        if (double v = e(la, lb); v > best) best = v, la0 = la, lb0 = lb;
    double la_best = la0, lb_best = lb0;
    auto profile = [&](double la) {
      double lb;
      return golden_max([&](double x) { return e(la, x); }, lb0 - 1, lb0 + 1, &lb);
    };
    const double refined = golden_max(profile, la0 - 1, la0 + 1, &la_best);
    EXPECT_GE(refined, best - 1e-9) << "the search refines its grid point";
    EXPECT_GT(la_best, la0 - 0.99) << "the maximum is inside the searched bracket";
    EXPECT_LT(la_best, la0 + 0.99);
    (void)lb_best;
    total += refined / static_cast<double>(n);
  }
  return total / static_cast<double>(classes);
}

}  // namespace

TEST(LogMe, ReachesTheMaximumOfTheGaussianEvidence) {
  // N > D, and D > N (zero eigenvalues). The authors' fixed point stops after
  // 11 iterations or a relative change of 1e-3 in alpha / beta. With N > D it
  // lands on the maximum; with D > N it converges slowly and stops short:
  // 1.3e-4 nats per sample below it here (4.8e-4 relative), as the authors'
  // code does. It never exceeds the maximum: its value is a true evidence.
  for (auto [n, d, tol] : {std::tuple{60, 5, 1e-6}, std::tuple{15, 40, 1e-3}}) {
    SelectorInputs in = clusters(n, d, 3, 1.0, 11);
    const double fast = selector("logme").score(in), searched = logme_by_search(in.features, in.labels, 3);
    EXPECT_LE(fast, searched + 1e-9) << "no evidence above its maximum; N=" << n << " D=" << d;
    EXPECT_NEAR(fast, searched, tol * std::abs(searched)) << "N=" << n << " D=" << d;
  }
}

TEST(HScore, ZeroWithoutLabelInformationAndRankWithoutNoise) {
  at::Generator g = at::detail::createCPUGenerator(5);
  SelectorInputs in;
  in.classes = 2;
  in.labels = at::randint(2, {20000}, g, at::kLong);
  in.features = at::randn({20000, 4}, g, at::kDouble);  // independent of the labels
  EXPECT_NEAR(selector("hscore").score(in), 0.0, 2e-3);
  EXPECT_NEAR(selector("hscore_shrink").score(in), 0.0, 2e-3);
  // Features equal to their class means: cov_g = cov_f, H = tr(pinv(cov_f) cov_f) = C - 1.
  SelectorInputs c = clusters(40, 6, 4, 3.0, 2);
  c.features = at::randn({4, 6}, g, at::kDouble).index_select(0, c.labels);
  EXPECT_NEAR(selector("hscore").score(c), 3.0, 1e-8);
}

TEST(NLeep, SeparatedClustersScoreZero) {
  SelectorInputs in = clusters(60, 3, 3, 100.0, 4);
  EXPECT_NEAR(selector("nleep").score(in), 0.0, 1e-6);
  SelectorInputs noise = clusters(60, 3, 3, 0.0, 4);  // labels carry nothing: about log(1/3)
  EXPECT_LT(selector("nleep").score(noise), -0.5);
}

TEST(LinearProbe, SeparableIsPerfectNoiseIsNot) {
  EXPECT_DOUBLE_EQ(selector("linear_probe").score(clusters(80, 10, 4, 20.0, 6)), 1.0);
  at::Generator g = at::detail::createCPUGenerator(8);
  SelectorInputs noise = clusters(200, 10, 2, 0.0, 6);
  noise.labels = at::randint(2, {200}, g, at::kLong);
  EXPECT_LT(selector("linear_probe").score(noise), 0.7);
}

// The probe's fused pass against the same sums in double, on shapes that
// need every kind of padding (rows, columns and classes not multiples of the
// kernel's blocks) and split into row ranges as the probe splits them.
TEST(LinearProbe, FusedSoftmaxPassIsTheDoubleSums) {
  using namespace zoobench::detail;
  const int64_t n = 23, d = 37, c = 7, stride = round_up(d, kSoftmaxLanes), cp = round_up(c, kSoftmaxBlock);
  at::Generator g = at::detail::createCPUGenerator(3);
  at::Tensor x = at::randn({n, d}, g, at::kDouble), w = at::randn({c, d}, g, at::kDouble) * 0.5;
  at::Tensor y = at::randint(c, {n}, g, at::kLong);
  at::Tensor xp = at::zeros({round_up(n, kSoftmaxBlock), stride}, at::kFloat), wp = at::zeros({cp, stride}, at::kFloat);
  xp.narrow(0, 0, n).narrow(1, 0, d).copy_(x);
  wp.narrow(0, 0, c).narrow(1, 0, d).copy_(w);
  const SoftmaxProblem p{xp.data_ptr<float>(), n, stride, y.data_ptr<int64_t>(), c, cp};
  at::Tensor grad = at::zeros({cp, stride}, at::kFloat);
  const double loss = softmax_rows(p, wp.data_ptr<float>(), 0, 8, grad.data_ptr<float>()) +
                      softmax_rows(p, wp.data_ptr<float>(), 8, 1000, grad.data_ptr<float>());
  // The reference from the float-rounded inputs, so only the sums' rounding differs.
  at::Tensor xr = xp.narrow(0, 0, n).narrow(1, 0, d).to(at::kDouble);
  at::Tensor wr = wp.narrow(0, 0, c).narrow(1, 0, d).to(at::kDouble);
  at::Tensor logp = at::log_softmax(at::mm(xr, wr.t()), 1);
  const double expect = -logp.gather(1, y.unsqueeze(1)).sum().item<double>();
  at::Tensor expect_grad = at::mm((logp.exp() - at::one_hot(y, c).to(at::kDouble)).t(), xr);
  EXPECT_NEAR(loss, expect, 1e-5 * std::abs(expect));
  EXPECT_LT((grad.narrow(0, 0, c).narrow(1, 0, d).to(at::kDouble) - expect_grad).abs().max().item<double>(), 1e-4);
  EXPECT_EQ(grad.narrow(0, c, cp - c).abs().sum().item<float>(), 0.0f);  // padding classes get nothing
  EXPECT_EQ(grad.narrow(1, d, stride - d).abs().sum().item<float>(), 0.0f);
}

TEST(ProbeScores, AProbeEqualToTheCandidateScoresOne) {
  SelectorInputs in = clusters(30, 8, 3, 2.0, 9);
  in.probe_features = in.features.clone();
  EXPECT_NEAR(selector("rsa").score(in), 1.0, 1e-12);
  EXPECT_NEAR(selector("dds").score(in), 1.0, 1e-12);
  in.probe_features = in.features * 4.0 + 1.0;  // correlation RDMs and z-scores ignore affine maps
  EXPECT_NEAR(selector("rsa").score(in), 1.0, 1e-12);
  EXPECT_NEAR(selector("dds").score(in), 1.0, 1e-12);
  in.probe_features = at::randn({30, 8}, at::detail::createCPUGenerator(1), at::kDouble);
  EXPECT_LT(std::abs(selector("rsa").score(in)), 0.3);
  in.features = in.features.narrow(0, 0, 3);
  in.labels = in.labels.narrow(0, 0, 3);
  in.probe_features = in.probe_features.narrow(0, 0, 3);
  EXPECT_THROW(selector("dds").score(in), DataError);  // debiased CKA needs N >= 4
}

TEST(DomainSimilarity, TranslatedDomainsAreTheShiftApart) {
  SelectorInputs in = clusters(40, 5, 4, 3.0, 3);
  at::Tensor onehot = at::one_hot(in.labels, 4).to(at::kDouble);
  at::Tensor means = at::mm(onehot.t(), in.features) / onehot.sum(0).unsqueeze(1);
  at::Tensor shift = at::tensor({3.0, 0.0, 4.0, 0.0, 0.0}, at::kDouble);  // |shift| = 5
  // Source: the target's class means shifted, same class sizes, plus a class of 4 images (ignored).
  in.source_class_means = at::cat({means + shift, at::full({1, 5}, 1000.0, at::kDouble)});
  in.source_class_counts = at::tensor({10.0, 10.0, 10.0, 10.0, 4.0}, at::kDouble);
  EXPECT_NEAR(selector("domain_similarity").score(in), std::exp(-0.01 * 5.0), 1e-9);
  in.source_class_means = at::cat({means, at::full({1, 5}, 1000.0, at::kDouble)});
  EXPECT_NEAR(selector("domain_similarity").score(in), 1.0, 1e-12);
  in.source_class_counts = at::tensor({1.0, 2.0, 3.0, 4.0, 4.0}, at::kDouble);
  EXPECT_THROW(selector("domain_similarity").score(in), DataError);  // no class with 5 images
}

TEST(Ncti, MinMaxOverTheZoo) {
  const Selector& s = selector("ncti");
  std::vector<std::vector<double>> terms = {{10, 0.5, 2}, {20, 0.9, 1}, {15, 0.7, 3}};
  std::vector<double> v = s.combine(terms);
  EXPECT_NEAR(v[0], 0.0 + 0.0 - 0.5, 1e-12);
  EXPECT_NEAR(v[1], 1.0 + 1.0 - 0.0, 1e-12);
  EXPECT_NEAR(v[2], 0.5 + 0.5 - 1.0, 1e-12);
  // Separated clusters collapse better than noise: higher raw class-probability term.
  std::vector<double> good = s.terms(clusters(60, 8, 3, 50.0, 2)), bad = s.terms(clusters(60, 8, 3, 0.0, 2));
  ASSERT_EQ(good.size(), 3u);
  EXPECT_GT(good[1], bad[1]);
  EXPECT_GT(s.combine({good, bad})[0], s.combine({good, bad})[1]);
}

// Small features take the shrinkage branch, large ones the SVD solver (the
// rule is scale-dependent); both stay finite on one sample per class and on
// more PCA components than samples.
TEST(Ncti, BothBranchesOnDegenerateShapes) {
  for (double scale : {0.1, 100.0})
    for (auto [n, d] : {std::pair<int64_t, int64_t>{4, 3}, {12, 40}}) {
      SelectorInputs in = clusters(n, d, 4, 2.0, 21);
      in.features = in.features * scale;
      for (double t : selector("ncti").terms(in)) EXPECT_TRUE(std::isfinite(t)) << "scale " << scale << ", N " << n;
    }
}

// GBC's spherical variance with the authors' per-dimension floor (floor =
// 1e-4) or without it (floor = 0): all components kept, in the PCA basis.
double gbc_spherical(const SelectorInputs& in, double floor) {
  at::Tensor x = in.features - in.features.mean(0, true);
  at::Tensor p = at::mm(x, std::get<2>(at::linalg_svd(x, false)).t());
  std::vector<at::Tensor> mu;
  std::vector<double> var;
  for (int64_t c = 0; c < in.classes; ++c) {
    at::Tensor xc = p.index_select(0, (in.labels == c).nonzero().squeeze(1));
    mu.push_back(xc.mean(0));
    var.push_back(xc.var(0, /*unbiased=*/false).clamp_min(floor).mean().item<double>());
  }
  double total = 0;
  for (int64_t a = 0; a < in.classes; ++a)
    for (int64_t b = 0; b < in.classes; ++b)
      if (a != b) {
        const double s = (var[a] + var[b]) / 2;
        total += std::exp(-(mu[a] - mu[b]).pow(2).sum().item<double>() / (8 * s) - 0.5 * std::log(s / std::sqrt(var[a] * var[b])));
      }
  return -total;
}

TEST(Gbc, FloorsEveryDimensionsVarianceLikeTheAuthors) {
  // Tight clusters with two dimensions nearly dead: in the PCA basis their
  // per-class variances sit far below the 1e-4 floor.
  SelectorInputs in = clusters(80, 6, 4, 0.2, 11);
  in.features = in.features * 0.02;
  in.features.select(1, 4).mul_(1e-3);
  in.features.select(1, 5).mul_(1e-3);
  const double floored = gbc_spherical(in, 1e-4), raw = gbc_spherical(in, 0.0);
  EXPECT_GT(std::abs(floored - raw), 0.01 * std::abs(raw)) << "the case does not exercise the floor";
  EXPECT_NEAR(selector("gbc").score(in), floored, 1e-9 * std::abs(floored));
}

// 1 - Pearson correlation between rows, uncentred columns: the RDM before the authors' centring.
std::vector<double> raw_rdm(const at::Tensor& f) {
  at::Tensor r = f - f.mean(1, true);
  r = r / r.norm(2, 1, true);
  at::Tensor c = at::mm(r, r.t());
  std::vector<double> out;
  for (int64_t i = 0; i < f.size(0); ++i)
    for (int64_t j = 0; j < i; ++j) out.push_back(1 - c[i][j].item<double>());
  return out;
}

TEST(Rsa, ACommonOffsetDoesNotChangeTheScore) {
  SelectorInputs in = clusters(40, 8, 4, 1.5, 12);
  in.probe_features = in.features.narrow(1, 0, 5) + 0.5 * at::randn({40, 5}, at::detail::createCPUGenerator(13), at::kDouble);
  at::Tensor offset = at::linspace(-20, 30, 8, at::kDouble);  // the same vector added to every sample
  SelectorInputs shifted = in;
  shifted.features = in.features + offset;
  const double base = selector("rsa").score(in);
  EXPECT_NEAR(selector("rsa").score(shifted), base, 1e-12);
  // Without the centring the offset dominates every RDM entry.
  const std::vector<double> probe = raw_rdm(in.probe_features);
  EXPECT_GT(std::abs(spearman(raw_rdm(shifted.features), probe) - spearman(raw_rdm(in.features), probe)), 0.05);
}

// Every selector on the registry's list from the issue is registered.
TEST(Registry, TheEighteenScores) {
  for (const char* n : {"lfc", "lgc", "leep", "nce", "logme", "hscore", "hscore_shrink", "nleep", "gbc", "transrate",
                        "sfda", "parc", "knn", "linear_probe", "rsa", "dds", "domain_similarity", "ncti"})
    EXPECT_NO_THROW(selector(n)) << n;
  EXPECT_EQ(all_selectors().size(), 18u);
}

// Once the features span the samples, H-score is C - 1 and SFDA 1 for any
// features: the scores say so instead of ranking a zoo by rounding.
TEST(Saturation, HScoreAndSfdaAtTheirLimitsSaySo) {
  const Selector &h = selector("hscore"), &sfda = selector("sfda");
  SelectorInputs wide = clusters(50, 64, 10, 0.0, 3);  // D = 64 >= N - 1 = 49: pure noise, no class signal
  const double hv = h.score(wide), sv = sfda.score(wide);
  EXPECT_NEAR(hv, 9.0, 1e-8);
  EXPECT_NEAR(sv, 1.0, 1e-6);
  EXPECT_NE(h.saturation(wide, hv).find("H-score = C - 1 for any model"), std::string::npos) << h.saturation(wide, hv);
  EXPECT_NE(sfda.saturation(wide, sv).find("SFDA = 1 for any model"), std::string::npos) << sfda.saturation(wide, sv);
  // Small-variance features keep SFDA's ridge large: D >= N - C, but the score still ranks.
  SelectorInputs faint = wide;
  faint.features = wide.features * 0.1;
  const double sv_faint = sfda.score(faint);
  EXPECT_LT(sv_faint, 0.99);
  EXPECT_EQ(sfda.saturation(faint, sv_faint), "");
  SelectorInputs narrow = clusters(200, 16, 10, 1.0, 4);
  EXPECT_EQ(h.saturation(narrow, h.score(narrow)), "");
  EXPECT_EQ(sfda.saturation(narrow, sfda.score(narrow)), "");
}

TEST(CombineFinite, ModelsRankedLastKeepMinusInfinity) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> terms = {{1.0, 2.0, 3.0}, {-inf}, {2.0, 1.0, 0.5}, {0.5, 0.5, 0.5}};
  std::vector<double> v = combine_finite(selector("ncti"), terms);
  std::vector<double> direct = selector("ncti").combine({terms[0], terms[2], terms[3]});
  ASSERT_EQ(v.size(), 4u);
  EXPECT_EQ(v[1], -inf);
  EXPECT_DOUBLE_EQ(v[0], direct[0]);
  EXPECT_DOUBLE_EQ(v[2], direct[1]);
  EXPECT_DOUBLE_EQ(v[3], direct[2]);
  EXPECT_EQ(combine_finite(selector("lfc"), {{-inf}, {-inf}}), (std::vector<double>{-inf, -inf}));
  // A model that could not be scored (NaN: no source data) stays NaN, not last, and is left out of the rest.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  v = combine_finite(selector("ncti"), {terms[0], {nan}, terms[2], terms[3]});
  EXPECT_TRUE(std::isnan(v[1]));
  EXPECT_DOUBLE_EQ(v[0], direct[0]);
  EXPECT_DOUBLE_EQ(v[3], direct[2]);
  v = combine_finite(selector("domain_similarity"), {{0.5}, {nan}});
  EXPECT_EQ(v[0], 0.5);
  EXPECT_TRUE(std::isnan(v[1]));
}
