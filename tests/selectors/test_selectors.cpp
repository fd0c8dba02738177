#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "../common.h"
#include "zoobench/error.h"
#include "zoobench/reduce.h"
#include "zoobench/selector.h"

using namespace zoobench;

namespace {

SelectorInputs random_inputs(int64_t n, int64_t d, int64_t c, uint64_t seed) {
  at::Generator g = at::detail::createCPUGenerator(seed);
  SelectorInputs in;
  in.classes = c;
  in.labels = at::arange(n, at::kLong).remainder(c);  // every class present
  in.features = at::randn({n, d}, g, at::kDouble) + in.labels.to(at::kDouble).unsqueeze(1) * 0.5;
  in.source_probs = at::softmax(at::randn({n, 5}, g, at::kDouble), 1);
  in.grad_sketch = at::randn({n, 16}, g, at::kDouble);
  in.probe_features = at::randn({n, 7}, g, at::kDouble) + in.labels.to(at::kDouble).unsqueeze(1);
  in.source_class_means = at::randn({6, d}, g, at::kDouble);
  in.source_class_counts = at::tensor({10.0, 3.0, 8.0, 20.0, 5.0, 12.0}, at::kDouble);
  return in;
}

// Dense N x N reference of the seed paper's formula.
double lfc_dense(const at::Tensor& f, const at::Tensor& y) {
  at::Tensor theta = at::mm(f, f.t());
  at::Tensor k = (y.unsqueeze(0) == y.unsqueeze(1)).to(at::kDouble) * 2 - 1;
  at::Tensor a = theta - theta.mean(), b = k - k.mean();
  return ((a * b).sum() / (a.norm() * b.norm())).item<double>();
}

}  // namespace

TEST(Registry, UnknownNameListsEveryKnownOne) {
  try {
    selector("logmee");
    FAIL();
  } catch (const ConfigError& e) {
    std::string m = e.what();
    for (const char* n : {"lfc", "lgc", "leep", "knn"}) EXPECT_NE(m.find(n), std::string::npos) << m;
  }
  EXPECT_EQ(selectors_from({"all"}).size(), all_selectors().size());
  EXPECT_EQ(selectors_from({"lfc", "lfc", "knn"}).size(), 2u);
}

// Contract over every registered selector: finite, deterministic, and
// unchanged by permuting samples or renaming classes.
TEST(Contract, EverySelector) {
  for (const Selector* s : all_selectors()) {
    SCOPED_TRACE(s->name());
    EXPECT_FALSE(s->variant().empty());
    for (auto [n, d, c] : {std::tuple{40, 6, 3}, std::tuple{12, 30, 2}, std::tuple{25, 1, 5}}) {
      SelectorInputs in = random_inputs(n, d, c, 7);
      if (d == 1 && (s->name() == "parc" || s->name() == "rsa")) {  // row correlations of 1-D rows are undefined
        EXPECT_THROW(s->score(in), DataError);
        continue;
      }
      double v = s->score(in);
      EXPECT_TRUE(std::isfinite(v));
      EXPECT_EQ(v, s->score(in));
      at::Tensor perm = at::randperm(n, at::detail::createCPUGenerator(3), at::kLong);
      SelectorInputs p = in;
      p.features = in.features.index_select(0, perm);
      p.labels = in.labels.index_select(0, perm);
      p.source_probs = in.source_probs.index_select(0, perm);
      p.grad_sketch = in.grad_sketch.index_select(0, perm);
      p.probe_features = in.probe_features.index_select(0, perm);
      EXPECT_NEAR(s->score(p), v, 1e-9 * std::max(1.0, std::abs(v)));
      SelectorInputs r = in;
      r.labels = (c - 1) - in.labels;  // rename classes
      EXPECT_NEAR(s->score(r), v, 1e-9 * std::max(1.0, std::abs(v)));
    }
    SelectorInputs dup = random_inputs(20, 4, 2, 1);
    dup.features.narrow(0, 10, 10).copy_(dup.features.narrow(0, 0, 10));  // duplicate rows
    dup.features.select(1, 2).fill_(3.0);                                 // a constant column
    EXPECT_TRUE(std::isfinite(s->score(dup)));
    SelectorInputs single = random_inputs(21, 5, 3, 9);
    single.labels = at::arange(21, at::kLong).remainder(2) + 1;
    single.labels[0] = 0;  // class 0 has one sample
    EXPECT_TRUE(std::isfinite(s->score(single)));
    // memory_refusal's search for the N that fits needs the estimate to grow with N.
    double last = 0;
    for (int64_t n : {2, 10, 1000, 50000, 1000000}) {
      const double bytes = s->memory_bytes(n, 512, 512);
      EXPECT_GE(bytes, last) << "N = " << n;
      last = bytes;
    }
  }
}

