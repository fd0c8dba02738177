"""`zoobench reduce` on a hand-made results.h5 (written with h5py: random
scores and accuracies with ties, a constant score, two task groups x two
shots x two seeds) against scipy.stats and brute-force enumerations of the
tie-breaking orders; then bad input."""
import csv
import itertools
import math
import os
import shutil
import subprocess
import tempfile
import unittest

import h5py
import numpy as np
import scipy.stats

ZOOBENCH = os.environ.get("ZOOBENCH", "build/zoobench")
MODELS = ["m0", "m1", "m2", "m3", "m4", "generic"]
LRS = [0.1, 0.03, 0.01]
SATURATED = ("B-5shot-s1", "beta", "m2")   # a score at its limit by construction: the task is left out
DEGENERATE = ("B-10shot-s0", "alpha", "m3")  # a model with constant features: -inf, ranked last


def strings(values):
    return np.array(values, dtype=h5py.string_dtype())


def write_table(f, name, columns):
    g = f.create_group(name)
    for k, v in columns.items():
        g[k] = strings(v) if isinstance(v[0], str) else np.asarray(v)


def make_results(path, seed=0):
    rng = np.random.default_rng(seed)
    tasks, scores, truth, ft = [], [], [], []
    for group, shot, s in itertools.product(["A", "B"], [5, 10], [0, 1]):
        name = f"{group}-{shot}shot-s{s}"
        tasks.append(dict(name=name, group=group, shot=shot, seed=s, classes=4, train=4 * shot, val=4, test=120,
                          scored=4 * shot))
        acc = np.round(rng.uniform(0.3, 0.9, len(MODELS)) * 20) / 20  # multiples of 0.05: ties
        for m, a in zip(MODELS, acc):
            truth.append(dict(model=m, task=name, shot=shot, seed=s, lr=0.1, val_acc=a, test_acc=a, oracle_test_acc=a))
            vals = rng.uniform(0.2, 0.9, len(LRS))
            if name == "A-5shot-s0":
                vals = np.array([0.9, 0.5, 0.4])  # the top lr wins, and by far: an edge that binds
            if name == "A-10shot-s1":
                vals = np.array([0.3, 0.6, 0.8])  # the bottom edge binds
            for k, lr in enumerate(LRS):
                train = 0.5 if name == "B-10shot-s1" else 1.0
                ft.append(dict(model=m, task=name, shot=shot, seed=s, lr=lr, epochs=20, train_acc=train,
                               val_acc=vals[k], test_acc=a, chosen=int(k == int(np.argmax(vals))), seconds=2.0 + k,
                               ranks=1))
        for sel, values in (("alpha", rng.normal(size=len(MODELS))),
                            ("beta", np.round(rng.normal(size=len(MODELS)))),  # integer values: ties
                            ("gamma", np.full(len(MODELS), 1.5) if s == 0 else rng.normal(size=len(MODELS)))):
            for m, v in zip(MODELS, values):
                note = ""
                if (name, sel, m) == SATURATED:
                    note = "D = 64 features >= N - 1 = 49 samples: H-score = C - 1 for any model"
                if (name, sel, m) == DEGENERATE:
                    v, note = -np.inf, "degenerate features (relative spread 1.0e-07 < 1.0e-05): ranked last"
                scores.append(dict(model=m, task=name, shot=shot, seed=s, selector=sel, value=float(v),
                                   seconds={"alpha": 0.1, "beta": 0.2, "gamma": 0.4}[sel], note=note))
    with h5py.File(path, "w") as f:
        f.attrs["schema_version"] = 4
        write_table(f, "models", dict(name=MODELS, kind=["expert"] * 5 + ["generic"], arch=["cnn"] * 6))
        for name, rows in (("tasks", tasks), ("scores", scores), ("ground_truth", truth), ("finetune", ft)):
            write_table(f, name, {k: [r[k] for r in rows] for k in rows[0]})
    return tasks, scores, truth, ft


def enumerate_orders(scores):
    """Every order of the models by decreasing score, ties in every arrangement."""
    n = len(scores)
    for perm in itertools.permutations(range(n)):
        if all(scores[perm[i]] >= scores[perm[i + 1]] for i in range(n - 1)):
            yield perm


def brute_force_selection(scores, acc, generic):
    orders = list(enumerate_orders(scores))
    best = max(acc)
    top = lambda k: np.mean([max(acc[i] for i in o[:k]) for o in orders])  # noqa: E731
    first_best = np.mean([next(p for p, i in enumerate(o) if acc[i] == best) + 1 for o in orders])
    return dict(selections_to_best=first_best, top1_gain=top(1) - generic, top3_gain=top(3) - generic,
                regret_at_1=(best - top(1)) / best, regret_at_3=(best - top(3)) / best, relative_top1=top(1) / best)


