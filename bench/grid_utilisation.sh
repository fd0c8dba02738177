#!/usr/bin/env bash
# Rank utilisation of the real grid with 2 MPI ranks: the dynamic policy
# against the static round-robin baseline on a heterogeneous experiment.
#
#   bench/grid_utilisation.sh            (from the repository root)
#
# The experiment is configs/tiny.yaml (copied to a temporary folder) with
# threads: 1, three tasks of different sizes, the lr grid [0.03, 0.01, 0.003]
# and the selectors [lfc, lgc, leep, knn, rsa] (rsa adds a probe unit per
# task, which every score unit of that task waits for). Its zoo is trained
# once, then the grid runs under `mpiexec -n 2` with --schedule dynamic and
# --schedule static into fresh results folders (REPEATS times each,
# alternating). From /units of each results.h5, per rank:
#   busy        = sum of the seconds of the units the rank ran
#   wall        = max(start + seconds) - min(start) over all units (the makespan)
#   utilisation = busy / wall
# Start-up before the first unit and the merge after the last are outside
# `wall`; the script's own timing of the whole mpiexec is shown beside it.
#
# Environment:
#   ZOOBENCH  the CLI to run (default build/zoobench; it is only run, never built:
#             the script copies it into WORK first and runs the copy)
#   DATA      packed data (default /tmp/zb/data if it holds the three domains,
#             otherwise zoobench packs them into the work folder)
#   ZOO       a zoo folder to reuse/train into (default: WORK/zoo)
#   WORK      work folder (default: a new mktemp -d; kept, its path is printed)
#   RANKS     MPI ranks (default 2); REPEATS runs per policy (default 1)
#   PYTHON    (default /usr/bin/python3, with h5py and PyYAML)
set -euo pipefail

