#!/usr/bin/env bash
# `zoobench zoo train` under mpiexec -n 2: one model per rank, rank 0 writes
# the manifest with both entries after every rank has finished.
set -euo pipefail
zoobench=$1 config=$2 data=$3
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mpiexec -n 2 --oversubscribe "$zoobench" zoo train "$config" --zoo-dir "$out" --data-dir "$data" --threads 1 --quiet \
  >"$out/log" 2>&1 || { cat "$out/log"; exit 1; }
cat "$out/log"
grep -q 'mnist-cnn .*trained in' "$out/log" && grep -q 'generic .*trained in' "$out/log" || { echo "both models must train"; exit 1; }
[ "$(grep -c '^  - name:' "$out/manifest.yaml")" = 2 ] || { echo "manifest must list 2 entries"; exit 1; }
ls "$out"/*.pt | wc -l | grep -q '^2$' || { echo "expected 2 weight files"; exit 1; }
echo "mpi zoo train: ok"
