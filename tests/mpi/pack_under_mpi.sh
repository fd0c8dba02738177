#!/usr/bin/env bash
# `zoobench data pack` under mpiexec -n 2: sources are split across ranks,
# rank 0 prints the summary once, and every requested file appears.
set -euo pipefail
zoobench=$1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mpiexec -n 2 --oversubscribe "$zoobench" data pack --domains optdigits,opencv-digits,mnist --data-dir "$out" >"$out/log" 2>&1 \
  || { cat "$out/log"; exit 1; }
cat "$out/log"
for d in optdigits opencv-digits mnist; do
  [ -f "$out/$d.h5" ] || { echo "missing $d.h5"; exit 1; }
done
[ "$(grep -c '^optdigits ' "$out/log")" = 1 ] || { echo "summary must be printed once (by rank 0)"; exit 1; }
# Both ranks packed something: the log holds 'packed' lines from two processes.
[ "$(grep -c 'packed ' "$out/log")" = 3 ] || { echo "expected 3 packed lines"; exit 1; }
ls "$out" | grep -q '\.tmp\.' && { echo "temporary files left behind"; exit 1; }
echo "mpi data pack: ok"
