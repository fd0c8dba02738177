// Small helpers shared by the plain (non-google-benchmark) executables of
// bench/: a strict "--key value" / "--key=value" parser, a wall clock,
// medians, and a builtin zoo entry with random weights saved to a folder and
// loaded back through the manifest (checksum and probe included), as the
// tests do.
#pragma once
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "zoo/nets.h"
#include "zoobench/error.h"
#include "zoobench/model.h"
#include "zoobench/selector.h"

namespace zbbench {

// Floating-point operations of one image's forward pass through zoobench's
// own architectures: 2 x the multiply-adds of every convolution and of the
// head. BatchNorm, ReLU and pooling are left out (memory-bound; about 4 % of
// the operations at width 4, under 0.2 % at width 128), so a rate from it is
// the convolutions' GEMM-equivalent rate.
inline double forward_flops(const zoobench::zoo::NetSpec& s, int64_t side) {
  auto conv = [](int64_t cin, int64_t cout, int64_t k, int64_t out_side) {
    return 2.0 * static_cast<double>(cin * cout * k * k * out_side * out_side);
  };
  double f = 0;
  int64_t in = s.in_channels, r = side;
  if (s.arch == "cnn") {
    for (int64_t k = 0; k < 3; ++k) {
      f += conv(in, s.width << k, 3, r);
      in = s.width << k;
      if (k < 2) r /= 2;  // max-pooling between the convolutions
    }
  } else {
    const int64_t n = s.arch == "resnet8" ? 1 : s.arch == "resnet14" ? 2 : 3;
    f += conv(in, s.width, 3, r);
    in = s.width;
    for (int64_t stage = 0; stage < 3; ++stage)
      for (int64_t b = 0; b < n; ++b) {
        const int64_t out = s.width << stage, stride = (stage > 0 && b == 0) ? 2 : 1;
        r /= stride;
        f += conv(in, out, 3, r) + conv(out, out, 3, r) + (stride != 1 || in != out ? conv(in, out, 1, r) : 0.0);
        in = out;
      }
  }
  return f + 2.0 * static_cast<double>(4 * s.width * s.head_classes.at(0));
}


inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Options: name -> (default, help). A flag has the default "false" and takes no value.
class Args {
 public:
  struct Opt {
    std::string value, help;
    bool flag = false;
  };
  Args& opt(const std::string& name, const std::string& def, const std::string& help) {
    opts_[name] = {def, help, false};
    order_.push_back(name);
    return *this;
  }
  Args& flag(const std::string& name, const std::string& help) {
    opts_[name] = {"false", help, true};
    order_.push_back(name);
    return *this;
  }
  // Returns false after printing usage for --help; throws UsageError on a bad option.
  bool parse(int argc, char** argv, const std::string& about, std::vector<std::string>* positional = nullptr) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "-h" || a == "--help") {
        std::printf("%s\n\noptions:\n", about.c_str());
        for (const auto& n : order_)
          std::printf("  --%-16s %s%s\n", n.c_str(), opts_[n].help.c_str(),
                      opts_[n].flag || opts_[n].value.empty() ? "" : (" (default " + opts_[n].value + ")").c_str());
        return false;
      }
      if (a.rfind("--", 0) != 0) {
        if (!positional) throw zoobench::UsageError("unexpected argument '" + a + "'");
        positional->push_back(a);
        continue;
      }
      std::string key = a.substr(2), value;
      bool has_value = false;
      if (auto eq = key.find('='); eq != std::string::npos) {
        value = key.substr(eq + 1);
        key = key.substr(0, eq);
        has_value = true;
      }
      auto it = opts_.find(key);
      if (it == opts_.end()) throw zoobench::UsageError("unknown option --" + key + " (see --help)");
      if (it->second.flag) {
        it->second.value = has_value ? value : "true";
      } else {
        if (!has_value) {
          if (i + 1 >= argc) throw zoobench::UsageError("--" + key + " needs a value");
          value = argv[++i];
        }
        it->second.value = value;
      }
    }
    return true;
  }
  std::string str(const std::string& n) const { return opts_.at(n).value; }
  long long i(const std::string& n) const {
    try {
      return std::stoll(str(n));
    } catch (const std::exception&) {
      throw zoobench::UsageError("--" + n + ": not an integer: '" + str(n) + "'");
    }
  }
  double d(const std::string& n) const {
    try {
      return std::stod(str(n));
    } catch (const std::exception&) {
      throw zoobench::UsageError("--" + n + ": not a number: '" + str(n) + "'");
    }
  }
  bool b(const std::string& n) const { return str(n) == "true" || str(n) == "1"; }

 private:
  std::map<std::string, Opt> opts_;
  std::vector<std::string> order_;
};

