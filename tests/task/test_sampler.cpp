#include <gtest/gtest.h>

#include <set>

#include "zoobench/error.h"
#include "zoobench/task.h"

using namespace zoobench;

namespace {
// 3 classes x (20 train + 5 test), labels interleaved.
ImageSet synthetic() {
  ImageSet s;
  s.name = "synthetic";
  s.class_names = {"zero", "one", "two"};
  std::vector<uint8_t> px(s.image_bytes(), 0);
  for (int i = 0; i < 75; ++i) s.add(px.data(), i % 3, i < 60 ? Split::Train : Split::Test);
  return s;
}

TaskSpec spec(int shots, uint64_t seed = 0) {
  TaskSpec t;
  t.name = "t";
  t.dataset = "synthetic";
  t.shots = shots;
  t.seed = seed;
  t.val_fraction = 0.2;
  return t;
}
}  // namespace

TEST(Sampler, SizesLabelsAndDisjointness) {
  ImageSet s = synthetic();
  Task t = sample_task(spec(5), s);
  EXPECT_EQ(t.classes(), 3u);
  EXPECT_EQ(t.train.size(), 12u);  // 4 per class
  EXPECT_EQ(t.val.size(), 3u);     // round(0.2 * 5) = 1 per class
  EXPECT_EQ(t.test.size(), 15u);
  std::set<int64_t> all;
  for (auto* v : {&t.train, &t.val, &t.test}) all.insert(v->begin(), v->end());
  EXPECT_EQ(all.size(), 30u) << "train, val and test never share an image";
  for (size_t i = 0; i < t.train.size(); ++i) {
    EXPECT_EQ(s.split[t.train[i]], 0);
    EXPECT_EQ(s.labels[t.train[i]], t.class_ids[t.train_labels[i]]);
  }
  for (size_t i = 0; i < t.test.size(); ++i) EXPECT_EQ(s.split[t.test[i]], 1);
}

// These lists are what every machine must produce for these specs; a change
// here changes every stored task, so it needs a new schema version.
// tests/task/sampler_reference.py derives the same lists independently.
TEST(Sampler, PinnedIndexLists) {
  ImageSet s = synthetic();
  Task t = sample_task(spec(3, 0), s);
  EXPECT_EQ(t.train, (std::vector<int64_t>{24, 51, 7, 25, 32, 5}));
  EXPECT_EQ(t.val, (std::vector<int64_t>{15, 49, 38}));
  Task u = sample_task(spec(3, 7), s);
  EXPECT_EQ(u.train, (std::vector<int64_t>{51, 48, 52, 37, 5, 11}));
  TaskSpec sub = spec(2, 1);
  sub.classes = {"two", "zero"};
  sub.test_per_class = 2;
  Task v = sample_task(sub, s);
  EXPECT_EQ(v.class_ids, (std::vector<int64_t>{2, 0}));
  EXPECT_EQ(v.train, (std::vector<int64_t>{59, 20, 39, 33}));
  EXPECT_EQ(v.test, (std::vector<int64_t>{62, 68, 66, 72}));
}

TEST(Sampler, DeterministicAndSeedSensitive) {
  ImageSet s = synthetic();
  EXPECT_EQ(sample_task(spec(6, 3), s).train, sample_task(spec(6, 3), s).train);
  EXPECT_NE(sample_task(spec(6, 3), s).train, sample_task(spec(6, 4), s).train);
  // A class's sample does not depend on which other classes are in the task.
  TaskSpec two = spec(4, 9);
  two.classes = {"one", "two"};
  Task a = sample_task(spec(4, 9), s), b = sample_task(two, s);
  std::vector<int64_t> a_one, b_one;
  for (size_t i = 0; i < a.train.size(); ++i)
    if (a.class_ids[a.train_labels[i]] == 1) a_one.push_back(a.train[i]);
  for (size_t i = 0; i < b.train.size(); ++i)
    if (b.class_ids[b.train_labels[i]] == 1) b_one.push_back(b.train[i]);
  EXPECT_EQ(a_one, b_one);
}

