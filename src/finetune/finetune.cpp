#include "zoobench/finetune.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>

#include "zoobench/augment.h"
#include "zoobench/comm.h"
#include "zoobench/loader.h"

namespace zoobench {
namespace {

// Rows [lo, hi) of n that rank r of R takes: contiguous, sizes differ by at most one.
std::pair<int64_t, int64_t> share(int64_t n, int r, int R) {
  return {n * r / R, n * (r + 1) / R};
}

double accuracy(FineTunable& net, const at::Tensor& x, const at::Tensor& y, comm::Collective* group) {
  if (x.size(0) == 0) return 0.0;
  torch::NoGradGuard g;
  net.train(false);
  auto [lo, hi] = group ? share(x.size(0), group->rank(), group->size()) : std::make_pair(int64_t{0}, x.size(0));
  int64_t correct = 0;
  for (int64_t i = lo; i < hi; i += 256) {
    int64_t n = std::min<int64_t>(256, hi - i);
    correct += net.forward(x.narrow(0, i, n)).argmax(1).cpu().eq(y.narrow(0, i, n)).sum().item<int64_t>();
  }
  if (group && group->size() > 1) {
    std::vector<at::Tensor> c{torch::tensor({correct}, torch::kLong)};
    group->allreduce_sum(c);
    correct = c[0].item<int64_t>();
  }
  return static_cast<double>(correct) / static_cast<double>(x.size(0));
}

bool flips(const FinetuneConfig& cfg, const ImageSet& set) {
  return std::find(cfg.flip_domains.begin(), cfg.flip_domains.end(), set.name) != cfg.flip_domains.end();
}

}  // namespace

// New head, every layer trained: SGD with Nesterov momentum, step decay x0.1
// at finetune.decay_epochs (default 50 % and 83 % of the epochs), random-crop augmentation.
std::unique_ptr<FineTunable> finetune_train(Model& model, const at::Tensor& xtr, const at::Tensor& ytr, int64_t classes,
                                            const FinetuneConfig& cfg, double lr, int epochs, bool flip, uint64_t seed,
                                            comm::Collective* group) {
  const int64_t n = xtr.size(0);
  const bool parallel = group && group->size() > 1;
  std::unique_ptr<FineTunable> net = model.finetune_copy(classes, seed);
  if (parallel) {
    // Identical seeds give identical copies already; the broadcast makes it a fact.
    std::vector<at::Tensor> state = net->parameters();
    for (auto& b : net->buffers()) state.push_back(b);
    torch::NoGradGuard g;
    group->broadcast(state, 0);
    net->set_sync_batch_norm(group);
  }
  const at::Device device = model.device();
  at::Generator gen = at::detail::createCPUGenerator(seed + 1);
  torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(lr)
                                               .momentum(cfg.momentum)
                                               .nesterov(cfg.momentum > 0)
                                               .weight_decay(cfg.weight_decay));
  const at::Tensor images = xtr.to(at::kFloat).contiguous();
  at::Tensor x;  // the batch, assembled in place each step
  for (int e = 0; e < epochs; ++e) {
    const double factor = lr_factor(cfg, epochs, e);
    for (auto& g : opt.param_groups()) static_cast<torch::optim::SGDOptions&>(g.options()).lr(lr * factor);
    net->train(true);
    at::Tensor perm = at::randperm(n, gen, at::kLong);
    for (int64_t lo = 0; lo < n; lo += cfg.batch_size) {
      int64_t b = std::min<int64_t>(cfg.batch_size, n - lo);
      if (b < 2 && n >= 2) continue;  // BatchNorm needs two samples; only a ragged last batch is skipped
      at::Tensor idx = perm.narrow(0, lo, b);
      // Every rank draws the whole batch's augmentation from the same stream,
      // so the group's slices are exactly the batch one rank would draw.
      assemble_batch(x, images, idx, cfg.crop_padding, flip, gen);
      at::Tensor y = ytr.index_select(0, idx);
      opt.zero_grad();
      if (!parallel) {
        torch::nn::functional::cross_entropy(net->forward(x.to(device)), y.to(device)).backward();
      } else {
        auto [s0, s1] = share(b, group->rank(), group->size());
        at::Tensor xs = x.narrow(0, s0, s1 - s0).to(device), ys = y.narrow(0, s0, s1 - s0).to(device);
        // The batch mean as a sum over the group: each rank's share of the sum,
        // scaled by R because the gradient allreduce averages.
        namespace F = torch::nn::functional;
        at::Tensor loss = F::cross_entropy(net->forward(xs), ys, F::CrossEntropyFuncOptions().reduction(torch::kSum)) *
                          (static_cast<double>(group->size()) / static_cast<double>(b));
        loss.backward();
        std::vector<at::Tensor> grads;
        for (auto& p : net->parameters())
          grads.push_back(p.grad().defined() ? p.grad() : (p.mutable_grad() = torch::zeros_like(p)));
        group->allreduce_average(grads);
      }
      opt.step();
    }
  }
  net->set_sync_batch_norm(nullptr);
  return net;
}