inline std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t lo = 0;
  while (lo <= s.size()) {
    size_t hi = s.find(sep, lo);
    if (hi == std::string::npos) hi = s.size();
    if (hi > lo) out.push_back(s.substr(lo, hi - lo));
    lo = hi + 1;
  }
  return out;
}

// One cell's selector inputs, random but with class structure: N samples of
// C classes (every class present), D features, Cs source classes, a K-column
// gradient sketch, Dp probe features, S = Cs source class means of 500 each.
// Features: class centres plus isotropic noise, or (low_rank) a 32-dimensional
// latent with a class component, mapped to D, plus a little noise, as real
// penultimate features are and as bench/python/selectors_baseline.py makes them.
inline zoobench::SelectorInputs synthetic_inputs(int64_t n, int64_t d, int64_t c, int64_t cs, int64_t k = 4096,
                                                 int64_t dp = 256, bool low_rank = false) {
  at::Generator g = at::detail::createCPUGenerator(0);
  zoobench::SelectorInputs in;
  in.classes = c;
  in.labels = at::arange(n, at::kLong).remainder(c);
  if (low_rank) {
    at::Tensor latent = at::randn({c, 32}, g, at::kDouble).index_select(0, in.labels) * 0.35 + at::randn({n, 32}, g, at::kDouble);
    in.features = at::mm(latent, at::randn({32, d}, g, at::kDouble)) + 0.3 * at::randn({n, d}, g, at::kDouble);
  } else {
    at::Tensor centres = at::randn({c, d}, g, at::kDouble);
    in.features = centres.index_select(0, in.labels) + 2.0 * at::randn({n, d}, g, at::kDouble);
  }
  at::Tensor map = at::randn({c, cs}, g, at::kDouble) * 2;
  in.source_probs = at::softmax(map.index_select(0, in.labels) + at::randn({n, cs}, g, at::kDouble), 1);
  in.grad_sketch = at::randn({n, k}, g, at::kDouble) + at::randn({c, k}, g, at::kDouble).index_select(0, in.labels);
  in.probe_features = at::randn({n, dp}, g, at::kDouble) + at::randn({c, dp}, g, at::kDouble).index_select(0, in.labels);
  in.source_class_means = at::randn({cs, d}, g, at::kDouble);
  in.source_class_counts = at::full({cs}, 500.0, at::kDouble);
  return in;
}

// A builtin entry with random weights (torch::manual_seed(seed)), saved as
// <dir>/w.pt with a manifest.yaml beside it. Every source class gets a name.
inline zoobench::Manifest save_builtin(const std::filesystem::path& dir, const std::string& arch, int width,
                                       int channels, int source_classes, double mean, double std, uint64_t seed) {
  std::filesystem::create_directories(dir);
  torch::manual_seed(seed);
  zoobench::zoo::Net net(zoobench::zoo::NetSpec{arch, width, channels, {source_classes}});
  net->eval();
  torch::save(net, (dir / "w.pt").string());
  zoobench::ManifestEntry e;
  e.name = "bench-" + arch + "-w" + std::to_string(width);
  e.arch = arch;
  e.width = width;
  e.weights = "w.pt";
  e.sha256 = zoobench::sha256_file(dir / "w.pt");
  e.in_channels = channels;
  e.mean.assign(static_cast<size_t>(channels), mean);
  e.std.assign(static_cast<size_t>(channels), std);
  e.head_classes = {source_classes};
  for (int c = 0; c < source_classes; ++c) e.source_classes.push_back("c" + std::to_string(c));
  zoobench::Manifest m;
  m.dir = dir;
  m.entries = {e};
  m.save(dir / "manifest.yaml");
  return m;
}

// Closed form of the trainable parameters of src/zoo/nets.cpp's single-domain
// nets plus a new Linear(4w, classes) head (bench/python/finetune_baseline.py's
// expected_params); -1 for an unknown architecture.
inline int64_t expected_params(const std::string& arch, int64_t w, int64_t cin, int64_t classes) {
  const int64_t head = 4 * w * classes + classes;
  if (arch == "cnn") {
    int64_t total = 0, i = cin;
    for (int k = 0; k < 3; ++k) {
      int64_t o = w << k;
      total += 9 * i * o + 2 * o;
      i = o;
    }
    return total + head;
  }
  const int64_t n = arch == "resnet8" ? 1 : arch == "resnet14" ? 2 : arch == "resnet20" ? 3 : 0;
  if (n == 0) return -1;
  int64_t total = 9 * cin * w + 2 * w;
  for (int s = 0; s < 3; ++s) {
    int64_t ws = w << s, i = s == 0 ? w : w << (s - 1);
    total += 9 * i * ws + 9 * ws * ws + 4 * ws;
    if (s > 0) total += i * ws + 2 * ws;
    total += (n - 1) * (18 * ws * ws + 4 * ws);
  }
  return total + head;
}

}  // namespace zbbench
