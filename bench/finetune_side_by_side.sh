#!/usr/bin/env bash
# zoobench (C++) against PyTorch-Python: fine-tuning and extraction
# throughput on the same settings, runs alternating, medians of the repeats.
#
#   bench/finetune_side_by_side.sh [ARCH WIDTH ...]     (default: resnet8 8 resnet20 16)
#
# For every (arch, width) and thread count, REPEATS times: one run of
# bench_finetune, then one of bench/python/finetune_baseline.py, each with
# --repeats 1 (its own warm-up epoch / pass first), the same flags and a JSON
# line. The table shows the medians over the repeats; ratio = C++ / Python
# (> 1: zoobench is faster), and for training also the ratio of each C++ run
# to the Python run next to it in time: their median, least and greatest.
#
# Environment: BENCH (default build-bench/bench/bench_finetune), PYTHON
# (default /usr/bin/python3), THREADS (default "1 2"), REPEATS (default 3),
# N (default 512), BATCH (default 32), EPOCHS (timed epochs, default 2),
# CHANNELS (default 1), CLASSES (default 10), TUNE_MALLOC (default 0; 1:
# both sides run with GLIBC_TUNABLES raising glibc's mmap and trim
# thresholds, so freed tensors stay in the heap instead of being unmapped and
# faulted in again: on this VM page faults otherwise dominate, e.g. resnet8
# w8 training ~3x and extraction ~7x slower, for C++ and Python alike),
# MODULES (default 1: also run bench_finetune with ZOOBENCH_LANE_CONV=0, its
# training on libtorch's own convolutions, as a third column).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/bench/blas_env.sh"
BENCH=${BENCH:-$REPO/build-bench/bench/bench_finetune}
PYTHON=${PYTHON:-/usr/bin/python3}
THREADS=${THREADS:-1 2}
MODULES=${MODULES:-1}
REPEATS=${REPEATS:-3}
N=${N:-512}
BATCH=${BATCH:-32}
EPOCHS=${EPOCHS:-2}
CHANNELS=${CHANNELS:-1}
CLASSES=${CLASSES:-10}
TUNE_MALLOC=${TUNE_MALLOC:-0}
if [ "$TUNE_MALLOC" = 1 ]; then
  export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295
fi
[ -x "$BENCH" ] || { echo "finetune_side_by_side: no $BENCH (build the bench_finetune target, or set BENCH)" >&2; exit 2; }
if [ $# -eq 0 ]; then set -- resnet8 8 resnet20 16; fi
[ $(($# % 2)) -eq 0 ] || { echo "usage: $0 [ARCH WIDTH ...]" >&2; exit 2; }

LINES=$(mktemp /tmp/zoobench-ft-sbs.XXXXXX)
trap 'rm -f "$LINES"' EXIT
while [ $# -gt 0 ]; do
  arch=$1 width=$2
  shift 2
  for t in $THREADS; do
    flags=(--arch "$arch" --width "$width" --channels "$CHANNELS" --classes "$CLASSES" --n "$N" --batch "$BATCH"
           --epochs "$EPOCHS" --threads "$t" --repeats 1 --seed 1 --json)
    for r in $(seq 1 "$REPEATS"); do
      echo "  $arch w$width threads $t: repeat $r/$REPEATS" >&2
      "$BENCH" "${flags[@]}" | tail -1 >> "$LINES"
      if [ "$MODULES" = 1 ]; then
        ZOOBENCH_LANE_CONV=0 "$BENCH" "${flags[@]}" | tail -1 | sed 's/"zoobench-cpp"/"zoobench-modules"/' >> "$LINES"
      fi
      "$PYTHON" "$REPO/bench/python/finetune_baseline.py" "${flags[@]}" | tail -1 >> "$LINES"
    done
  done
done

"$PYTHON" - "$LINES" <<'EOF'
import json, os, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
keys = []
for r in runs:
    k = (r["arch"], r["width"], r["threads"])
    if k not in keys:
        keys.append(k)
def med(impl, k, field):
    v = [r[field] for r in runs if r["impl"] == impl and (r["arch"], r["width"], r["threads"]) == k]
    return statistics.median(v), len(v)
r0 = runs[0]
print(f"n = {r0['n']}, batch {r0['batch']}, extract batch {r0['extract_batch']}, {r0['epochs']} timed epochs, "
      f"channels {r0['channels']}, classes {r0['classes']}; medians; ratio = C++ / Python")
print(f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '(unset: glibc malloc defaults)')}")
modules = any(r["impl"] == "zoobench-modules" for r in runs)
def pair_ratios(k, field):
    # The i-th C++ run against the i-th Python run, its neighbour in time:
    # on a shared machine the load drifts between repeats, and a ratio of
    # neighbours drifts less than a ratio of medians.
    c = [r[field] for r in runs if r["impl"] == "zoobench-cpp" and (r["arch"], r["width"], r["threads"]) == k]
    p = [r[field] for r in runs if r["impl"] == "pytorch-python" and (r["arch"], r["width"], r["threads"]) == k]
    return sorted(a / b for a, b in zip(c, p))
print(f"{'arch':9} {'width':>5} {'threads':>7} | {'train C++':>10} {'Python':>10} {'ratio':>6} "
      + f"{'pairs: median [min-max]':>24} | "
      + (f"{'C++, libtorch convs':>19} {'ratio':>6} | " if modules else "")
      + f"{'extract C++':>11} {'Python':>10} {'ratio':>6} | runs")
table = []
for k in keys:
    (tc, nc), (tp, npy) = med("zoobench-cpp", k, "train_images_per_s"), med("pytorch-python", k, "train_images_per_s")
    (ec, _), (ep, _) = med("zoobench-cpp", k, "extract_images_per_s"), med("pytorch-python", k, "extract_images_per_s")
    tm = med("zoobench-modules", k, "train_images_per_s")[0] if modules else None
    pr = pair_ratios(k, "train_images_per_s")
    prs = f"{statistics.median(pr):.2f} [{pr[0]:.2f}-{pr[-1]:.2f}]"
    print(f"{k[0]:9} {k[1]:>5} {k[2]:>7} | {tc:>10.1f} {tp:>10.1f} {tc / tp:>6.2f} {prs:>24} | "
          + (f"{tm:>19.1f} {tm / tp:>6.2f} | " if modules else "")
          + f"{ec:>11.1f} {ep:>10.1f} {ec / ep:>6.2f} | {nc}+{npy}")
    table.append(dict(arch=k[0], width=k[1], threads=k[2], train_cpp=tc, train_python=tp, train_ratio=tc / tp,
                      train_pair_ratios=pr, train_cpp_libtorch_convs=tm, extract_cpp=ec, extract_python=ep, extract_ratio=ec / ep,
                      repeats=nc))
print(json.dumps({"bench": "finetune_side_by_side", "images_per_s": "median",
                  "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""), "rows": table}))
EOF
