// Every registered selector against tests/selectors/data/selectors-reference.json:
// four small inputs (D > N and C = 2 among them) with the scores that
// independent float64 numpy implementations of the definitions in
// docs/selectors.md give. The file is part of the repository, so a missing
// file is a failure, not a skip.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "zoobench/selector.h"

using namespace zoobench;

namespace {
const std::filesystem::path kReferenceFile = ZB_SOURCE_DIR "/tests/selectors/data/selectors-reference.json";

at::Tensor matrix(const nlohmann::json& rows) {
  std::vector<double> v;
  for (const auto& r : rows)
    for (const auto& x : r) v.push_back(x.get<double>());
  int64_t n = static_cast<int64_t>(rows.size());
  return at::tensor(v, at::kDouble).view({n, static_cast<int64_t>(v.size()) / n});
}
}  // namespace

TEST(Reference, EveryRegisteredSelectorMatches) {
  const std::filesystem::path& file = kReferenceFile;
  ASSERT_TRUE(std::filesystem::is_regular_file(file)) << "reference data missing: " << file;
  std::ifstream stream(file);
  ASSERT_TRUE(stream) << "cannot open " << file;
  nlohmann::json ref = nlohmann::json::parse(stream);
  ASSERT_TRUE(ref.contains("cases") && !ref["cases"].empty()) << file << " holds no cases";
  int checked = 0;
  for (const auto& c : ref["cases"]) {
    SelectorInputs in;
    in.features = matrix(c["features"]);
    std::vector<int64_t> labels = c["labels"].get<std::vector<int64_t>>();
    in.labels = at::tensor(labels, at::kLong);
    in.classes = c["C"].get<int64_t>();
    in.source_probs = matrix(c["source_probs"]);
    for (const auto& [name, expected] : c["expected"].items()) {
      const Selector* s = nullptr;
      for (const auto* r : all_selectors())
        if (r->name() == name) s = r;
      if (!s) continue;  // not implemented yet
      double tol = (name == "gbc" || name == "parc" || name == "sfda") ? 1e-6 : 1e-7;
      double want = expected.get<double>();
      EXPECT_NEAR(s->score(in), want, tol * std::max(1.0, std::abs(want))) << name << " on case " << c["name"];
      ++checked;
    }
  }
  EXPECT_GE(checked, 12);  // lfc, leep, knn on the 4 cases at least
}
