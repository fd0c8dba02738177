// Every registered selector against ../shared/testdata/selectors-reference.json:
// scores from independent float64 numpy implementations of SELECTORS.md.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "zoobench/selector.h"

using namespace zoobench;

namespace {
std::filesystem::path reference_file() {
  for (auto p : {std::filesystem::path(ZB_SOURCE_DIR) / "../shared/testdata/selectors-reference.json",
                 std::filesystem::path(ZB_SOURCE_DIR) / "shared/testdata/selectors-reference.json"})
    if (std::filesystem::exists(p)) return p;
  return {};
}

at::Tensor matrix(const nlohmann::json& rows) {
  std::vector<double> v;
  for (const auto& r : rows)
    for (const auto& x : r) v.push_back(x.get<double>());
  int64_t n = static_cast<int64_t>(rows.size());
  return at::tensor(v, at::kDouble).view({n, static_cast<int64_t>(v.size()) / n});
}
}  // namespace

TEST(Reference, EveryRegisteredSelectorMatches) {
  auto file = reference_file();
  if (file.empty()) GTEST_SKIP() << "selectors-reference.json not found beside the checkout";
  nlohmann::json ref = nlohmann::json::parse(std::ifstream(file));
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