// At N = 50,000 and D = 512 (the memory goal): within 8 GiB, or refused.
TEST(Memory, OnlyTheRdmSpearmanScoresNeedMoreThan8GiBAtN50000) {
  SelectorInputs big;
  big.classes = 100;
  big.features = at::empty({50000, 512}, at::kDouble);  // memory_refusal reads shapes only
  big.probe_features = at::empty({50000, 512}, at::kDouble);
  big.labels = at::empty({50000}, at::kLong);
  for (const Selector* s : all_selectors()) {
    const std::string why = memory_refusal(*s, big, 8192);
    if (s->name() != "parc" && s->name() != "rsa") {
      EXPECT_EQ(why, "") << s->name();
      continue;
    }
    // 64 bytes a pair: over 80 GB; about 16,000 samples fit in 8 GiB, so
    // about 160 a class, exactly the most whose N fits.
    EXPECT_EQ(why.rfind("selector '" + s->name() + "' would need 8", 0), 0u) << why;
    EXPECT_NE(why.find(" GB at N = 50,000 samples, over extract.score_memory_mb = 8192 MiB; extract.max_per_class: "),
              std::string::npos) << why;
    const int64_t per_class = std::stoll(why.substr(why.find("max_per_class: ") + 15));
    char fit[64];
    std::snprintf(fit, sizeof fit, "would fit (N <= %d,%03d over 100 classes)", static_cast<int>(per_class / 10),
                  static_cast<int>(per_class % 10 * 100));
    EXPECT_NE(why.find(fit), std::string::npos) << why;
    EXPECT_GE(per_class, 155);
    EXPECT_LE(per_class, 163);
    EXPECT_LE(s->memory_bytes(per_class * 100, 512, 512), 8192.0 * 1048576);
    EXPECT_GT(s->memory_bytes((per_class + 1) * 100, 512, 512), 8192.0 * 1048576);
  }
  big.classes = 100000;  // a class each: not even one sample a class fits
  EXPECT_NE(memory_refusal(selector("parc"), big, 1).find("no extract.max_per_class fits: raise extract.score_memory_mb"),
            std::string::npos);
}

// Past 4096 values the ranks come from a radix sort on float keys with the
// runs of equal floats sorted on the doubles: the same average ranks as a
// comparison sort, through exact ties, -0 and +0, and doubles that round to
// one float.
TEST(Ranks, RadixPathAgreesWithAComparisonSort) {
  at::Generator g = at::detail::createCPUGenerator(7);
  const at::Tensor draw = at::randn({20000}, g, at::kDouble);
  const double* d = draw.data_ptr<double>();
  std::vector<double> v;
  for (int i = 0; i < 20000; ++i) {
    const double x = d[i] * (i % 3 == 0 ? 1e6 : 1.0);
    v.push_back(x);
    if (i % 5 == 0) v.push_back(x);                                 // an exact tie
    if (i % 7 == 0) v.push_back(std::nextafter(x, 10.0 * x + 1));   // the same float, another double
    if (i % 11 == 0) v.push_back(std::nextafter(static_cast<double>(static_cast<float>(x)), -1e300));
  }
  for (int i = 0; i < 50; ++i) v.insert(v.end(), {0.0, -0.0, 1.0, -1.0});
  ASSERT_GT(v.size(), 4096u);
  auto reference = [](const std::vector<double>& x) {
    std::vector<size_t> order(x.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
    std::vector<double> r(x.size());
    for (size_t i = 0; i < order.size();) {
      size_t j = i;
      while (j + 1 < order.size() && x[order[j + 1]] == x[order[i]]) ++j;
      for (size_t k = i; k <= j; ++k) r[order[k]] = static_cast<double>(i + j) / 2.0 + 1.0;
      i = j + 1;
    }
    return r;
  };
  for (const size_t n : {v.size(), size_t{4000}}) {  // the radix path, then the comparison sort's
    const std::vector<double> x(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n));
    const std::vector<double> got = average_ranks(x), want = reference(x);
    ASSERT_EQ(got.size(), n);
    size_t wrong = 0;
    for (size_t i = 0; i < n; ++i) wrong += got[i] != want[i];
    EXPECT_EQ(wrong, 0u) << "n = " << n;
  }
}

// kNN and DDS compute the N x N Gram matrix a block of rows at a time: past
// one block (N > 5,592 at 256 MiB) they agree with the whole matrix.
TEST(Memory, KnnAndDdsInBlocksAgreeWithTheWholeMatrix) {
  SelectorInputs in = random_inputs(6000, 8, 4, 11);
  in.features = in.features + at::randn({6000, 8}, at::detail::createCPUGenerator(2), at::kDouble) * 2;
  at::Tensor d2 = at::cdist(in.features, in.features).pow(2);
  d2.fill_diagonal_(std::numeric_limits<double>::infinity());
  const double knn = in.labels.index_select(0, d2.argmin(1)).eq(in.labels).to(at::kDouble).mean().item<double>();
  EXPECT_NEAR(selector("knn").score(in), knn, 1.0 / 6000 + 1e-12);  // a tie may break to a different row
  auto kernel = [](at::Tensor f) {  // z-scored, unit rows: 1 - cosine similarity, zero diagonal
    f = (f - f.mean(0, true)) / f.std(0, false, true);
    f = f / f.norm(2, 1, true);
    at::Tensor k = 1 - at::mm(f, f.t());
    return k.fill_diagonal_(0);
  };
  auto hsic = [](const at::Tensor& k, const at::Tensor& l) {  // Song et al. 2012, eq. 5
    const double n = static_cast<double>(k.size(0));
    return ((k * l).sum() + k.sum() * l.sum() / ((n - 1) * (n - 2)) - 2 * at::mv(k, l.sum(1)).sum() / (n - 2))
               .item<double>() / (n * (n - 3));
  };
  at::Tensor k = kernel(in.features), l = kernel(in.probe_features);
  const double cka = hsic(k, l) / std::sqrt(hsic(k, k) * hsic(l, l));
  EXPECT_NEAR(selector("dds").score(in), cka, 1e-9);
}

