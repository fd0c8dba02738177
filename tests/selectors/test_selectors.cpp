#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "../common.h"
#include "zoobench/error.h"
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
  }
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
