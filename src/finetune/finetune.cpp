#include "zoobench/finetune.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>

#include "zoobench/augment.h"
#include "zoobench/loader.h"

namespace zoobench {
namespace {

double accuracy(FineTunable& net, const at::Tensor& x, const at::Tensor& y) {
  if (x.size(0) == 0) return 0.0;
  torch::NoGradGuard g;
  net.train(false);
  int64_t correct = 0;
  for (int64_t i = 0; i < x.size(0); i += 256) {
    int64_t n = std::min<int64_t>(256, x.size(0) - i);
    correct += net.forward(x.narrow(0, i, n)).argmax(1).eq(y.narrow(0, i, n)).sum().item<int64_t>();
  }
  return static_cast<double>(correct) / static_cast<double>(x.size(0));
}

// New head, every layer trained: SGD with Nesterov momentum, step decay x0.1
// at 50 % and 83 % of the epochs, random-crop augmentation.
std::unique_ptr<FineTunable> train_copy(Model& model, const at::Tensor& xtr, const at::Tensor& ytr, int64_t classes,
                                        const FinetuneConfig& cfg, double lr, int epochs, bool flip, uint64_t seed) {
  const int64_t n = xtr.size(0);
  const int e1 = epochs / 2, e2 = static_cast<int>(epochs * 0.83);
  std::unique_ptr<FineTunable> net = model.finetune_copy(classes, seed);
  at::Generator gen = at::detail::createCPUGenerator(seed + 1);
  torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(lr)
                                               .momentum(cfg.momentum)
                                               .nesterov(cfg.momentum > 0)
                                               .weight_decay(cfg.weight_decay));
  for (int e = 0; e < epochs; ++e) {
    double factor = e >= e2 ? 0.01 : e >= e1 ? 0.1 : 1.0;
    for (auto& g : opt.param_groups()) static_cast<torch::optim::SGDOptions&>(g.options()).lr(lr * factor);
    net->train(true);
    at::Tensor perm = at::randperm(n, gen, at::kLong);
    for (int64_t lo = 0; lo < n; lo += cfg.batch_size) {
      int64_t b = std::min<int64_t>(cfg.batch_size, n - lo);
      if (b < 2 && n >= 2) continue;  // BatchNorm needs two samples; only a ragged last batch is skipped
      at::Tensor idx = perm.narrow(0, lo, b);
      at::Tensor x = augment(xtr.index_select(0, idx), cfg.crop_padding, flip, gen);
      opt.zero_grad();
      torch::nn::functional::cross_entropy(net->forward(x), ytr.index_select(0, idx)).backward();
      opt.step();
    }
  }
  return net;
}

bool flips(const FinetuneConfig& cfg, const ImageSet& set) {
  return std::find(cfg.flip_domains.begin(), cfg.flip_domains.end(), set.name) != cfg.flip_domains.end();
}

}  // namespace

at::Tensor probe_features(Model& model, const ImageSet& set, const Task& task, const FinetuneConfig& cfg, double lr,
                          int epochs, const std::vector<int64_t>& indices, uint64_t seed) {
  const int ch = model.entry().in_channels;
  std::vector<int64_t> idx = task.train, labels = task.train_labels;
  idx.insert(idx.end(), task.val.begin(), task.val.end());
  labels.insert(labels.end(), task.val_labels.begin(), task.val_labels.end());
  std::unique_ptr<FineTunable> net = train_copy(model, images_tensor(set, idx, ch), labels_tensor(labels),
                                                static_cast<int64_t>(task.classes()), cfg, lr, epochs, flips(cfg, set), seed);
  std::vector<at::Tensor> out;
  for (size_t lo = 0; lo < indices.size(); lo += 256) {
    std::vector<int64_t> b(indices.begin() + static_cast<ptrdiff_t>(lo),
                           indices.begin() + static_cast<ptrdiff_t>(std::min(indices.size(), lo + 256)));
    out.push_back(net->features(images_tensor(set, b, ch)));
  }
  return at::cat(out).to(at::kFloat).contiguous();
}

CellFinetune finetune_cell(Model& model, const ImageSet& set, const Task& task, const FinetuneConfig& cfg, uint64_t seed) {
  const int ch = model.entry().in_channels;
  at::Tensor xtr = images_tensor(set, task.train, ch), ytr = labels_tensor(task.train_labels);
  at::Tensor xva = images_tensor(set, task.val, ch), yva = labels_tensor(task.val_labels);
  at::Tensor xte = images_tensor(set, task.test, ch), yte = labels_tensor(task.test_labels);
  const bool flip = flips(cfg, set);

  CellFinetune cell;
  for (double lr : cfg.lrs) {
    auto t0 = std::chrono::steady_clock::now();
    // The same seed for every lr: the grid differs in the lr alone.
    std::unique_ptr<FineTunable> net = train_copy(model, xtr, ytr, static_cast<int64_t>(task.classes()), cfg, lr,
                                                  cfg.epochs, flip, seed);
    FinetuneRun r;
    r.lr = lr;
    r.epochs = cfg.epochs;
    r.train_acc = accuracy(*net, xtr, ytr);
    r.val_acc = xva.size(0) ? accuracy(*net, xva, yva) : r.train_acc;
    r.test_acc = accuracy(*net, xte, yte);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    cell.runs.push_back(r);
  }
  for (size_t k = 0; k < cell.runs.size(); ++k) {
    if (cell.runs[k].val_acc > cell.runs[cell.chosen].val_acc) cell.chosen = k;
    cell.oracle_test_acc = std::max(cell.oracle_test_acc, cell.runs[k].test_acc);
  }
  return cell;
}

}  // namespace zoobench
