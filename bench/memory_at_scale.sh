#!/usr/bin/env bash
# Every registered score at N = 50,000 samples, D = 512 (the memory goal of
# 8 GB): each in a process of its own (bench_memory), so that each peak RSS
# is that score's, then one table. A score whose estimate is over the limit is
# refused before it allocates, as `run` and `score` refuse it.
#   bench/memory_at_scale.sh [N] [LIMIT_MB] [SELECTOR ...]
# Defaults: N = 50000, LIMIT_MB = 8192, every selector; 100 classes, 2 threads.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50000}
limit=${2:-8192}
shift $(( $# > 2 ? 2 : $# ))
bin=build/bench/bench_memory
[ -x "$bin" ] || { echo "memory_at_scale: build it first: cmake --build build --target bench_memory" >&2; exit 2; }
sels=("$@")
[ ${#sels[@]} -gt 0 ] || mapfile -t sels < <(build/zoobench score --list | tail -n +2 | awk '{print $1}')
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "# $(date -u +%FT%TZ) $(hostname) $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); N = $n, D = 512, limit $limit MiB" >&2
for s in "${sels[@]}"; do
  # /usr/bin/time's maximum resident size is the kernel's for the whole process: a second witness.
  /usr/bin/time -f '%M' -o "$out.time" "$bin" --selector "$s" --n "$n" --limit-mb "$limit" >>"$out" || echo "{\"selector\": \"$s\", \"verdict\": \"failed\"}" >>"$out"
  echo "  $s done: $(tail -n 1 "$out.time") KiB (time)" >&2
done
rm -f "$out.time"
/usr/bin/python3 - "$out" "$limit" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
limit = int(sys.argv[2]) * 2**20
print(f"| selector | verdict | declared GB | inputs GB | peak RSS GB | within {limit / 2**30:.0f} GiB | seconds |")
print("|---|---|---:|---:|---:|---|---:|")
for r in rows:
    if r["verdict"] == "failed":
        print(f"| {r['selector']} | failed | | | | no | |")
        continue
    peak = r["peak_rss_bytes"]
    est = r["estimate_bytes"]
    ok = "refused before allocating" if r["verdict"] == "refused" else ("yes" if peak <= limit else "NO")
    secs = f"{r['seconds']:.1f}" if "seconds" in r else ""
    declared = f"{est / 1e9:.1f}" if est > 0 else "linear"
    print(f"| {r['selector']} | {r['verdict']} | {declared} | {r['inputs_peak_rss_bytes'] / 1e9:.2f} | {peak / 1e9:.2f} | {ok} | {secs} |")
for r in rows:
    if r.get("why"):
        print(f"\n{r['selector']}: {r['why']}")
PY
