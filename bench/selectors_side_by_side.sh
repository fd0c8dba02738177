#!/usr/bin/env bash
# Every selector side by side with a straightforward numpy/scipy/scikit-learn
# form on the same arrays, in one run: numpy first (it writes the arrays and
# its values), then bench_selectors on those arrays (checking its values
# against numpy's beside the timing), then one table.
#   bench/selectors_side_by_side.sh [N] [--lfc-scaling]
# Defaults: N = 5000, D = 512, C = 20, Cs = 10, 2 threads on both sides.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/blas_env.sh
n=${1:-5000}
extra=()
[ "${2:-}" = "--lfc-scaling" ] && extra=(--lfc-scaling)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export ZOOBENCH_THREADS=${ZOOBENCH_THREADS:-2} OMP_NUM_THREADS=${ZOOBENCH_THREADS:-2}
/usr/bin/python3 bench/python/selectors_baseline.py "$out/cell" --n "$n" "${extra[@]}" 2>/dev/null
filter='BM_Selector'
[ ${#extra[@]} -gt 0 ] && filter='BM_Selector|BM_Lfc/20000'
ZB_SELECTOR_INPUTS="$out/cell.h5" build/bench/bench_selectors --benchmark_filter="$filter" \
  --benchmark_format=json >"$out/zoobench.json" 2>/dev/null
/usr/bin/python3 bench/python/side_by_side.py "$out/cell.json" "$out/zoobench.json"