at::Tensor probe_features(Model& model, const ImageSet& set, const Task& task, const FinetuneConfig& cfg, double lr,
                          int epochs, const std::vector<int64_t>& indices, uint64_t seed, comm::Collective* group) {
  const int ch = model.entry().in_channels;
  std::vector<int64_t> idx = task.train, labels = task.train_labels;
  idx.insert(idx.end(), task.val.begin(), task.val.end());
  labels.insert(labels.end(), task.val_labels.begin(), task.val_labels.end());
  std::unique_ptr<FineTunable> net = finetune_train(model, images_tensor(set, idx, ch), labels_tensor(labels),
                                                    static_cast<int64_t>(task.classes()), cfg, lr, epochs,
                                                    flips(cfg, set), seed, group);
  std::vector<at::Tensor> out;
  for (size_t lo = 0; lo < indices.size(); lo += 256) {
    std::vector<int64_t> b(indices.begin() + static_cast<ptrdiff_t>(lo),
                           indices.begin() + static_cast<ptrdiff_t>(std::min(indices.size(), lo + 256)));
    out.push_back(net->features(images_tensor(set, b, ch)).cpu());
  }
  return at::cat(out).to(at::kFloat).contiguous();
}

FinetuneRun finetune_one(Model& model, const ImageSet& set, const Task& task, const FinetuneConfig& cfg, double lr,
                         uint64_t seed, comm::Collective* group) {
  const int ch = model.entry().in_channels;
  auto t0 = std::chrono::steady_clock::now();
  at::Tensor xtr = images_tensor(set, task.train, ch), ytr = labels_tensor(task.train_labels);
  at::Tensor xva = images_tensor(set, task.val, ch), yva = labels_tensor(task.val_labels);
  at::Tensor xte = images_tensor(set, task.test, ch), yte = labels_tensor(task.test_labels);
  // The same seed for every lr: the grid differs in the lr alone.
  const int epochs = finetune_epochs(cfg, xtr.size(0));
  std::unique_ptr<FineTunable> net = finetune_train(model, xtr, ytr, static_cast<int64_t>(task.classes()), cfg, lr,
                                                    epochs, flips(cfg, set), seed, group);
  FinetuneRun r;
  r.lr = lr;
  r.epochs = epochs;
  r.train_acc = accuracy(*net, xtr, ytr, group);
  r.val_acc = xva.size(0) ? accuracy(*net, xva, yva, group) : r.train_acc;
  r.test_acc = accuracy(*net, xte, yte, group);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

CellFinetune choose_lr(std::vector<FinetuneRun> runs) {
  CellFinetune cell;
  cell.runs = std::move(runs);
  for (size_t k = 0; k < cell.runs.size(); ++k) {
    if (cell.runs[k].val_acc > cell.runs[cell.chosen].val_acc) cell.chosen = k;
    cell.oracle_test_acc = std::max(cell.oracle_test_acc, cell.runs[k].test_acc);
  }
  return cell;
}

CellFinetune finetune_cell(Model& model, const ImageSet& set, const Task& task, const FinetuneConfig& cfg, uint64_t seed) {
  std::vector<FinetuneRun> runs;
  for (double lr : cfg.lrs) runs.push_back(finetune_one(model, set, task, cfg, lr, seed));
  return choose_lr(std::move(runs));
}

}  // namespace zoobench