TEST(Inputs, BadInputIsAnErrorNamingWho) {
  SelectorInputs in = random_inputs(10, 3, 2, 1);
  in.features[4][1] = std::nan("");
  try {
    validate_inputs(in, kNeedFeatures, "model 'm', task 't'");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("model 'm', task 't': features contain NaN"), std::string::npos) << e.what();
  }
  in = random_inputs(10, 3, 2, 1);
  in.labels[0] = 2;
  EXPECT_THROW(validate_inputs(in, kNeedFeatures, "x"), DataError);
  in = random_inputs(10, 3, 2, 1);
  in.features = in.features.narrow(0, 0, 9);
  EXPECT_THROW(validate_inputs(in, kNeedFeatures, "x"), DataError);
  in = random_inputs(10, 3, 2, 1);
  in.source_probs = at::Tensor();
  EXPECT_THROW(validate_inputs(in, kNeedSourceProbs, "x"), DataError);
  in = random_inputs(10, 3, 2, 1);
  in.features = in.features.narrow(0, 0, 0);
  in.labels = in.labels.narrow(0, 0, 0);
  EXPECT_NE(zbtest::error_of<DataError>([&] { validate_inputs(in, kNeedFeatures, "x"); }).find("N = 0"), std::string::npos);
  in = random_inputs(10, 3, 2, 1);
  in.probe_features = in.probe_features.narrow(0, 0, 8);
  EXPECT_NE(zbtest::error_of<DataError>([&] { validate_inputs(in, kNeedProbeFeatures, "x"); }).find("8 rows"), std::string::npos);
  in = random_inputs(10, 3, 2, 1);
  in.source_class_means = at::Tensor();
  EXPECT_NE(zbtest::error_of<DataError>([&] { validate_inputs(in, kNeedSourceDomain, "x"); }).find("source-domain"), std::string::npos);
}

TEST(Lfc, ClosedFormsAndDenseAgreement) {
  const Selector& lfc = selector("lfc");
  SelectorInputs in = random_inputs(60, 8, 4, 2);
  EXPECT_NEAR(lfc.score(in), lfc_dense(in.features, in.labels), 1e-12);
  SelectorInputs wide = random_inputs(10, 50, 3, 4);  // D > N takes the other Gram
  EXPECT_NEAR(lfc.score(wide), lfc_dense(wide.features, wide.labels), 1e-12);
  SelectorInputs scaled = in;
  scaled.features = in.features * 37.5;
  EXPECT_NEAR(lfc.score(scaled), lfc.score(in), 1e-12);
  SelectorInputs onehot = in;
  onehot.features = at::one_hot(in.labels, 4).to(at::kDouble) * 3.0;  // Theta = 9 O O^T, an affine map of K
  EXPECT_NEAR(lfc.score(onehot), 1.0, 1e-12);
}

TEST(Leep, OneToOneSourceMapScoresZero) {
  SelectorInputs in = random_inputs(30, 2, 3, 5);
  in.source_probs = at::one_hot(in.labels, 3).to(at::kDouble).index_select(1, at::tensor({2, 0, 1}, at::kLong));
  EXPECT_NEAR(selector("leep").score(in), 0.0, 1e-12);
  in.source_probs = at::full({30, 3}, 1.0 / 3, at::kDouble);  // uninformative source: log(1/C)
  EXPECT_NEAR(selector("leep").score(in), std::log(1.0 / 3), 1e-12);
}

TEST(Knn, SeparatedClustersAndTies) {
  SelectorInputs in = random_inputs(30, 2, 3, 5);
  in.features = in.labels.to(at::kDouble).unsqueeze(1).repeat({1, 2}) * 100 + at::randn({30, 2}, at::kDouble) * 0.01;
  EXPECT_DOUBLE_EQ(selector("knn").score(in), 1.0);
  // Four identical points, labels 1, 0, 1, 0: every neighbour ties, the smallest label (0) wins.
  SelectorInputs t;
  t.classes = 2;
  t.labels = at::tensor({1, 0, 1, 0}, at::kLong);
  t.features = at::zeros({4, 3}, at::kDouble);
  EXPECT_DOUBLE_EQ(selector("knn").score(t), 0.5);
}
