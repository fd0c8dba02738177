#include <gtest/gtest.h>

#include <yaml-cpp/yaml.h>

#include <cstdlib>

#include "../common.h"
#include "zoobench/config.h"
#include "zoobench/error.h"

using namespace zoobench;

namespace {
std::string error_of(const std::string& yaml) {
  try {
    parse_config(yaml, "exp.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Config, DefaultsFillEveryKey) {
  Config c = parse_config("", "empty.yaml");
  EXPECT_EQ(c.name, "default");
  EXPECT_EQ(c.data_dir, "data");
  EXPECT_EQ(c.domains, std::vector<std::string>{"all"});
  EXPECT_TRUE(c.tasks.empty());
  EXPECT_NE(c.resolved_yaml.find("results_dir: results"), std::string::npos) << c.resolved_yaml;
}

TEST(Config, TasksResolveWithDefaultsAndLocation) {
  Config c = parse_config(
      "name: mini\n"
      "tasks:\n"
      "  - dataset: opencv-digits\n"
      "    shots: 5\n"
      "  - {dataset: glyphs-greek, name: greek-5, classes: [Α, Β, Γ], val_fraction: 0.4}\n",
      "mini.yaml");
  ASSERT_EQ(c.tasks.size(), 2u);
  EXPECT_EQ(c.tasks[0].name, "opencv-digits");
  EXPECT_EQ(c.tasks[0].shots, 5);
  EXPECT_DOUBLE_EQ(c.tasks[0].val_fraction, 0.2);
  EXPECT_EQ(c.tasks[0].where, "mini.yaml:3:5");
  EXPECT_EQ(c.tasks[1].classes, (std::vector<std::string>{"Α", "Β", "Γ"}));
  EXPECT_EQ(c.tasks[1].shots, 10);
  // The resolved text parses back to the same config.
  Config again = parse_config(c.resolved_yaml, "resolved");
  EXPECT_EQ(again.tasks[1].name, "greek-5");
  EXPECT_EQ(again.resolved_yaml, c.resolved_yaml);
}

TEST(Config, UnknownKeyNamesLineColumnPathAndValidKeys) {
  std::string e = error_of("name: x\ndata:\n  dir: d\n  domain: [mnist]\n");
  EXPECT_NE(e.find("exp.yaml:4:3"), std::string::npos) << e;
  EXPECT_NE(e.find("data:"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key 'domain'"), std::string::npos) << e;
  EXPECT_NE(e.find("valid keys: dir, domains"), std::string::npos) << e;
}

TEST(Config, StringWhereNumberBelongs) {
  std::string e = error_of("tasks:\n  - dataset: mnist\n    shots: ten\n");
  EXPECT_NE(e.find("exp.yaml:3:12"), std::string::npos) << e;
  EXPECT_NE(e.find("tasks[0].shots"), std::string::npos) << e;
  EXPECT_NE(e.find("expected an integer or all, got 'ten'"), std::string::npos) << e;
  EXPECT_NE(error_of("seed: 1.5\n").find("expected an integer"), std::string::npos);
  EXPECT_NE(error_of("tasks: [{dataset: m, val_fraction: abc}]\n").find("expected a finite number"), std::string::npos);
}

TEST(Config, OutOfRangeMissingAndStructure) {
  EXPECT_NE(error_of("tasks: [{dataset: m, shots: 0}]\n").find("out of range [1, 100000]"), std::string::npos);
  EXPECT_NE(error_of("tasks: [{dataset: m, val_fraction: 0.95}]\n").find("out of range"), std::string::npos);
  EXPECT_NE(error_of("tasks: [{shots: 3}]\n").find("tasks[0].dataset: missing required key"), std::string::npos);
  EXPECT_NE(error_of("tasks: {dataset: m}\n").find("expected a list"), std::string::npos);
  EXPECT_NE(error_of("data: [1, 2]\n").find("expected a map"), std::string::npos);
  EXPECT_NE(error_of("data: {domains: mnist}\n").find("expected a list of strings"), std::string::npos);
  EXPECT_NE(error_of("tasks: [{dataset: m}, {dataset: m}]\n").find("duplicate task name 'm'"), std::string::npos);
  EXPECT_NE(error_of("tasks: [{dataset: m, classes: [a]}]\n").find("at least 2 classes"), std::string::npos);
  EXPECT_NE(error_of("name: [a\n").find("YAML syntax error"), std::string::npos);
  EXPECT_NE(error_of("name: a/b\n").find("without '/'"), std::string::npos);
}

TEST(Config, MissingFileIsAConfigError) {
  EXPECT_THROW(load_config("/nonexistent/zoobench.yaml"), ConfigError);
}

TEST(Config, ExplainListsEveryKey) {
  std::string text = explain_config();
  for (const char* key : {"name", "seed", "threads", "results_dir", "data.dir", "data.domains", "tasks[].dataset",
                          "tasks[].shots", "tasks[].val_fraction", "tasks[].test_per_class"})
    EXPECT_NE(text.find(key), std::string::npos) << key;
}

TEST(Config, RepositoryConfigsAreValid) {
  for (const char* name : {"quickstart.yaml", "tiny.yaml"}) {
    Config c = load_config(std::string(ZB_SOURCE_DIR) + "/configs/" + name);
    EXPECT_FALSE(c.tasks.empty()) << name;
  }
}

// Few-shot sets have a handful of batches an epoch: min_steps sets the length in optimisation steps.
TEST(Config, FinetuneEpochsReachTheStepFloor) {
  FinetuneConfig f;
  f.epochs = 20;
  f.batch_size = 32;
  EXPECT_EQ(finetune_epochs(f, 80), 20);  // no floor: epochs alone
  f.min_steps = 300;
  EXPECT_EQ(finetune_epochs(f, 80), 100);   // 3 batches an epoch (32, 32, 16)
  EXPECT_EQ(finetune_epochs(f, 65), 150);   // 2 batches: the ragged batch of one is skipped
  EXPECT_EQ(finetune_epochs(f, 10), 300);   // one batch
  EXPECT_EQ(finetune_epochs(f, 32000), 20); // the epochs already give more steps
}

// One entry, several samples of a target: shot_grid x seeds, each its own task of the entry's group.
TEST(Config, TasksExpandOverShotsAndSeeds) {
  Config c = parse_config(
      "name: mini\n"
      "tasks:\n"
      "  - {dataset: optdigits, shot_grid: [5, 20], seeds: 2, seed: 7}\n"
      "  - {dataset: opencv-digits, shots: 3}\n",
      "mini.yaml");
  ASSERT_EQ(c.tasks.size(), 5u);
  std::vector<std::string> names;
  for (const auto& t : c.tasks) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"optdigits-5shot-s7", "optdigits-5shot-s8", "optdigits-20shot-s7",
                                             "optdigits-20shot-s8", "opencv-digits"}));
  EXPECT_EQ(c.tasks[2].shots, 20);
  EXPECT_EQ(c.tasks[3].seed, 8u);
  EXPECT_EQ(c.tasks[3].group, "optdigits");
  EXPECT_EQ(c.tasks[4].group, "opencv-digits");
  EXPECT_THROW(parse_config("name: m\ntasks:\n  - {dataset: optdigits, shot_grid: [2.5]}\n", "m.yaml"), ConfigError);
}

TEST(Config, DecayEpochsExplicitOrBySharesOfTheEpochs) {
  Config d = parse_config("", "d.yaml");
  EXPECT_TRUE(d.finetune.decay_epochs.empty());
  EXPECT_EQ(d.resolved_yaml.find("decay_epochs"), std::string::npos) << "absent keys stay out of the identity";
  // The default: x0.1 after 50 % and 83 % of the epochs (24 of 30: int(30 * 0.83)).
  EXPECT_DOUBLE_EQ(lr_factor(d.finetune, 30, 14), 1.0);
  EXPECT_DOUBLE_EQ(lr_factor(d.finetune, 30, 15), 0.1);
  EXPECT_EQ(lr_factor(d.finetune, 30, 24), 0.01);  // bit for bit what earlier runs used
  // The seed paper's schedule: after epochs 15 and 25 of 30.
  Config p = parse_config("finetune: {epochs: 30, decay_epochs: [15, 25]}\n", "p.yaml");
  EXPECT_EQ(p.finetune.decay_epochs, (std::vector<int>{15, 25}));
  EXPECT_DOUBLE_EQ(lr_factor(p.finetune, 30, 24), 0.1);
  EXPECT_EQ(lr_factor(p.finetune, 30, 25), 0.01);
  std::string e = error_of("finetune:\n  decay_epochs: [25, 15]\n");
  EXPECT_NE(e.find("exp.yaml:2:17"), std::string::npos) << e;
  EXPECT_NE(e.find("finetune.decay_epochs: epochs are increasing whole numbers >= 1"), std::string::npos) << e;
  EXPECT_NE(error_of("finetune: {decay_epochs: [1.5]}\n").find("whole numbers"), std::string::npos);
}

// A task may set its own step floor; extend_edges widens the lr grid where it binds. Both stay out of
// the identity of configs that do not name them, so earlier results keep resuming.
TEST(Config, TaskStepFloorAndEdgeExtension) {
  Config d = parse_config("tasks:\n  - {dataset: optdigits}\n", "d.yaml");
  EXPECT_FALSE(d.finetune.extend_edges);
  EXPECT_EQ(d.tasks[0].min_steps, -1);
  EXPECT_EQ(d.resolved_yaml.find("extend_edges"), std::string::npos) << d.resolved_yaml;
  EXPECT_FALSE(YAML::Load(d.resolved_yaml)["tasks"][0]["min_steps"].IsDefined()) << d.resolved_yaml;
  Config c = parse_config(
      "tasks:\n"
      "  - {dataset: glyphs-thai, shot_grid: [5, 10], min_steps: 250}\n"
      "  - {dataset: optdigits}\n"
      "finetune: {epochs: 26, min_steps: 150, lrs: [0.2, 0.1], extend_edges: true}\n",
      "c.yaml");
  EXPECT_TRUE(c.finetune.extend_edges);
  ASSERT_EQ(c.tasks.size(), 3u);
  EXPECT_EQ(c.tasks[1].min_steps, 250) << "every task of the entry";
  EXPECT_EQ(c.tasks[2].min_steps, -1);
  // 184 training images: 6 batches an epoch; 250 steps need 42 epochs, the config's floor 26.
  EXPECT_EQ(finetune_epochs(finetune_for(c.finetune, c.tasks[0]), 184), 42);
  EXPECT_EQ(finetune_epochs(finetune_for(c.finetune, c.tasks[2]), 184), 26);
  EXPECT_NE(error_of("tasks:\n  - {dataset: optdigits, min_steps: -5}\n").find("tasks[0].min_steps"), std::string::npos);
  EXPECT_NE(error_of("finetune: {extend_edges: maybe}\n").find("finetune.extend_edges"), std::string::npos);
}

// shots: all, alone or in a shot grid: every training image, shot 0, named <name>-all-s<seed>.
TEST(Config, AllShots) {
  Config c = parse_config("tasks:\n  - {dataset: dtd, shot_grid: [5, all], seeds: 2}\n  - {dataset: pets, shots: all}\n",
                          "a.yaml");
  ASSERT_EQ(c.tasks.size(), 5u);
  EXPECT_EQ(c.tasks[2].name, "dtd-all-s0");
  EXPECT_EQ(c.tasks[3].name, "dtd-all-s1");
  EXPECT_EQ(c.tasks[2].shots, TaskSpec::kAllShots);
  EXPECT_EQ(c.tasks[4].name, "pets");
  EXPECT_EQ(c.tasks[4].shots, TaskSpec::kAllShots);
  // A numeric grid resolves to numbers as before (results of earlier configs keep their identity), "all" to a word.
  const std::string numeric = parse_config("tasks:\n  - {dataset: d, shot_grid: [5, 10]}\n", "b.yaml").resolved_yaml;
  EXPECT_NE(numeric.find("- 5\n"), std::string::npos) << numeric;
  EXPECT_NE(numeric.find("- 10\n"), std::string::npos) << numeric;
  EXPECT_NE(c.resolved_yaml.find("- all\n"), std::string::npos) << c.resolved_yaml;
  EXPECT_NE(error_of("tasks:\n  - {dataset: d, shot_grid: [5, most]}\n").find("expected a positive number or all, got 'most'"),
            std::string::npos);
}

// ${NAME} in paths: expanded from the environment; the identity keeps the text as written; an unset
// variable is an error for the commands that use the path and a note for plan.
TEST(Config, EnvironmentVariablesInPaths) {
  setenv("ZB_TEST_ROOT", "/shared/zb", 1);
  unsetenv("ZB_TEST_UNSET");
  Config c = parse_config("data: {dir: '${ZB_TEST_ROOT}/data'}\nzoo: {manifest: '${ZB_TEST_UNSET}/zoo.yaml'}\n", "e.yaml");
  EXPECT_EQ(c.data_dir, "/shared/zb/data");
  EXPECT_EQ(c.zoo.manifest, "${ZB_TEST_UNSET}/zoo.yaml");
  EXPECT_EQ(c.unset_env, std::vector<std::string>{"zoo.manifest: ZB_TEST_UNSET"});
  EXPECT_NE(c.resolved_yaml.find("${ZB_TEST_ROOT}/data"), std::string::npos) << c.resolved_yaml;
  try {
    require_env(c);
    FAIL() << "unset variable accepted";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "e.yaml: zoo.manifest names ${ZB_TEST_UNSET}, which is not set in the environment "
                           "(export it, or set the path in the config)");
  }
  std::vector<std::string> unset;
  EXPECT_EQ(expand_env("a/${ZB_TEST_ROOT}/${ZB_TEST_UNSET}/$HOME", "w", &unset), "a//shared/zb/${ZB_TEST_UNSET}/$HOME");
  EXPECT_EQ(unset, std::vector<std::string>{"ZB_TEST_UNSET"});
  EXPECT_NE(error_of("results_dir: 'x/${OPEN'\n").find("has a '${' without its '}'"), std::string::npos);
  EXPECT_NE(error_of("results_dir: 'x/${1BAD}'\n").find("a variable name is [A-Za-z_][A-Za-z0-9_]*"), std::string::npos);
  unsetenv("ZB_TEST_ROOT");
}
