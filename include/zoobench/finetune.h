// Ground truth: fine-tune a model on a task for every learning rate of the
// grid; the lr with the best validation accuracy gives the test accuracy.
#pragma once
#include <vector>

#include "zoobench/config.h"
#include "zoobench/dataset.h"
#include "zoobench/model.h"
#include "zoobench/task.h"

namespace zoobench {

struct FinetuneRun {
  double lr = 0;
  int epochs = 0;
  double train_acc = 0, val_acc = 0, test_acc = 0;
  double seconds = 0;
};

struct CellFinetune {
  std::vector<FinetuneRun> runs;  // one per lr, in grid order
  size_t chosen = 0;              // by validation accuracy (training accuracy when val is empty); ties: first
  double oracle_test_acc = 0;     // the best test accuracy over the grid (the seed paper's choice)
  const FinetuneRun& best() const { return runs[chosen]; }
};

// New linear head, every layer trained: SGD with Nesterov momentum, step
// decay x0.1 at 50% and 83% of the epochs, random-crop augmentation (flips
// only for the configured domains). Deterministic for a seed at one thread.
CellFinetune finetune_cell(Model& model, const ImageSet& set, const Task& task, const FinetuneConfig& cfg, uint64_t seed);

// One learning rate of the grid. With a group of R ranks, the fine-tune is
// data-parallel: every rank draws the same batches and augmentations, takes
// its 1/R of each batch, BatchNorm statistics and gradients are combined over
// the group, so R ranks compute what one would (to rounding). Every rank of
// the group must call it; each returns the same run.
FinetuneRun finetune_one(Model& model, const ImageSet& set, const Task& task, const FinetuneConfig& cfg, double lr,
                         uint64_t seed, comm::Collective* group = nullptr);
// The chosen run (best validation accuracy, ties: first) and the oracle.
CellFinetune choose_lr(std::vector<FinetuneRun> runs);

// The training loop itself on tensors (for tests and benchmarks).
std::unique_ptr<FineTunable> finetune_train(Model& model, const at::Tensor& xtr, const at::Tensor& ytr, int64_t classes,
                                            const FinetuneConfig& cfg, double lr, int epochs, bool flip, uint64_t seed,
                                            comm::Collective* group = nullptr);

// The probe model of RSA and DDS: `model` fine-tuned briefly (one lr, a few
// epochs, the same recipe) on the task's training shots (train and
// validation); returns its features of the data-set images `indices`
// (N x D float32).
at::Tensor probe_features(Model& model, const ImageSet& set, const Task& task, const FinetuneConfig& cfg, double lr,
                          int epochs, const std::vector<int64_t>& indices, uint64_t seed,
                          comm::Collective* group = nullptr);

}  // namespace zoobench
