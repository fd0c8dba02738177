#!/usr/bin/env bash
# Extraction against the machine's fp32 GEMM rate, in one run: the GEMM rate
# (build/bench/bench_selectors BM_Sgemm: 1024^2 and 2048^2 products, 2 n^3
# operations each, warm-up and a checked entry), then feature extraction of
# zoobench's own architectures at batch 256 (build/bench/bench_finetune:
# images_tensor + features_and_logits, as extract_cell; medians of 3 timed
# passes after a warm-up, alternating with two baselines of the same weights:
# the folded network on oneDNN's convolutions where zoobench runs its lane
# kernels (zoo::FoldedNet), and the network unfolded, each BatchNorm a pass of
# its own), then the GEMM rate again. An architecture's rate
# is images/s x its forward operations per image (2 x the multiply-adds of
# its convolutions and head, zbbench::forward_flops); the roofline is the
# better of the two GEMM runs' 2048^2 rates.
#   bench/extraction_roofline.sh [ARCH WIDTH ...]   (default: the mini zoo's
#   ResNets and CNN, resnet20 w16, and resnet8 w128, bench_selectors' cell model)
# Environment: THREADS (default 2), N (default 1024), CHANNELS (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/blas_env.sh
threads=${THREADS:-2}
n=${N:-1024}
channels=${CHANNELS:-1}
[ $# -gt 0 ] || set -- resnet8 4 resnet8 8 resnet8 12 resnet14 4 resnet20 4 cnn 8 resnet20 16 resnet8 128
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
gemm() {
  ZOOBENCH_THREADS=$threads build/bench/bench_selectors --benchmark_filter='BM_Sgemm' --benchmark_format=json 2>/dev/null
}
gemm >"$out/gemm1.json"
while [ $# -gt 0 ]; do
  build/bench/bench_finetune --arch "$1" --width "$2" --channels "$channels" --classes 10 --n "$n" --batch 32 \
    --epochs 1 --threads "$threads" --repeats 3 --seed 1 --json 2>/dev/null | tail -1 >>"$out/extract.jsonl"
  shift 2
done
gemm >"$out/gemm2.json"
/usr/bin/python3 - "$out" <<'EOF'
import json, sys
d = sys.argv[1]
rates = {}
for f in ("gemm1", "gemm2"):
    for b in json.load(open(f"{d}/{f}.json"))["benchmarks"]:
        rates.setdefault(b["name"].split("/")[1], []).append(b["GFLOP/s"])
roof = max(rates["2048"])
print(f"fp32 GEMM (GFLOP/s): 1024^2 {', '.join(f'{r:.0f}' for r in rates['1024'])}; "
      f"2048^2 {', '.join(f'{r:.0f}' for r in rates['2048'])} (before, after); roofline {roof:.0f}")
print("| architecture | MFLOP/image | images/s | GFLOP/s | of the GEMM rate | "
      "folded on oneDNN: images/s | of the GEMM rate | unfolded: images/s | of the GEMM rate | "
      "speed-up over folded oneDNN | over unfolded |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for line in open(f"{d}/extract.jsonl"):
    r = json.loads(line)
    g = r["extract_gflop_per_s_median"]
    flop = r["forward_gflop_per_image"]
    o = r["extract_onednn_images_per_s_median"]
    u = r["extract_unfolded_images_per_s_median"]
    e = r["extract_images_per_s_median"]
    print(f"| {r['arch']} w{r['width']} | {flop * 1e3:.2f} | {e:,.0f} | {g:.1f} | {100 * g / roof:.0f} % | "
          f"{o:,.0f} | {100 * o * flop / roof:.0f} % | {u:,.0f} | {100 * u * flop / roof:.0f} % | "
          f"{e / o:.2f}x | {e / u:.2f}x |")
EOF
