"""The distributed grid end to end, under real `mpiexec`: configs/tiny.yaml on
1, 2 and 3 ranks gives the same cells and bit-identical scores and fine-tune
accuracies, every rank computes units, a run killed with SIGKILL at any
moment (inside a shard write included) is finished by rerunning it, and bad
input ends every rank with one clear error line."""
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import zbtest  # noqa: E402

ZOOBENCH = os.environ.get("ZOOBENCH", "build/zoobench")
SOURCE_DIR = os.environ.get("ZB_SOURCE_DIR", ".")
MPIEXEC = os.environ.get("MPIEXEC", "mpiexec")
TINY = os.path.join(SOURCE_DIR, "configs", "tiny.yaml")


def write_config(folder, name="tiny", **change):
    with open(TINY) as fh:
        cfg = yaml.safe_load(fh)
    cfg["name"] = name
    cfg["threads"] = 1  # bit-identical results need a fixed thread count
    for key, value in change.items():
        node = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    path = os.path.join(folder, name + ".yaml")
    with open(path, "w") as fh:
        yaml.safe_dump(cfg, fh)
    return path


def tiny_zoo(folder):
    """The tiny config (1 thread) in `folder` and its zoo, trained there once: (config, zoo)."""
    config, zoo = write_config(folder), os.path.join(folder, "zoo")
    r = subprocess.run([ZOOBENCH, "zoo", "train", config, "--zoo-dir", zoo, "--quiet"], capture_output=True,
                       text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("zoo train failed: " + r.stderr)
    return config, zoo


def command(ranks, config, zoo, results, *extra):
    return [MPIEXEC, "-n", str(ranks), "--oversubscribe", ZOOBENCH, "run", config, "--zoo-dir", zoo,
            "--results-dir", results, *extra]


def run(ranks, config, zoo, results, *extra, env=None, timeout=300):
    return subprocess.run(command(ranks, config, zoo, results, *extra), capture_output=True, text=True,
                          timeout=timeout, env=env)


def table(group):
    return {k: (group[k].asstr()[:] if group[k].dtype.kind == "O" else group[k][:]) for k in group}


def session_members(sid):
    pids = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:  # field 6 of stat: the session id
                pids.append(int(stat.split("/")[2]))
        except (OSError, IndexError, ValueError):
            pass
    return pids


def kill_all(proc):
    """kill -9 every rank and the launcher (they share the session we started)."""
    for pid in session_members(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=60)


class Grid(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="zoobench-grid-")
        cls.config, cls.zoo = tiny_zoo(cls.tmp)
        cls.runs = {}
        for n in (1, 2, 3):
            res = os.path.join(cls.tmp, f"r{n}")
            cls.runs[n] = (run(n, cls.config, cls.zoo, res), os.path.join(res, "tiny", "results.h5"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def results(self, n):
        r, path = self.runs[n]
        self.assertEqual(r.returncode, 0, r.stderr)
        return h5py.File(path, "r")

    def test_same_cells_and_bit_identical_values_on_1_2_3_ranks(self):
        ref = self.results(1)
        for n in (2, 3):
            f = self.results(n)
            for name in ("cells", "scores", "finetune", "ground_truth", "tables/spearman"):
                a, b = table(ref[name]), table(f[name])
                for col in ("model", "task", "shot", "seed", "selector", "lr", "value", "test_acc", "val_acc",
                            "train_acc", "oracle_test_acc", "chosen", "rho"):
                    if col in a:
                        # NaN where a task's fine-tuned accuracies tie across the zoo: rho is undefined there.
                        nan_ok = a[col].dtype.kind == "f"
                        self.assertTrue(np.array_equal(a[col], b[col], equal_nan=nan_ok),
                                        f"{n} ranks: /{name}/{col} differs")
            for key in ("features/generic/opencv-digits/features", "features/mnist-cnn/optdigits-3way/grad_sketch"):
                self.assertTrue(np.array_equal(ref[key][:], f[key][:]), key)

    def test_every_rank_computed_units(self):
        for n in (2, 3):
            f = self.results(n)
            units = table(f["units"])
            self.assertEqual(set(units["rank"]), set(range(n)), f"{n} ranks: who computed what: {units['rank']}")
            for name in ("scores", "finetune"):
                t = table(f[name])
                self.assertEqual(set(t["rank"]), set(range(n)) & set(t["rank"]))
                self.assertTrue((t["unit_seconds"] > 0).all())
                self.assertTrue(all(t["host"]) and all(t["started_utc"]))

    def test_two_ranks_per_cell_train_data_parallel(self):
        res = os.path.join(self.tmp, "dp")
        cfg = write_config(self.tmp, name="tiny", **{"execution.ranks_per_cell": 2})
        r = run(2, cfg, self.zoo, res)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("in 1 group(s) of 2", r.stderr)
        f, ref = h5py.File(os.path.join(res, "tiny", "results.h5"), "r"), self.results(1)
        ft = table(f["finetune"])
        self.assertTrue((ft["ranks"] == 2).all())
        # Same model to rounding (tests/mpi/test_data_parallel.cpp): 30 epochs later the
        # accuracies agree to a point or two, the scores exactly.
        self.assertLess(np.abs(ft["test_acc"] - table(ref["finetune"])["test_acc"]).max(), 0.05)
        self.assertTrue(np.array_equal(table(f["scores"])["value"], table(ref["scores"])["value"]))

    def test_units_and_plan(self):
        f = self.results(2)
        units = table(f["units"])
        # 2 models x 2 tasks: 4 score units, x 2 learning rates: 8 fine-tunes
        self.assertEqual(sorted(set(units["kind"])), ["finetune", "score"])
        self.assertEqual(len(units["unit"]), 12)
        self.assertEqual(len(set(units["unit"])), 12)
        self.assertIn("finetune/generic/opencv-digits/0.03", set(units["unit"]))
        # Each unit's own peak (the mark restarts per unit): at least the rank's
        # libtorch and zoo, at most the machine, and not one number for all.
        rss = units["peak_rss_bytes"]
        self.assertTrue(((rss > 50 << 20) & (rss < os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))).all(), rss)
        self.assertGreater(len(set(rss)), 1, rss)
        # The merge times itself, and bench/harness_overhead.py reads the file.
        self.assertGreater(f.attrs["merge_seconds"], 0)
        r = subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "bench", "harness_overhead.py"), self.runs[2][1]],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"12 units on 2 rank\(s\)")
        self.assertRegex(r.stdout, r"with the merge \(\d+\.\d\d s\): \d+\.\d{3} % of")
        self.assertEqual(f.attrs["schema_version"], 4)
        self.assertIn("tasks:", f.attrs["config_yaml"])
        shards = glob.glob(os.path.join(os.path.dirname(self.runs[2][1]), "shards", "*", "*.h5"))
        self.assertEqual(len(shards), 12)
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(self.runs[2][1]), "lock")))

    def test_edge_extension_widens_the_grid_only_where_an_edge_binds(self):
        """finetune.extend_edges: for each task and edge, every model fine-tunes one step beyond the edge
        exactly when the rule (more than 20 % of the cells choose the edge, the mean validation accuracy
        still more than a point above its neighbour's) holds on the task's grid, recomputed here from the
        stored runs. The bottom lr is so small that the networks stay underfit (its validation accuracy
        was a near tie with a slightly larger one, decided by a single image and the BLAS kernels'
        rounding), the top one fits them: the top edge binds, the bottom one stores "not needed".
        A task's own min_steps sets its length."""
        with open(write_config(self.tmp, name="edges", **{"finetune.lrs": [0.01, 0.0002], "finetune.epochs": 10,
                                                           "finetune.extend_edges": True, "selectors": ["lfc"]})) as fh:
            cfg = yaml.safe_load(fh)
        cfg["tasks"][0]["min_steps"] = 100  # 80 training images: 3 batches an epoch, 34 epochs
        path = os.path.join(self.tmp, "edges.yaml")
        with open(path, "w") as fh:
            yaml.safe_dump(cfg, fh)
        res = os.path.join(self.tmp, "edges")
        r = run(2, path, self.zoo, res)
        self.assertEqual(r.returncode, 0, r.stderr)
        exp = os.path.join(res, "edges")
        with open(os.path.join(exp, "plan.json")) as fh:
            plan = json.load(fh)
        self.assertEqual(plan["edge_lrs"], [0.02, 0.0001])
        self.assertEqual(sum(1 for u in plan["units"] if u["edge"] != 0), 2 * 2 * 2)
        with h5py.File(os.path.join(exp, "results.h5"), "r") as f:
            ft = table(f["finetune"])
        self.assertEqual(set(ft["epochs"][ft["task"] == "opencv-digits"]), {34})
        self.assertEqual(set(ft["epochs"][ft["task"] == "optdigits-3way"]), {10})
        bound = {}
        for task in ("opencv-digits", "optdigits-3way"):
            rows = np.flatnonzero(ft["task"] == task)
            models = sorted(set(ft["model"][rows]))
            grid = [i for i in rows if ft["lr"][i] in (0.01, 0.0002)]
            chosen = {}
            for m in models:  # rows in grid order: ties go to the first lr
                mine = [i for i in grid if ft["model"][i] == m]
                chosen[m] = ft["lr"][max(mine, key=lambda i: (ft["val_acc"][i], -mine.index(i)))]
            mean_val = {lr: np.mean([ft["val_acc"][i] for i in grid if ft["lr"][i] == lr]) for lr in (0.01, 0.0002)}
            for edge, at, neighbour, beyond in (("top", 0.01, 0.0002, 0.02), ("bottom", 0.0002, 0.01, 0.0001)):
                share = np.mean([chosen[m] == at for m in models])
                binds = bool(share > 0.2 and mean_val[at] - mean_val[neighbour] > 0.01)
                bound[(task, edge)] = binds
                ran = [i for i in rows if ft["lr"][i] == beyond]
                self.assertEqual(len(ran), len(models) if binds else 0, (task, edge, share, mean_val))
                for m in models:
                    shard = os.path.join(exp, "shards", "finetune", f"{m}%2F{task}%2F{beyond:g}.h5")
                    with h5py.File(shard, "r") as s:
                        self.assertEqual("not_needed" in s.attrs, not binds, shard)
                        if not binds:
                            self.assertIn(f"the {edge} lr {at:g} is chosen by", s.attrs["not_needed"])
            # The cell's choice covers its widened grid: the best validation accuracy of all its runs.
            for m in models:
                mine = [i for i in rows if ft["model"][i] == m]
                best = max(mine, key=lambda i: (ft["val_acc"][i], -mine.index(i)))
                self.assertEqual([int(ft["chosen"][i]) for i in mine], [int(i == best) for i in mine])
        # Both paths are taken: the top edge widened the grid, the bottom one stored "not needed".
        self.assertTrue(bound[("opencv-digits", "top")] or bound[("optdigits-3way", "top")], bound)
        self.assertIn(False, bound.values(), bound)
        # `plan` names the conditional units and calls its cost an upper bound.
        p = subprocess.run([ZOOBENCH, "plan", path, "--zoo-dir", self.zoo, "--results-dir", res],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("of them 8 fine-tunes beyond the grid's edges {0.0001, 0.02}", p.stdout)

    def test_rerun_resumes_with_nothing_to_do_and_fresh_moves_aside(self):
        res = os.path.join(self.tmp, "again")
        shutil.copytree(os.path.join(self.tmp, "r2"), res)
        before = table(h5py.File(os.path.join(res, "tiny", "results.h5"), "r")["scores"])
        r = run(3, self.config, self.zoo, res)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("12 units (12 done before, 0 to do)", r.stderr)
        after = table(h5py.File(os.path.join(res, "tiny", "results.h5"), "r")["scores"])
        self.assertTrue(np.array_equal(before["value"], after["value"]))
        self.assertEqual(list(before["started_utc"]), list(after["started_utc"]), "reused units keep their run's time")
        r = run(1, self.config, self.zoo, res, "--fresh")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("0 done before, 12 to do", r.stderr)
        old = glob.glob(os.path.join(res, "tiny.old-*"))
        self.assertEqual(len(old), 1, os.listdir(res))
        self.assertTrue(os.path.exists(os.path.join(old[0], "results.h5")))


class KillNine(unittest.TestCase):
    """SIGKILL every rank at random moments, at least once inside a shard write."""

    def test_kill_and_resume(self):
        tmp = tempfile.mkdtemp(prefix="zoobench-kill-")
        self.addCleanup(shutil.rmtree, tmp, True)
        config, zoo = tiny_zoo(tmp)
        t0 = time.time()
        clean = run(2, config, zoo, os.path.join(tmp, "clean"))
        wall = time.time() - t0
        self.assertEqual(clean.returncode, 0, clean.stderr)
        res = os.path.join(tmp, "killed")
        shards = os.path.join(res, "tiny", "shards")
        rng = random.Random(int(os.environ.get("ZB_KILL_SEED", "1")))
        in_write, done_counts, finished_runs, kills = 0, [], 0, 0
        # 20 kill -9 moments: two inside a shard write, then moments drawn over
        # the whole run (start-up, units, the merge into results.h5). A run that
        # finishes before its moment is checked against the clean run and its
        # folder removed, so the next moments fall on a fresh grid again.
        for trial in range(20):
            env = dict(os.environ)
            # The first two trials, while most units are still to do, pause
            # every shard write 30 s with its file open and kill there.
            during_write = trial < 2
            if during_write:
                env["ZOOBENCH_FAULT_PAUSE_IN_SHARD_WRITE"] = "30"
            stale = set(glob.glob(os.path.join(shards, "*", "*.tmp.*")))  # the previous trial's, named by its pid
            log = open(os.path.join(tmp, f"trial{trial}.log"), "w")
            proc = subprocess.Popen(command(2, config, zoo, res), stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
            if during_write:
                fresh = lambda: set(glob.glob(os.path.join(shards, "*", "*.tmp.*"))) - stale  # noqa: E731
                deadline = time.time() + 120
                while time.time() < deadline and not fresh():
                    time.sleep(0.05)
                if fresh():
                    in_write += 1
            else:
                deadline = time.time() + rng.uniform(0.0, 1.1) * wall
                while time.time() < deadline and proc.poll() is None:
                    time.sleep(0.01)
            if proc.poll() is None:
                kills += 1
            kill_all(proc)
            log.close()
            # Whatever is on disk is complete: every shard opens and carries its
            # seconds, and a results.h5, once renamed into place, is whole.
            finished = glob.glob(os.path.join(shards, "*", "*.h5"))
            for path in finished:
                with h5py.File(path, "r") as fh:
                    self.assertIn("seconds", fh.attrs, path)
            merged = os.path.join(res, "tiny", "results.h5")
            if os.path.exists(merged):
                with h5py.File(merged, "r") as fh:
                    self.assertIn("units", fh)
            done_counts.append(len(finished))
            if proc.returncode == 0:
                finished_runs += 1
                self.assertSameUnitsAndValues(os.path.join(tmp, "clean"), res)
                shutil.rmtree(res)
        self.assertGreaterEqual(in_write, 2, "at least two kills inside a shard write")
        # A resumed run skips the units done before it and ends sooner than the
        # clean run the moments are drawn against: 14 to 16 of 20 kill a live
        # run here, depending on how the BLAS speed shifts work against start-up.
        self.assertGreaterEqual(kills, 12, f"most moments fell inside a run ({kills} of 20)")
        logs = ""
        for k in range(20):
            with open(os.path.join(tmp, f"trial{k}.log")) as fh:
                logs += fh.read()[-300:]
        self.assertTrue(any(0 < d < 12 for d in done_counts), f"kills left partial progress: {done_counts}\n{logs}")
        final = run(2, config, zoo, res)
        self.assertEqual(final.returncode, 0, final.stderr)
        self.assertSameUnitsAndValues(os.path.join(tmp, "clean"), res)

    def assertSameUnitsAndValues(self, clean, res):
        shards = os.path.join(res, "tiny", "shards")
        self.assertEqual(glob.glob(os.path.join(shards, "*", "*.tmp.*")), [], "half-written shards were removed")
        with h5py.File(os.path.join(clean, "tiny", "results.h5"), "r") as a, \
                h5py.File(os.path.join(res, "tiny", "results.h5"), "r") as b:
            ua, ub = table(a["units"]), table(b["units"])
            self.assertEqual(sorted(ua["unit"]), sorted(ub["unit"]))
            self.assertEqual(len(set(ub["unit"])), len(ub["unit"]), "no duplicate unit")
            for name, key in (("scores", ("model", "task", "selector")), ("finetune", ("model", "task", "lr"))):
                tb = table(b[name])
                rows = list(zip(*(tb[k] for k in key)))
                self.assertEqual(len(rows), len(set(rows)), f"duplicate rows in /{name}")
                ta = table(a[name])
                for col in ("value", "test_acc", "val_acc", "train_acc"):
                    if col in ta:
                        self.assertTrue(np.array_equal(ta[col], tb[col]), f"/{name}/{col} differs from the clean run")


class BadInput(zbtest.CliAssertions, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="zoobench-gridbad-")
        _, cls.zoo = tiny_zoo(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=self.tmp)
        self.results = os.path.join(self.dir, "results")

    def test_ranks_per_cell_must_divide_the_ranks(self):
        cfg = write_config(self.dir, **{"execution.ranks_per_cell": 3})
        r = run(2, cfg, self.zoo, self.results, timeout=120)
        self.assertOneError(r, 2, "execution.ranks_per_cell: 3 does not divide the 2 ranks")
        self.assertFalse(os.path.exists(self.results))

    def test_bad_config_is_one_line_from_every_rank(self):
        cfg = os.path.join(self.dir, "bad.yaml")
        with open(cfg, "w") as fh:
            fh.write("name: bad\nthreds: 2\n")
        r = run(2, cfg, self.zoo, self.results, timeout=120)
        self.assertOneError(r, 2, "unknown key 'threds'")

    def test_cuda_without_cuda(self):
        r = run(2, write_config(self.dir), self.zoo, self.results, "--device", "cuda", timeout=120)
        self.assertOneError(r, 2, "execution.device: cuda")
        self.assertFalse(os.path.exists(self.results))

    def test_unwritable_results_dir(self):
        blocker = os.path.join(self.dir, "a-file")
        open(blocker, "w").close()
        r = run(2, write_config(self.dir), self.zoo, os.path.join(blocker, "results"), timeout=120)
        self.assertOneError(r, 1, "cannot create the results folder", blocker)

    def test_more_ranks_than_units(self):
        with open(os.path.join(self.zoo, "manifest.yaml")) as fh:
            manifest = yaml.safe_load(fh)
        manifest["models"] = manifest["models"][:1]
        one = os.path.join(self.zoo, "one.yaml")
        with open(one, "w") as fh:
            yaml.safe_dump(manifest, fh)
        cfg = write_config(self.dir, name="small", selectors=["lfc"], **{"zoo.manifest": one, "finetune.lrs": [0.03],
                                                                         "finetune.epochs": 2})
        with open(cfg) as fh:
            c = yaml.safe_load(fh)
        c["tasks"] = c["tasks"][1:]
        with open(cfg, "w") as fh:
            yaml.safe_dump(c, fh)
        r = run(3, cfg, self.zoo, self.results, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("2 unit(s) to do for 3 group(s)", r.stderr)
        self.assertIn("no unit was left", r.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.results, "small", "results.h5")))

    def test_second_concurrent_run_and_changed_config(self):
        cfg = write_config(self.dir)
        env = dict(os.environ, ZOOBENCH_FAULT_PAUSE_IN_SHARD_WRITE="60")
        first = subprocess.Popen(command(2, cfg, self.zoo, self.results), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, env=env, start_new_session=True)
        try:
            deadline = time.time() + 120
            shards = os.path.join(self.results, "tiny", "shards")
            while time.time() < deadline and not glob.glob(os.path.join(shards, "*", "*.tmp.*")):
                time.sleep(0.05)
            r = run(2, cfg, self.zoo, self.results, timeout=120)
            self.assertOneError(r, 1, "is in use by another run", "pid ")
        finally:
            kill_all(first)
        # The owner died: its lock is stale, and a changed config is refused by name.
        changed = write_config(self.dir, **{"finetune.epochs": 7, "threads": 2, "extract.lgc_memory_mb": 64})
        r = run(2, changed, self.zoo, self.results, timeout=120)
        self.assertOneError(r, 2, "finetune.epochs (was 30, now 7)", "--fresh")
        self.assertNotIn("threads", r.stderr.split("zoobench: error: ")[1])
        self.assertNotIn("lgc_memory_mb", r.stderr.split("zoobench: error: ")[1])


if __name__ == "__main__":
    unittest.main()