ZOOBENCH=${ZOOBENCH:-build/zoobench}
PYTHON=${PYTHON:-/usr/bin/python3}
RANKS=${RANKS:-2}
REPEATS=${REPEATS:-1}
WORK=${WORK:-$(mktemp -d /tmp/zoobench-grid-util.XXXXXX)}
ZOO=${ZOO:-$WORK/zoo}
REPO=$(cd "$(dirname "$0")/.." && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIEXEC=(mpiexec -n "$RANKS" --oversubscribe)

[ -x "$ZOOBENCH" ] || { echo "grid_utilisation: no executable $ZOOBENCH (set ZOOBENCH)" >&2; exit 2; }
mkdir -p "$WORK"
# A snapshot, so that every run uses the same binary even while $ZOOBENCH is being rebuilt.
cp "$ZOOBENCH" "$WORK/zoobench.bin"
echo "grid_utilisation: running a copy of $ZOOBENCH ($("$WORK/zoobench.bin" version 2>/dev/null | head -1))"
ZOOBENCH=$WORK/zoobench.bin
if [ -z "${DATA:-}" ]; then
  if [ -f /tmp/zb/data/mnist.h5 ] && [ -f /tmp/zb/data/optdigits.h5 ] && [ -f /tmp/zb/data/opencv-digits.h5 ]; then
    DATA=/tmp/zb/data
  else
    DATA=$WORK/data
  fi
fi

CONFIG=$WORK/config.yaml
cp "$REPO/configs/tiny.yaml" "$CONFIG"
"$PYTHON" - "$CONFIG" <<'EOF'
import sys, yaml
path = sys.argv[1]
c = yaml.safe_load(open(path))
c["name"] = "grid-util"
c["threads"] = 1
c["tasks"] = [
    {"dataset": "opencv-digits", "shots": 10, "test_per_class": 20},                       # 10 classes x 10 shots
    {"name": "optdigits-3way", "dataset": "optdigits", "classes": ["3", "5", "8"],
     "shots": 10, "test_per_class": 20},                                                    # 3 x 10
    {"name": "optdigits-20shot", "dataset": "optdigits", "shots": 20, "test_per_class": 20},  # 10 x 20
]
c["finetune"]["lrs"] = [0.03, 0.01, 0.003]
c["selectors"] = ["lfc", "lgc", "leep", "knn", "rsa"]
yaml.safe_dump(c, open(path, "w"), sort_keys=False)
EOF
"$ZOOBENCH" config check "$CONFIG" >/dev/null

echo "grid_utilisation: work folder $WORK ($RANKS ranks, $REPEATS run(s) per policy)"
echo "  config $CONFIG (configs/tiny.yaml: threads 1, 3 tasks, lrs [0.03, 0.01, 0.003], selectors [lfc, lgc, leep, knn, rsa])"
echo "  zoobench $ZOOBENCH, data $DATA, zoo $ZOO"
"$ZOOBENCH" zoo train "$CONFIG" --zoo-dir "$ZOO" --data-dir "$DATA" --quiet

RUNS=$WORK/runs.txt
: > "$RUNS"
for r in $(seq 1 "$REPEATS"); do
  for policy in dynamic static; do
    out=$WORK/results-$policy-$r
    rm -rf "$out"
    t0=$(date +%s.%N)
    "${MPIEXEC[@]}" "$ZOOBENCH" run "$CONFIG" --zoo-dir "$ZOO" --results-dir "$out" --data-dir "$DATA" --quiet \
      --schedule "$policy" > "$WORK/log-$policy-$r.txt" 2>&1 ||
      { echo "grid_utilisation: the $policy run failed; log:" >&2; tail -20 "$WORK/log-$policy-$r.txt" >&2; exit 1; }
    t1=$(date +%s.%N)
    echo "$policy $r $out/grid-util/results.h5 $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" >> "$RUNS"
  done
done

"$PYTHON" - "$RUNS" "$RANKS" <<'EOF'
import json, statistics, sys
import h5py

runs_file, ranks = sys.argv[1], int(sys.argv[2])
rows = []
for line in open(runs_file):
    policy, rep, path, mpiexec_s = line.split()
    with h5py.File(path, "r") as f:
        u = f["units"]
        rank = u["rank"][:]
        start = u["start"][:]
        secs = u["seconds"][:]
        kinds = [k.decode() if isinstance(k, bytes) else k for k in u["kind"][:]]
    # Check: one row per unit of the plan, every unit timed, on a rank that exists.
    assert len(rank) > 0 and (secs > 0).all() and (rank >= 0).all() and (rank < ranks).all(), path
    t0, t1 = start.min(), (start + secs).max()
    wall = t1 - t0
    busy = [float(secs[rank == r].sum()) for r in range(ranks)]
    count = [int((rank == r).sum()) for r in range(ranks)]
    assert abs(sum(busy) - secs.sum()) < 1e-9 * max(1.0, secs.sum())
    rows.append(dict(policy=policy, repeat=int(rep), units=len(rank),
                     kinds={k: kinds.count(k) for k in sorted(set(kinds))}, wall=wall, mpiexec_s=float(mpiexec_s),
                     busy=busy, units_per_rank=count, utilisation=[b / wall for b in busy],
                     mean_utilisation=sum(busy) / (ranks * wall)))

print(f"\nunits per run: {rows[0]['units']} ({', '.join(f'{v} {k}' for k, v in rows[0]['kinds'].items())})")
print("wall = max(start + seconds) - min(start) over /units (the makespan); utilisation = busy / wall")
print(f"{'policy':8} {'rep':>3} {'rank':>4} {'units':>5} {'busy_s':>8} {'wall_s':>8} {'util':>7}   {'mpiexec_s':>9}")
for r in rows:
    for k in range(ranks):
        print(f"{r['policy']:8} {r['repeat']:>3} {k:>4} {r['units_per_rank'][k]:>5} {r['busy'][k]:>8.2f} "
              f"{r['wall']:>8.2f} {100 * r['utilisation'][k]:>6.1f}%   {r['mpiexec_s'] if k == 0 else '':>9}")

print("\nside by side (median over repeats)")
print(f"{'':10} {'dynamic':>10} {'static':>10}")
med = {}
for p in ("dynamic", "static"):
    rs = [r for r in rows if r["policy"] == p]
    med[p] = dict(wall=statistics.median(r["wall"] for r in rs),
                  mean_utilisation=statistics.median(r["mean_utilisation"] for r in rs),
                  utilisation=[statistics.median(r["utilisation"][k] for r in rs) for k in range(ranks)],
                  mpiexec_s=statistics.median(r["mpiexec_s"] for r in rs))
print(f"{'makespan_s':10} {med['dynamic']['wall']:>10.2f} {med['static']['wall']:>10.2f}")
for k in range(ranks):
    print(f"{'util r' + str(k):10} {100 * med['dynamic']['utilisation'][k]:>9.1f}% {100 * med['static']['utilisation'][k]:>9.1f}%")
print(f"{'util mean':10} {100 * med['dynamic']['mean_utilisation']:>9.1f}% {100 * med['static']['mean_utilisation']:>9.1f}%")
print(f"{'mpiexec_s':10} {med['dynamic']['mpiexec_s']:>10.2f} {med['static']['mpiexec_s']:>10.2f}")
print(json.dumps({"bench": "grid_utilisation", "ranks": ranks, "median": med, "runs": rows}))
EOF
