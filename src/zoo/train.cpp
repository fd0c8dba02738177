#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <map>
#include <set>

#include "nets.h"
#include "zoobench/augment.h"
#include "zoobench/dataset.h"
#include "zoobench/error.h"
#include "zoobench/loader.h"
#include "zoobench/progress.h"
#include "zoobench/random.h"
#include "zoobench/zoo.h"

namespace zoobench {
namespace fs = std::filesystem;

fs::path manifest_path(const Config& c) {
  return c.zoo.manifest.empty() ? fs::path(c.zoo.dir) / "manifest.yaml" : fs::path(c.zoo.manifest);
}

namespace {

// One source domain prepared for training: train/test tensors and labels.
struct Domain {
  std::string name;
  std::vector<std::string> classes;
  at::Tensor x_train, y_train, x_test, y_test;
  bool flip = false;
};

Domain prepare(const std::string& domain, const std::vector<std::string>& keep, const fs::path& data_dir,
               int channels, int max_images, uint64_t seed, const std::vector<std::string>& flip_domains,
               const std::string& who) {
  ImageSet set = read_packed(packed_path(data_dir, domain));
  std::vector<int64_t> map(set.class_names.size(), -1);
  Domain d;
  d.name = domain;
  if (keep.empty()) {
    for (size_t c = 0; c < map.size(); ++c) map[c] = static_cast<int64_t>(c);
    d.classes = set.class_names;
  } else {
    for (const auto& name : keep) {
      auto it = std::find(set.class_names.begin(), set.class_names.end(), name);
      if (it == set.class_names.end()) throw ConfigError(who + ": domain '" + domain + "' has no class '" + name + "'");
      map[it - set.class_names.begin()] = static_cast<int64_t>(d.classes.size());
      d.classes.push_back(name);
    }
  }
  std::vector<int64_t> tr, te, ytr, yte;
  for (size_t i = 0; i < set.size(); ++i) {
    if (map[set.labels[i]] < 0) continue;
    (set.split[i] ? te : tr).push_back(static_cast<int64_t>(i));
  }
  Rng rng(derive_seed(seed, "zoo/" + domain));
  if (max_images > 0 && tr.size() > static_cast<size_t>(max_images)) {
    rng.shuffle(tr);
    tr.resize(static_cast<size_t>(max_images));
    std::sort(tr.begin(), tr.end());
  }
  if (te.size() > 2000) {  // source accuracy on a fixed seeded subset keeps evaluation cheap
    rng.shuffle(te);
    te.resize(2000);
    std::sort(te.begin(), te.end());
  }
  for (auto i : tr) ytr.push_back(map[set.labels[i]]);
  for (auto i : te) yte.push_back(map[set.labels[i]]);
  d.x_train = images_tensor(set, tr, channels);
  d.x_test = images_tensor(set, te, channels);
  d.y_train = labels_tensor(ytr);
  d.y_test = labels_tensor(yte);
  d.flip = std::find(flip_domains.begin(), flip_domains.end(), domain) != flip_domains.end();
  return d;
}

// What makes a trained model what it is; equal identity => no retraining.
// Built from the packed files' headers, so an up-to-date model costs no image reads.
std::string identity(const ModelSpec& s, const ZooTrainConfig& t, int epochs, const std::vector<PackedInfo>& infos) {
  std::string id = "arch: " + s.arch + "\nwidth: " + std::to_string(s.width) + "\nepochs: " + std::to_string(epochs) +
                   "\nbatch_size: " + std::to_string(t.batch_size) + "\nlr: " + std::to_string(t.lr) +
                   "\nweight_decay: " + std::to_string(t.weight_decay) + "\nmax_images: " + std::to_string(t.max_images) +
                   "\nseed: " + std::to_string(t.seed) + "\ndata:\n";
  for (const auto& info : infos) {
    id += "  - " + info.name + " (" + info.prov.package + " " + info.prov.version + ")";
    if (!s.classes.empty()) {
      id += " classes";
      for (const auto& c : s.classes) id += " " + c;
    }
    id += "\n";
  }
  return id;
}

double accuracy(zoo::Net& net, const at::Tensor& x, const at::Tensor& y, const at::Tensor& mean, const at::Tensor& sd) {
  torch::NoGradGuard g;
  net->eval();
  int64_t correct = 0;
  for (int64_t i = 0; i < x.size(0); i += 512) {
    int64_t n = std::min<int64_t>(512, x.size(0) - i);
    at::Tensor pred = net->forward((x.narrow(0, i, n) - mean) / sd).argmax(1);
    correct += pred.eq(y.narrow(0, i, n)).sum().item<int64_t>();
  }
  return x.size(0) ? static_cast<double>(correct) / static_cast<double>(x.size(0)) : 0.0;
}

std::vector<std::string> entry_names(const ModelSpec& s) {
  if (s.kind != ModelSpec::Kind::MultiDomain) return {s.name};
  std::vector<std::string> v;
  for (const auto& d : s.domains) v.push_back(s.name + "/" + d);
  return v;
}

// Trains one ModelSpec and writes <dir>/<name>.pt and its manifest fragment.
ZooJobResult train_one(const ModelSpec& spec, const Config& c, const fs::path& data_dir, const fs::path& dir,
                       const std::vector<Domain>& domains, const std::string& ident, bool quiet) {
  ZooJobResult res;
  res.name = spec.name;
  res.trained = true;
  const auto& t = c.zoo.train;
  const bool multi = spec.kind == ModelSpec::Kind::MultiDomain;
  const bool generic = spec.kind == ModelSpec::Kind::Generic;
  const int channels = static_cast<int>(domains.front().x_train.size(1));
  const int epochs = spec.epochs > 0 ? spec.epochs : t.epochs;

  // Generic: one head over the union of classes (labels offset per domain).
  std::vector<int64_t> heads;
  std::vector<int64_t> offset(domains.size(), 0);
  if (multi) {
    for (const auto& d : domains) heads.push_back(static_cast<int64_t>(d.classes.size()));
  } else {
    int64_t total = 0;
    for (size_t k = 0; k < domains.size(); ++k) offset[k] = total, total += static_cast<int64_t>(domains[k].classes.size());
    heads.push_back(total);
  }
  std::vector<at::Tensor> xs, ys;
  for (size_t k = 0; k < domains.size(); ++k) xs.push_back(domains[k].x_train), ys.push_back(domains[k].y_train + offset[k]);
  at::Tensor all = at::cat(xs);
  at::Tensor mean = all.mean({0, 2, 3}).view({1, channels, 1, 1});
  at::Tensor sd = all.std({0, 2, 3}).clamp_min(1e-3).view({1, channels, 1, 1});
  // Multi-BN trains on one domain per batch; the others pool their images.
  std::vector<at::Tensor> bx = multi ? xs : std::vector<at::Tensor>{all};
  std::vector<at::Tensor> by = multi ? ys : std::vector<at::Tensor>{at::cat(ys)};
  for (auto& x : bx) x = x.to(at::kFloat).contiguous();  // what assemble_batch reads
  std::vector<bool> flips;
  for (size_t k = 0; k < bx.size(); ++k) flips.push_back(multi || domains.size() == 1 ? domains[k].flip : false);

  const uint64_t seed = derive_seed(t.seed, "zoo-train/" + spec.name);
  torch::manual_seed(seed);
  zoo::Net net(zoo::NetSpec{spec.arch, spec.width, channels, heads});
  at::Generator gen = at::detail::createCPUGenerator(seed + 1);
  torch::optim::SGD opt(net->parameters(),
                        torch::optim::SGDOptions(t.lr).momentum(0.9).nesterov(true).weight_decay(t.weight_decay));
  std::vector<int64_t> batches_per;
  int64_t steps_per_epoch = 0;
  for (auto& x : bx) batches_per.push_back((x.size(0) + t.batch_size - 1) / t.batch_size), steps_per_epoch += batches_per.back();
  const int64_t total_steps = steps_per_epoch * epochs;
  Progress progress("zoo " + spec.name, static_cast<size_t>(epochs), quiet);
  int64_t step = 0;
  at::Tensor x;  // the batch, reused
  for (int e = 0; e < epochs; ++e) {
    net->train();
    std::vector<at::Tensor> perms;
    for (auto& x : bx) perms.push_back(at::randperm(x.size(0), gen, at::kLong));
    // Round-robin over the groups' batches so Multi-BN sees every domain throughout.
    std::vector<int64_t> next(bx.size(), 0);
    for (int64_t s = 0; s < steps_per_epoch; ++s) {
      size_t k = static_cast<size_t>(s % static_cast<int64_t>(bx.size()));
      for (size_t tries = 0; next[k] >= batches_per[k] && tries < bx.size(); ++tries) k = (k + 1) % bx.size();
      int64_t b = next[k]++;
      int64_t lo = b * t.batch_size, n = std::min<int64_t>(t.batch_size, bx[k].size(0) - lo);
      at::Tensor idx = perms[k].narrow(0, lo, n);
      if (multi) net->set_domain(static_cast<int64_t>(k));
      assemble_batch(x, bx[k], idx, 2, flips[k], gen);
      double lr = t.lr * 0.5 * (1 + std::cos(M_PI * static_cast<double>(step++) / static_cast<double>(total_steps)));
      for (auto& g : opt.param_groups()) static_cast<torch::optim::SGDOptions&>(g.options()).lr(lr);
      opt.zero_grad();
      at::Tensor loss = torch::nn::functional::cross_entropy(net->forward((x - mean) / sd), by[k].index_select(0, idx));
      loss.backward();
      opt.step();
    }
    progress.step("epoch " + std::to_string(e + 1));
  }
  progress.finish();

  fs::path weights = dir / (spec.name + ".pt");
  fs::path tmp = dir / (spec.name + ".pt.tmp");
  torch::save(net, tmp.string());
  fs::rename(tmp, weights);
  std::string sha = sha256_file(weights);

  Manifest frag;
  auto names = entry_names(spec);
  std::vector<double> mean_v, sd_v;
  for (int ch = 0; ch < channels; ++ch) mean_v.push_back(mean.flatten()[ch].item<double>()), sd_v.push_back(sd.flatten()[ch].item<double>());
  for (size_t v = 0; v < names.size(); ++v) {
    ManifestEntry en;
    en.name = names[v];
    en.format = "builtin";
    en.kind = multi ? "multi_domain" : generic ? "generic" : "expert";
    en.arch = spec.arch;
    en.width = spec.width;
    en.weights = weights.filename().string();
    en.sha256 = sha;
    en.in_channels = channels;
    en.mean = mean_v;
    en.std = sd_v;
    en.head_classes = heads;
    en.domain_index = static_cast<int>(v);
    en.train_config = ident;
    double acc;
    if (multi) {
      en.source_domains = {domains[v].name};
      en.source_classes = domains[v].classes;
      net->set_domain(static_cast<int64_t>(v));
      acc = accuracy(net, domains[v].x_test, domains[v].y_test, mean, sd);
    } else {
      std::vector<at::Tensor> tx, ty;
      for (size_t k = 0; k < domains.size(); ++k) {
        en.source_domains.push_back(domains[k].name);
        for (const auto& cl : domains[k].classes) en.source_classes.push_back(generic ? domains[k].name + ":" + cl : cl);
        tx.push_back(domains[k].x_test), ty.push_back(domains[k].y_test + offset[k]);
      }
      acc = accuracy(net, at::cat(tx), at::cat(ty), mean, sd);
    }
    en.source_test_acc = acc;
    res.accuracies.emplace_back(en.name, acc);
    frag.entries.push_back(std::move(en));
  }
  frag.save(dir / (spec.name + ".manifest.yaml"));
  res.seconds = progress.elapsed();
  return res;
}

}  // namespace

std::vector<ZooJobResult> train_zoo(const Config& c, const fs::path& data_dir, int rank, int world,
                                    const std::function<void()>& barrier, bool force, bool quiet) {
  if (!c.zoo.manifest.empty()) return {};  // an external zoo: nothing to train
  fs::path dir = c.zoo.dir;
  fs::create_directories(dir);
  std::vector<ZooJobResult> results;
  for (size_t j = 0; j < c.zoo.models.size(); ++j) {
    if (static_cast<int>(j % static_cast<size_t>(world)) != rank) continue;
    const ModelSpec& spec = c.zoo.models[j];
    const std::string who = c.source + ": zoo model '" + spec.name + "'";
    std::vector<PackedInfo> infos;
    for (const auto& d : spec.domains) infos.push_back(read_packed_info(packed_path(data_dir, d)));
    const int epochs = spec.epochs > 0 ? spec.epochs : c.zoo.train.epochs;
    std::string ident = identity(spec, c.zoo.train, epochs, infos);
    fs::path frag_path = dir / (spec.name + ".manifest.yaml");
    if (!force && fs::exists(frag_path)) {
      Manifest old = Manifest::load(frag_path);
      bool same = !old.entries.empty() && old.entries.front().train_config == ident;
      if (same) {
        fs::path w = dir / old.entries.front().weights;
        if (fs::exists(w)) {
          if (sha256_file(w) != old.entries.front().sha256)
            throw DataError("zoo entry '" + old.entries.front().name + "': SHA-256 of '" + w.string() +
                            "' differs from its manifest (changed or corrupt; `zoobench zoo train --force` retrains)");
          ZooJobResult kept{spec.name, false, 0, {}};
          for (const auto& e : old.entries) kept.accuracies.emplace_back(e.name, e.source_test_acc);
          results.push_back(kept);
          continue;
        }
      }
    }
    // The widest source decides the input channels of a shared network.
    int channels = 1;
    for (const auto& info : infos) channels = std::max(channels, info.channels);
    std::vector<Domain> domains;
    for (const auto& d : spec.domains)
      domains.push_back(prepare(d, spec.classes, data_dir, channels, c.zoo.train.max_images, c.zoo.train.seed,
                                c.finetune.flip_domains, who));
    results.push_back(train_one(spec, c, data_dir, dir, domains, ident, quiet));
  }
  barrier();
  if (rank == 0) {
    Manifest all;
    all.dir = dir;
    for (const auto& spec : c.zoo.models) {
      Manifest frag = Manifest::load(dir / (spec.name + ".manifest.yaml"));
      all.entries.insert(all.entries.end(), frag.entries.begin(), frag.entries.end());
    }
    all.save(dir / "manifest.yaml");
  }
  barrier();
  return results;
}

}  // namespace zoobench

#include <cstdio>

#include "zoobench/progress.h"

namespace zoobench {

std::string zoo_report(const std::vector<ZooJobResult>& jobs, const std::string& prefix, const std::string& kept) {
  std::string out;
  for (const auto& j : jobs)
    for (const auto& [name, acc] : j.accuracies) {
      char line[256];
      std::snprintf(line, sizeof line, "%s%-28s source test accuracy %5.1f%% (%s)\n", prefix.c_str(), name.c_str(),
                    100 * acc, j.trained ? ("trained in " + format_seconds(j.seconds)).c_str() : kept.c_str());
      out += line;
    }
  return out;
}

}  // namespace zoobench