def read_csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def num(text):
    return float("nan") if text == "nan" else float(text)


class Reduce(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="zoobench-reduce-")
        cls.results = os.path.join(cls.tmp, "results.h5")
        cls.tasks, cls.scores, cls.truth, cls.ft = make_results(cls.results)
        cls.reduced = subprocess.run([ZOOBENCH, "reduce", cls.results, "--print"], capture_output=True, text=True,
                                 timeout=300)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def cell(self, task, selector):
        acc = {r["model"]: r["test_acc"] for r in self.truth if r["task"] == task}
        sc = {r["model"]: r["value"] for r in self.scores if r["task"] == task and r["selector"] == selector}
        return [sc[m] for m in MODELS], [acc[m] for m in MODELS], acc["generic"]

    def test_correlations_match_scipy_and_enumeration(self):
        self.assertEqual(self.reduced.returncode, 0, self.reduced.stderr)
        rows = read_csv(os.path.join(self.tmp, "tables", "correlations.csv"))
        self.assertEqual(len(rows), 8 * 3)
        nan_rows = 0
        for r in rows:
            x, y, generic = self.cell(r["task"], r["selector"])
            if (r["task"], r["selector"]) == SATURATED[:2]:
                for k in ("spearman", "kendall", "weighted_tau", "pearson", "selections_to_best", "top1_gain"):
                    self.assertTrue(math.isnan(num(r[k])), (k, r[k]))
                continue
            degenerate = (r["task"], r["selector"]) == DEGENERATE[:2]
            if degenerate:  # -inf ranks last: scipy sees it as below every finite score
                finite = [v for v in x if np.isfinite(v)]
                x = [v if np.isfinite(v) else min(finite) - 1 for v in x]
            with self.subTest(task=r["task"], selector=r["selector"]):
                with np.errstate(all="ignore"), __import__("warnings").catch_warnings():
                    __import__("warnings").simplefilter("ignore")
                    want = dict(spearman=scipy.stats.spearmanr(x, y)[0], kendall=scipy.stats.kendalltau(x, y)[0],
                                weighted_tau=scipy.stats.weightedtau(x, y)[0], pearson=scipy.stats.pearsonr(x, y)[0]
                                if np.std(x) > 0 else float("nan"))
                want.update(brute_force_selection(x, y, generic))
                if degenerate:
                    want["pearson"] = float("nan")  # a value-based r is undefined with -inf
                for k, v in want.items():
                    got = num(r[k])
                    if math.isnan(v):
                        self.assertTrue(math.isnan(got), (k, got))
                        nan_rows += 1
                    else:
                        self.assertAlmostEqual(got, v, delta=2e-6, msg=k)
        self.assertGreater(nan_rows, 0, "the constant score must give undefined correlations")

    def test_summary_means_and_intervals(self):
        rows = read_csv(os.path.join(self.tmp, "tables", "summary.csv"))
        per = read_csv(os.path.join(self.tmp, "tables", "correlations.csv"))
        self.assertEqual(sorted({(r["shot"], r["selector"]) for r in rows}),
                         sorted(itertools.product(["10", "5"], ["alpha", "beta", "gamma"])))
        for r in rows:
            vals = [num(p["spearman"]) for p in per if p["shot"] == r["shot"] and p["selector"] == r["selector"]]
            vals = [v for v in vals if not math.isnan(v)]
            self.assertAlmostEqual(num(r["spearman"]), np.mean(vals), delta=2e-6)
            self.assertLessEqual(num(r["spearman_lo"]), num(r["spearman"]) + 1e-9)
            self.assertGreaterEqual(num(r["spearman_hi"]), num(r["spearman"]) - 1e-9)
            self.assertEqual(r["tasks"], "2")
        # Deterministic for a seed: a second reduce writes the same summary.
        with open(os.path.join(self.tmp, "tables", "summary.csv")) as fh:
            first = fh.read()
        r = subprocess.run([ZOOBENCH, "reduce", self.results], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.tmp, "tables", "summary.csv")) as fh:
            self.assertEqual(fh.read(), first)
        with h5py.File(self.results, "r") as f:
            self.assertEqual(len(f["tables/correlations/spearman"]), 24, "a rerun replaces the tables")
            self.assertIn("reduced_utc", f.attrs)

    def test_gain_costs_and_ground_truth_checks(self):
        gains = read_csv(os.path.join(self.tmp, "tables", "zoo_gain.csv"))
        for g in gains:
            _, acc, generic = self.cell(g["task"], "alpha")
            self.assertAlmostEqual(num(g["gain"]), max(acc) - generic, delta=1e-6)
        costs = {r["selector"]: r for r in read_csv(os.path.join(self.tmp, "tables", "costs.csv"))}
        self.assertAlmostEqual(num(costs["gamma"]["relative_to_one_finetune"]), 0.4 / 3.0, delta=1e-6)
        self.assertAlmostEqual(num(costs["brute force: the zoo x the lr grid, per task"]["seconds_per_cell"]), 6 * 9.0, delta=1e-6)
        checks = {r["task"]: r for r in read_csv(os.path.join(self.tmp, "tables", "ground_truth_checks.csv"))}
        self.assertEqual(num(checks["A-5shot-s0"]["edge_share"]), 1.0)
        self.assertAlmostEqual(num(checks["A-5shot-s0"]["rise_at_top_lr"]), 0.4, delta=1e-6)
        self.assertEqual(num(checks["B-10shot-s1"]["median_train_acc"]), 0.5)
        acc = np.mean(self.cell("A-5shot-s0", "alpha")[1])
        self.assertAlmostEqual(num(checks["A-5shot-s0"]["binomial_se"]), math.sqrt(acc * (1 - acc) / 120), delta=1e-6)
        self.assertIn("task 'B-10shot-s1': the chosen fine-tunes reach a median training accuracy of 0.50", self.reduced.stderr)
        self.assertIn("task 'A-5shot-s0': 100 % of cells choose the top lr of the grid while the mean validation "
                      "accuracy still rises there (40.0 points)", self.reduced.stderr)
        self.assertIn("task 'A-10shot-s1': 100 % of cells choose the bottom lr of the grid while the mean validation "
                      "accuracy still rises there (20.0 points)", self.reduced.stderr)
        self.assertNotIn("task 'A-5shot-s0': 100 % of cells choose the bottom", self.reduced.stderr)
        self.assertIn("5-shot: mean over tasks and seeds", self.reduced.stdout)
        self.assertIn("zoobench: note: selector 'beta' cannot rank the zoo on 1 of 8 tasks (first: 'B-5shot-s1', "
                      "m2: D = 64 features >= N - 1 = 49 samples: H-score = C - 1 for any model); they are left out "
                      "of its averages", self.reduced.stderr)
        for name in ("correlations", "summary", "zoo_gain", "zoo_gain_by_shot", "costs", "ground_truth_checks"):
            self.assertTrue(os.path.getsize(os.path.join(self.tmp, "tables", name + ".md")) > 50, name)

    def test_figures(self):
        self.assertEqual(self.reduced.returncode, 0, self.reduced.stderr)
        plot = os.path.join(os.environ.get("ZB_SOURCE_DIR", "."), "tools", "plot")
        r = subprocess.run(["/usr/bin/python3", plot, self.results], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        figures = os.path.join(self.tmp, "figures")
        names = sorted(os.listdir(figures))
        self.assertEqual(names, sorted(["correlation.png", "cost-quality.png", "zoo-gain.png"] +
                                       [f"scatter-{t['name']}.png" for t in self.tasks]))
        for name in names:
            with open(os.path.join(figures, name), "rb") as fh:
                head = fh.read(24)
            self.assertEqual(head[:8], b"\x89PNG\r\n\x1a\n", name)
            width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
            self.assertTrue(300 <= width <= 4000 and 200 <= height <= 4000, (name, width, height))
            self.assertGreater(os.path.getsize(os.path.join(figures, name)), 8000, name)
        # Before `reduce` there is nothing to draw: one error line, no folder.
        raw = os.path.join(self.tmp, "raw")
        os.mkdir(raw)
        make_results(os.path.join(raw, "results.h5"), seed=1)
        r = subprocess.run(["/usr/bin/python3", plot, raw], capture_output=True, text=True, timeout=300)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("/tables/summary is missing", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(raw, "figures")))

    def test_bad_input(self):
        bad = os.path.join(self.tmp, "bad.h5")
        with h5py.File(bad, "w") as f:
            f.attrs["schema_version"] = 2
        r = subprocess.run([ZOOBENCH, "reduce", bad], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 3, r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn(bad + ": /tasks is missing", lines[0])
        self.assertEqual(sorted(os.listdir(self.tmp)).count("bad.h5"), 1)
        self.assertFalse([n for n in os.listdir(self.tmp) if ".tmp." in n], "nothing half-written")
        empty = os.path.join(self.tmp, "empty")
        os.mkdir(empty)
        r = subprocess.run([ZOOBENCH, "reduce", empty], capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not an experiment folder", r.stderr)
        self.assertEqual(os.listdir(empty), [], "nothing written")


if __name__ == "__main__":
    unittest.main()