TEST(Sampler, ClearErrors) {
  ImageSet s = synthetic();
  auto msg = [&](TaskSpec t) {
    try {
      sample_task(t, s);
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  TaskSpec t = spec(21);
  t.where = "exp.yaml:4:5";
  std::string m = msg(t);
  EXPECT_NE(m.find("task 't' (exp.yaml:4:5)"), std::string::npos) << m;
  EXPECT_NE(m.find("asks for 21 shots but class 'zero'"), std::string::npos) << m;
  EXPECT_NE(m.find("only 20 training images"), std::string::npos) << m;
  t = spec(3);
  t.classes = {"one"};
  EXPECT_NE(msg(t).find("at least 2 classes"), std::string::npos);
  t.classes = {"one", "three"};
  EXPECT_NE(msg(t).find("no class 'three' (classes: zero, one, two)"), std::string::npos) << msg(t);
  t.classes = {"one", "one"};
  EXPECT_NE(msg(t).find("listed twice"), std::string::npos);
  ImageSet one_class = s;
  one_class.class_names = {"zero", "one", "two"};
  for (auto& l : one_class.labels) l = 0;
  TaskSpec only = spec(3);
  only.classes = {"one", "two"};
  EXPECT_THROW(sample_task(only, one_class), DataError);  // classes one, two have no images now
}

TEST(Sampler, DropSmallClassesOnRequest) {
  ImageSet s = synthetic();
  for (size_t i = 0; i < s.size(); ++i)
    if (s.labels[i] == 1 && s.split[i] == 0 && i > 10) s.split[i] = 1;  // class 'one' keeps 4 training images
  TaskSpec t = spec(5);
  EXPECT_THROW(sample_task(t, s), DataError);
  t.drop_small_classes = true;
  Task x = sample_task(t, s);
  EXPECT_EQ(x.class_names, (std::vector<std::string>{"zero", "two"}));
  t.shots = 21;
  EXPECT_THROW(sample_task(t, s), DataError);  // nothing left
}

TEST(Sampler, ValidationNeverTakesEveryShot) {
  ImageSet s = synthetic();
  TaskSpec t = spec(1);
  t.val_fraction = 0.9;
  Task x = sample_task(t, s);
  EXPECT_EQ(x.train.size(), 3u);
  EXPECT_TRUE(x.val.empty());
}

// shots: all = every training image of each class, the validation split carved from each class's own count.
TEST(Sampler, AllShotsTakesEveryTrainingImage) {
  ImageSet s = synthetic();
  // Unequal classes: drop two training images of class "two" by relabelling them as test images.
  s.split[2] = static_cast<uint8_t>(Split::Test);
  s.split[5] = static_cast<uint8_t>(Split::Test);
  Task t = sample_task(spec(TaskSpec::kAllShots), s);
  EXPECT_EQ(t.train.size() + t.val.size(), 58u);  // 20 + 20 + 18
  EXPECT_EQ(t.val.size(), 4u + 4u + 4u);          // round(0.2 * 20) = 4, round(0.2 * 18) = 4
  std::set<int64_t> seen(t.train.begin(), t.train.end());
  seen.insert(t.val.begin(), t.val.end());
  EXPECT_EQ(seen.size(), 58u);
  for (int64_t i : seen) EXPECT_EQ(s.split[static_cast<size_t>(i)], static_cast<uint8_t>(Split::Train));
  ImageSet empty = synthetic();
  for (size_t i = 0; i < 60; ++i)
    if (empty.labels[i] == 1) empty.split[i] = static_cast<uint8_t>(Split::Test);
  try {
    sample_task(spec(TaskSpec::kAllShots), empty);
    FAIL() << "a class without training images";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("class 'one' of data set 'synthetic' has no training images"), std::string::npos)
        << e.what();
  }
}
