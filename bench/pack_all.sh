#!/usr/bin/env bash
# Wall time of packing every built-in domain from scratch (raw data already
# fetched), best of N runs: bench/pack_all.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
best=""
for i in $(seq "$n"); do
  t0=$(date +%s.%N)
  build/zoobench data pack --force --data-dir "$out" >/dev/null 2>&1
  t=$(echo "$(date +%s.%N) - $t0" | bc)
  echo "run $i: ${t}s"
  best=$(echo "if (\"$best\" == \"\" || $t < ${best:-1e9}) $t else $best" | bc 2>/dev/null || echo "$t")
done
echo "packed $(ls "$out"/*.h5 | wc -l) domains, $(du -sh "$out" | cut -f1) on disk"
