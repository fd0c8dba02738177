"""The harness's own cost in a finished run, from its results.h5 (goal: at
most 1 % of the wall time):

  /usr/bin/python3 bench/harness_overhead.py results/mini/results.h5

- between units: per rank, the gaps from one unit's end to its next unit's
  start (asking the work queue for a unit, dispatch), and from the phase's
  start to the rank's first unit;
- inside fine-tune units but outside the training: a fine-tune unit's
  seconds minus its fine-tune's own (/finetune seconds): the edge check, the
  shard's write and commit, and the whole of a "not needed" edge unit;
- the merge: results.h5's merge_seconds (written by zoobench since
  2026-12-01; --merge-seconds S for an older file).

The units phase runs from the first unit's start to the last unit's end on
any rank; overhead % = harness seconds / (ranks x units-phase wall) for the
rank-seconds, and with the merge, (rank-seconds / ranks + merge) / (wall +
merge). Idle tails (a rank done while another finishes its last unit) are
shown but not counted: that is the schedule's quality, bench/grid_utilisation.sh.
Score units' shard writes are inside their seconds, not separated here: the
figure is a lower bound by that much (their total is printed as the bound).
Checks beside the figures: no unit of a rank overlaps its next (gaps >= 0
to a millisecond), and the units' seconds add up to /units' total."""
import argparse
import sys

import h5py
import numpy as np


def text(a):
    return np.array([x.decode() if isinstance(x, bytes) else x for x in a])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results")
    p.add_argument("--merge-seconds", type=float, help="for a results.h5 written before merge_seconds existed")
    a = p.parse_args()
    f = h5py.File(a.results, "r")
    u = f["units"]
    start, sec, rank, kind = u["start"][:], u["seconds"][:], u["rank"][:], text(u["kind"][:])
    t0, t1 = start.min(), (start + sec).max()
    wall = t1 - t0
    ranks = np.unique(rank)
    print(f"{a.results}: {len(sec)} units on {len(ranks)} rank(s), units phase {wall:.1f} s wall, "
          f"{sec.sum():.1f} rank-s of units")
    between = tail = 0.0
    for r in ranks:
        m = rank == r
        o = np.argsort(start[m])
        s, d = start[m][o], sec[m][o]
        gaps = s[1:] - (s[:-1] + d[:-1])
        if (gaps < -1e-3).any():
            sys.exit(f"harness_overhead: rank {r}: {int((gaps < -1e-3).sum())} unit(s) start before the previous one ended")
        head, idle = s[0] - t0, t1 - (s[-1] + d[-1])
        between += gaps.sum() + head
        tail += idle
        print(f"  rank {r}: {m.sum()} units, busy {d.sum():.1f} s, between units {gaps.sum() + head:.2f} s "
              f"(largest gap {gaps.max(initial=0):.3f} s), idle tail {idle:.1f} s")
    ft = kind == "finetune"
    trained = f["finetune"]["seconds"][:].sum() if "finetune" in f else 0.0
    outside = sec[ft].sum() - trained
    if outside < -1e-3:
        sys.exit(f"harness_overhead: /finetune seconds ({trained:.1f}) exceed the fine-tune units' ({sec[ft].sum():.1f})")
    merge = a.merge_seconds if a.merge_seconds is not None else f.attrs.get("merge_seconds")
    n = len(ranks)
    rank_s = between + outside
    print(f"between units: {between:.2f} rank-s; in fine-tune units outside the training "
          f"({ft.sum()} units, {len(f['finetune']['seconds']) if 'finetune' in f else 0} trained): {outside:.2f} rank-s")
    print(f"score units (their shard writes included, not separated): {sec[kind == 'score'].sum():.1f} rank-s")
    print(f"idle tails (the schedule's, not counted): {tail:.1f} rank-s")
    print(f"harness share of the units phase: {rank_s:.2f} / ({n} x {wall:.1f}) = {100 * rank_s / (n * wall):.3f} %")
    if merge is None:
        print("merge: no merge_seconds in this file (pass --merge-seconds)")
    else:
        share = (rank_s / n + merge) / (wall + merge)
        print(f"with the merge ({float(merge):.2f} s): {100 * share:.3f} % of {wall + merge:.1f} s  (goal <= 1 %)")


if __name__ == "__main__":
    main()
