// One score at scale in a process of its own, so that the peak resident
// memory it reports is that score's (bench/memory_at_scale.sh runs them all):
//   build/bench/bench_memory --selector parc [--n 50000] [--d 512] [--classes 100] [--limit-mb 8192]
// Only the arrays the selector reads are made (bench_common.h's synthetic
// cell with low-rank features, as real ones are: Cs = 100 source classes, a
// K = 4096 gradient sketch, Dp = D probe features). Then memory_refusal decides as a run would: a refused score
// reports the reason and allocates nothing more. One JSON line: the estimate
// (Selector::memory_bytes), the verdict, the seconds of the score, the
// process's resident memory with the inputs made (the high-water mark
// restarted there) and its peak at the end, and the
// value (finite, as the check beside the timing).
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>

#include "bench_common.h"
#include "zoobench/process.h"
#include "zoobench/selector.h"
#include "zoobench/version.h"

using namespace zoobench;

int main(int argc, char** argv) try {
  zbbench::Args args;
  args.opt("selector", "", "the registered name of the score")
      .opt("n", "50000", "samples")
      .opt("d", "512", "feature dimensions (and the probe's)")
      .opt("classes", "100", "target classes")
      .opt("limit-mb", "8192", "extract.score_memory_mb")
      .opt("threads", "2", "libtorch threads");
  if (!args.parse(argc, argv, "bench_memory: one score's seconds and peak RSS at scale")) return 0;
  choose_blas_kernels(argv);
  tune_allocator();
  at::set_num_threads(static_cast<int>(args.i("threads")));
  const Selector& s = selector(args.str("selector"));
  const int64_t n = args.i("n"), d = args.i("d"), c = args.i("classes");
  SelectorInputs all = zbbench::synthetic_inputs(n, d, c, 100, 4096, d, /*low_rank=*/true);
  SelectorInputs in;  // what the score reads, and nothing else
  in.classes = all.classes;
  in.labels = all.labels;
  in.features = all.features;
  if (s.needs() & kNeedSourceProbs) in.source_probs = all.source_probs;
  if (s.needs() & kNeedGradSketch) in.grad_sketch = all.grad_sketch;
  if (s.needs() & kNeedProbeFeatures) in.probe_features = all.probe_features;
  if (s.needs() & kNeedSourceDomain) in.source_class_means = all.source_class_means, in.source_class_counts = all.source_class_counts;
  all = SelectorInputs{};
  reset_peak_rss();  // the arrays made and dropped above no longer count: from here, what is live
  const int64_t inputs_rss = peak_rss_bytes();
  nlohmann::json j = {{"selector", s.name()}, {"n", n}, {"d", d}, {"classes", c}, {"limit_mb", args.i("limit-mb")},
                      {"estimate_bytes", s.memory_bytes(n, d, in.probe_features.defined() ? d : 0)},
                      {"inputs_peak_rss_bytes", inputs_rss}, {"threads", at::get_num_threads()}, {"version", ZOOBENCH_VERSION}, {"git", ZOOBENCH_GIT_SHA}};
  const std::string why = memory_refusal(s, in, args.i("limit-mb"));
  if (!why.empty()) {
    j["verdict"] = "refused";
    j["why"] = why;
  } else {
    const double t0 = zbbench::now_s();
    const double v = s.score(in);
    j["seconds"] = zbbench::now_s() - t0;
    j["value"] = v;
    j["verdict"] = std::isfinite(v) ? "scored" : "non-finite";
  }
  j["peak_rss_bytes"] = peak_rss_bytes();
  std::printf("%s\n", j.dump().c_str());
  return j["verdict"] == "non-finite" ? 1 : 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_memory: error: %s\n", e.what());
  return 1;
}
