"""End to end: `zoobench run configs/tiny.yaml` (2 models, 2 tasks) on the real
packed data, its HDF5 tables read back with h5py, the quality bars of the
walking skeleton, determinism, resumable zoo training and bad input."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import h5py
import numpy as np
import yaml

ZOOBENCH = os.environ.get("ZOOBENCH", "build/zoobench")
SOURCE_DIR = os.environ.get("ZB_SOURCE_DIR", ".")
TINY = os.path.join(SOURCE_DIR, "configs", "tiny.yaml")


def run(*args):
    return subprocess.run([ZOOBENCH, *args], capture_output=True, text=True, timeout=600)


def table(group):
    return {k: (group[k].asstr()[:] if group[k].dtype.kind == "O" else group[k][:]) for k in group}


class TinyRun(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="zoobench-run-")
        cls.zoo = os.path.join(cls.tmp, "zoo")
        cls.results = os.path.join(cls.tmp, "results")
        # Not --quiet: test_progress_lines reads what a user watching a log sees.
        cls.first = run("run", TINY, "--zoo-dir", cls.zoo, "--results-dir", cls.results)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_results_tables(self):
        self.assertEqual(self.first.returncode, 0, self.first.stderr)
        self.assertIn("Spearman rho", self.first.stdout)
        with h5py.File(os.path.join(self.results, "tiny", "results.h5"), "r") as f:
            for key in ("schema_version", "zoobench_version", "git_sha", "created_utc", "config_yaml", "versions"):
                self.assertIn(key, f.attrs)
            self.assertIn("tasks:", f.attrs["config_yaml"])
            cells, scores, ft, gt = (table(f[k]) for k in ("cells", "scores", "finetune", "ground_truth"))
            self.assertEqual(sorted(cells), ["model", "seed", "shot", "task"])
            self.assertEqual(len(cells["model"]), 4)  # 2 models x 2 tasks
            self.assertEqual(sorted(scores), ["host", "model", "note", "rank", "seconds", "seed", "selector",
                                              "shot", "started_utc", "task", "unit_seconds", "value"])
            self.assertEqual(len(scores["value"]), 4 * 4)  # x 4 selectors
            self.assertEqual(sorted(set(scores["selector"])), ["knn", "leep", "lfc", "lgc"])
            self.assertTrue(np.isfinite(scores["value"]).all())
            self.assertEqual(set(scores["note"]), {""})  # no degenerate features, no saturated score here
            self.assertEqual(f["scores"].attrs["variant.lfc"], "pearson-global-mean-gram-free")
            # LGC's value depends on the sketch: m, K and the seed are part of its variant.
            self.assertEqual(f["scores"].attrs["variant.lgc"], "ntk-trace-kronecker-sketch;m=2;K=256;seed=0")
            for col in ("lr", "epochs", "val_acc", "test_acc", "seconds", "ranks", "chosen"):
                self.assertIn(col, ft)
            self.assertEqual(len(ft["lr"]), 4 * 2)  # x 2 learning rates
            self.assertEqual(int(ft["chosen"].sum()), 4)
            self.assertEqual(len(gt["test_acc"]), 4)
            self.assertTrue((gt["oracle_test_acc"] >= gt["test_acc"]).all())
            feats = f["features/mnist-cnn/opencv-digits/features"]
            self.assertEqual(feats.dtype, np.float32)
            self.assertEqual(feats.shape, (100, 32))  # 10 shots x 10 classes, D = 4 x width 8
            self.assertEqual(f["features/generic/optdigits-3way/labels"].shape, (30,))
            self.assertEqual(len(table(f["tables/spearman"])["rho"]), 2 * 4)

    def test_plan_counts_the_measured_seconds(self):
        """`zoobench plan` on the finished experiment: every unit measured, the
        cost is the shards' own seconds, and the schedule simulation is printed."""
        self.assertEqual(self.first.returncode, 0, self.first.stderr)
        r = run("plan", TINY, "--zoo-dir", self.zoo, "--results-dir", self.results, "--ranks", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout
        self.assertIn("grid: 2 zoo entries x 2 tasks = 4 cells; 2 learning rates {0.01, 0.03}", out)
        self.assertIn("units: 4 score, 8 finetune = 12", out)
        self.assertIn("all 12 units measured", out)
        self.assertNotIn("missing", out)
        seconds = 0.0
        for kind in ("score", "finetune"):
            folder = os.path.join(self.results, "tiny", "shards", kind)
            for name in os.listdir(folder):
                with h5py.File(os.path.join(folder, name), "r") as f:
                    seconds += f.attrs["seconds"]
        m = re.search(r"\(([0-9]+) rank-seconds", out)
        self.assertIsNotNone(m, out)
        self.assertAlmostEqual(float(m.group(1)), seconds, delta=1.0)
        m = re.search(r"2 ranks: makespan .*utilisation ([0-9.]+) % \(dynamic\)", out)
        self.assertIsNotNone(m, out)
        self.assertGreater(float(m.group(1)), 50.0)

    def test_reduce_the_real_experiment(self):
        """`zoobench reduce` on the run's experiment folder: merged again, tables in results.h5 and as CSV."""
        self.assertEqual(self.first.returncode, 0, self.first.stderr)
        exp = os.path.join(self.results, "tiny")
        r = run("reduce", exp, "--print", "--resamples", "200")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("10-shot: mean over tasks and seeds", r.stdout)
        with h5py.File(os.path.join(exp, "results.h5"), "r") as f:
            self.assertEqual(f.attrs["schema_version"], 4)
            self.assertEqual(sorted(table(f["models"])["kind"]), ["expert", "generic"])
            corr = table(f["tables/correlations"])
            self.assertEqual(len(corr["spearman"]), 2 * 4)  # 2 tasks x 4 selectors
            # With two models every defined Spearman is +1 or -1, and Kendall agrees with it.
            for rho, tau in zip(corr["spearman"], corr["kendall"]):
                if np.isfinite(rho):
                    self.assertAlmostEqual(abs(rho), 1.0)
                    self.assertAlmostEqual(rho, tau)
            self.assertEqual(len(table(f["tables/ground_truth_checks"])["task"]), 2)
        for name in ("correlations", "summary", "zoo_gain", "costs", "ground_truth_checks"):
            self.assertTrue(os.path.exists(os.path.join(exp, "tables", name + ".csv")), name)

    def test_reduce_an_unfinished_run(self):
        """Shards missing (one fine-tune lr of one cell, the score unit of another): the done cells are reduced."""
        self.assertEqual(self.first.returncode, 0, self.first.stderr)
        exp = os.path.join(self.tmp, "unfinished")
        shutil.copytree(os.path.join(self.results, "tiny"), exp)
        os.remove(os.path.join(exp, "results.h5"))
        shards = os.path.join(exp, "shards")
        os.remove(os.path.join(shards, "finetune", "generic%2Fopencv-digits%2F0.03.h5"))
        os.remove(os.path.join(shards, "score", "mnist-cnn%2Foptdigits-3way.h5"))
        r = run("reduce", exp, "--resamples", "200")
        self.assertEqual(r.returncode, 0, r.stderr)
        for task in ("opencv-digits", "optdigits-3way"):
            self.assertIn(f"zoobench: note: task '{task}': 1 of 2 cells are not done yet; reduced the 1 that are",
                          r.stderr)
        with h5py.File(os.path.join(exp, "results.h5"), "r") as f:
            cells = table(f["cells"])
            self.assertEqual(sorted(zip(cells["model"], cells["task"])),
                             [("generic", "optdigits-3way"), ("mnist-cnn", "opencv-digits")])
            self.assertEqual(list(table(f["tasks"])["missing_cells"]), [1, 1])
            self.assertEqual(len(table(f["ground_truth"])["test_acc"]), 2)
            self.assertEqual(len(table(f["units"])["unit"]), 12 - 2)
            # One model per task: no correlation is defined.
            self.assertTrue(np.isnan(table(f["tables/correlations"])["spearman"]).all())

    def test_merge_refuses_a_shard_of_another_experiment(self):
        self.assertEqual(self.first.returncode, 0, self.first.stderr)
        exp = os.path.join(self.tmp, "foreign")
        shutil.copytree(os.path.join(self.results, "tiny"), exp)
        before = os.path.getmtime(os.path.join(exp, "results.h5"))
        with open(os.path.join(exp, "experiment.yaml"), "a") as fh:
            fh.write("# another experiment's identity\n")
        r = run("reduce", exp)
        self.assertEqual(r.returncode, 3, r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("written for another experiment", lines[0])
        self.assertIn(os.path.join(exp, "shards"), lines[0])
        self.assertEqual(os.path.getmtime(os.path.join(exp, "results.h5")), before, "results.h5 untouched")
        self.assertEqual([n for n in os.listdir(exp) if ".tmp" in n], [], "nothing half-written")

    def test_fine_tuning_beats_chance_on_every_target(self):
        with h5py.File(os.path.join(self.results, "tiny", "results.h5"), "r") as f:
            gt = table(f["ground_truth"])
        chance = {"opencv-digits": 1 / 10, "optdigits-3way": 1 / 3}
        for task, acc in zip(gt["task"], gt["test_acc"]):
            self.assertGreater(acc, chance[task] + 0.2, f"{task}: {acc:.2f} vs chance {chance[task]:.2f}")

    def test_experts_beat_chance_on_their_source(self):
        with open(os.path.join(self.zoo, "manifest.yaml")) as fh:
            models = yaml.safe_load(fh)["models"]
        self.assertEqual([m["name"] for m in models], ["mnist-cnn", "generic"])
        for m in models:
            chance = 1 / len(m["source_classes"])
            self.assertGreater(m["source_test_acc"], 3 * chance, m["name"])
            self.assertEqual(len(m["sha256"]), 64)
            self.assertIn("arch:", m["train_config"])
        self.assertEqual(models[1]["source_domains"], ["mnist", "optdigits"])
        self.assertEqual(models[1]["kind"], "generic")

    def test_progress_lines(self):
        # A log (not a terminal) gets one line per step: "[stage] k/N  elapsed T  ETA T  what".
        line = re.compile(r"^\[([^\]]+)\] (\d+)/(\d+)  elapsed (\d+\.\ds|\d+m\d\ds)  ETA (\d+\.\ds|\d+m\d\ds)  ?(.*)$")
        stages = {}
        for text in self.first.stderr.splitlines():
            self.assertNotIn("\r", text, "no terminal rewrites in a log")
            m = line.match(text)
            if m:
                stages.setdefault(m.group(1), []).append((int(m.group(2)), int(m.group(3)), m.group(5)))
        # One stage per trained model (3 epochs each) and one for the grid's units, each counted 1..N.
        self.assertEqual(sorted(stages), ["units", "zoo generic", "zoo mnist-cnn"], self.first.stderr[-2000:])
        for stage, steps in stages.items():
            total = steps[0][1]
            self.assertEqual([k for k, _, _ in steps], list(range(1, total + 1)), stage)
            self.assertEqual({n for _, n, _ in steps}, {total}, stage)
            self.assertIn(steps[-1][2], ("0.0s",), f"{stage}: the last step has nothing left")
        self.assertEqual(stages["zoo mnist-cnn"][0][1], 3)
        plan = json.load(open(os.path.join(self.results, "tiny", "plan.json")))
        self.assertEqual(stages["units"][0][1], len(plan["units"]))

    def test_rerun_retrains_nothing(self):
        weights = os.path.join(self.zoo, "mnist-cnn.pt")
        before = os.stat(weights).st_mtime_ns
        r = run("zoo", "train", TINY, "--zoo-dir", self.zoo, "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.count("up to date, kept"), 2, r.stdout)
        self.assertEqual(os.stat(weights).st_mtime_ns, before)

    def test_force_retrains_every_entry_and_rewrites_the_manifest(self):
        zoo = os.path.join(self.tmp, "zoo-force")
        shutil.copytree(self.zoo, zoo)
        weights = {m: os.path.join(zoo, m + ".pt") for m in ("mnist-cnn", "generic")}
        before = {m: os.stat(p).st_mtime_ns for m, p in weights.items()}
        r = run("zoo", "train", TINY, "--zoo-dir", zoo, "--force", "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(re.findall(r"^(mnist-cnn|generic) +source test accuracy .*\(trained in ", r.stdout, re.M)), 2,
                         r.stdout)
        self.assertNotIn("kept", r.stdout)
        with open(os.path.join(zoo, "manifest.yaml")) as f:
            manifest = {m["name"]: m for m in yaml.safe_load(f)["models"]}
        for m, p in weights.items():
            self.assertGreater(os.stat(p).st_mtime_ns, before[m], f"{m} was retrained")
            with open(p, "rb") as f:
                self.assertEqual(manifest[m]["sha256"], hashlib.sha256(f.read()).hexdigest(), m)
        self.assertFalse([f for f in os.listdir(zoo) if ".tmp" in f], "no temporary files left")
        again = run("zoo", "train", TINY, "--zoo-dir", zoo, "--quiet")
        self.assertEqual(again.stdout.count("up to date, kept"), 2, again.stdout)

    def test_deterministic_at_one_thread(self):
        outs = []
        for k in range(2):
            res = os.path.join(self.tmp, f"det{k}")
            r = run("run", TINY, "--zoo-dir", self.zoo, "--results-dir", res, "--threads", "1", "--quiet")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotIn("ETA", r.stderr, "--quiet prints no progress")
            outs.append(h5py.File(os.path.join(res, "tiny", "results.h5"), "r"))
        a, b = outs
        for model in ("mnist-cnn", "generic"):
            for task in ("opencv-digits", "optdigits-3way"):
                for arr in ("features", "source_logits", "grad_sketch"):
                    key = f"features/{model}/{task}/{arr}"
                    self.assertTrue(np.array_equal(a[key][:], b[key][:]), key)
        self.assertTrue(np.array_equal(a["scores/value"][:], b["scores/value"][:]))
        self.assertTrue(np.array_equal(a["ground_truth/test_acc"][:], b["ground_truth/test_acc"][:]))


class BadInput(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="zoobench-bad-")
        self.results = os.path.join(self.tmp, "results")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def config(self, text):
        path = os.path.join(self.tmp, "exp.yaml")
        with open(path, "w") as fh:
            fh.write(text)
        return path

    def assertFailsCleanly(self, r, code, *needles):
        self.assertEqual(r.returncode, code, r.stderr)
        last = r.stderr.strip().splitlines()[-1]
        self.assertTrue(last.startswith("zoobench: error: "), r.stderr)
        for n in needles:
            self.assertIn(n, last)
        left = [f for _, _, fs in os.walk(self.results) for f in fs] if os.path.exists(self.results) else []
        self.assertEqual(left, [], "nothing half-written in results/")

    def tiny_zoo(self):
        zoo = os.path.join(self.tmp, "zoo")
        r = run("zoo", "train", TINY, "--zoo-dir", zoo, "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        return zoo

    def test_changed_and_missing_weights(self):
        zoo = self.tiny_zoo()
        with open(os.path.join(zoo, "generic.pt"), "ab") as fh:
            fh.write(b"tampered")
        r = run("run", TINY, "--zoo-dir", zoo, "--results-dir", self.results, "--quiet")
        self.assertFailsCleanly(r, 3, "zoo entry 'generic'", "SHA-256")
        os.remove(os.path.join(zoo, "generic.pt"))
        manifest = os.path.join(zoo, "manifest.yaml")
        cfg = self.config(f"name: bad\ntasks: [{{dataset: optdigits, shots: 5}}]\nzoo: {{manifest: {manifest}}}\n")
        r = run("run", cfg, "--results-dir", self.results, "--quiet")
        self.assertFailsCleanly(r, 3, "zoo entry 'generic'", "is missing")

    def test_torchscript_of_the_wrong_shape(self):
        ts = os.path.join(self.tmp, "ts")
        subprocess.run(["/usr/bin/python3", os.path.join(SOURCE_DIR, "tools", "export_torchscript.py"), ts,
                        "--wrong-shape", "--name", "wrong-export"], check=True, capture_output=True)
        cfg = self.config(f"name: bad\ntasks: [{{dataset: optdigits, shots: 5}}]\n"
                          f"zoo: {{manifest: {os.path.join(ts, 'manifest.yaml')}}}\nselectors: [lfc]\n")
        r = run("run", cfg, "--results-dir", self.results, "--quiet")
        self.assertFailsCleanly(r, 3, "zoo entry 'wrong-export'", "features returned")

    def test_torchscript_zoo_runs(self):
        ts = os.path.join(self.tmp, "ts")
        subprocess.run(["/usr/bin/python3", os.path.join(SOURCE_DIR, "tools", "export_torchscript.py"), ts],
                       check=True, capture_output=True)
        cfg = self.config(f"name: ts\ntasks: [{{dataset: optdigits, shots: 5, test_per_class: 5}}]\n"
                          f"zoo: {{manifest: {os.path.join(ts, 'manifest.yaml')}}}\n"
                          "finetune: {epochs: 2, lrs: [0.01]}\nselectors: [lfc, leep, knn, domain_similarity]\n")
        r = run("run", cfg, "--results-dir", self.results, "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        # Its source domain ('synthetic') is not packed: Domain Similarity cannot score it, and the run goes on.
        self.assertIn("zoobench: warning: model 'external-small': its source domain 'synthetic' is not packed", r.stderr)
        with h5py.File(os.path.join(self.results, "ts", "results.h5"), "r") as f:
            self.assertEqual(f["features/external-small/optdigits/features"].shape, (50, 16))
            scores = table(f["scores"])
            ds = scores["selector"] == "domain_similarity"
            self.assertTrue(np.isnan(scores["value"][ds]).all())
            self.assertTrue(scores["note"][ds][0].startswith("cannot score: its source domain 'synthetic' is not packed"))
            self.assertTrue(np.isfinite(scores["value"][~ds]).all())
            self.assertIn("synthetic", f["source_domain/external-small"].attrs["unavailable"])
            self.assertNotIn("class_means", f["source_domain/external-small"])

    def test_every_selector_in_a_run(self):
        zoo = self.tiny_zoo()
        out = os.path.join(self.tmp, "all-results")
        cfg = self.config(f"name: all\ntasks: [{{dataset: optdigits, shots: 8, test_per_class: 10}}]\n"
                          f"zoo: {{manifest: {os.path.join(zoo, 'manifest.yaml')}}}\n"
                          "finetune: {epochs: 2, lrs: [0.01]}\nextract: {sketch_dim: 256}\nselectors: [all]\n")
        r = run("run", cfg, "--results-dir", out, "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        with h5py.File(os.path.join(out, "all", "results.h5"), "r") as f:
            scores = table(f["scores"])
            self.assertEqual(len(scores["value"]), 2 * 18)
            self.assertTrue(np.isfinite(scores["value"]).all())
            self.assertTrue((scores["seconds"] > 0).all())
            self.assertEqual(len([k for k in f["scores"].attrs if k.startswith("variant.")]), 18)
            ncti = scores["value"][scores["selector"] == "ncti"]
            self.assertTrue(((ncti >= -1) & (ncti <= 2)).all())  # three terms min-max normalised over the zoo
            shared = table(f["shared_costs"])
            self.assertEqual(sorted(shared["what"]), ["probe_features", "source_class_means", "source_class_means"])
            self.assertEqual(f["features/_probe/optdigits"].attrs["probe_model"], "generic")
            self.assertEqual(f["source_domain/generic/class_means"].dtype, np.float64)

    def test_too_many_shots_and_one_class(self):
        zoo = self.tiny_zoo()
        cfg = self.config("name: bad\ntasks:\n  - {dataset: optdigits, name: greedy, shots: 500}\n"
                          f"zoo: {{manifest: {os.path.join(zoo, 'manifest.yaml')}}}\n")
        r = run("run", cfg, "--results-dir", self.results, "--quiet")
        self.assertFailsCleanly(r, 3, "task 'greedy'", "asks for 500 shots")
        cfg = self.config("name: bad\ntasks:\n  - {dataset: optdigits, name: lonely, classes: ['7']}\n")
        r = run("run", cfg, "--results-dir", self.results, "--quiet")
        self.assertFailsCleanly(r, 2, "tasks[0].classes", "at least 2 classes")
        cfg = self.config("name: bad\ntasks: [{dataset: optdigits}]\nselectors: [lfc, logmee]\n")
        r = run("run", cfg, "--results-dir", self.results, "--quiet")
        self.assertFailsCleanly(r, 2, "unknown selector 'logmee'", "leep")


if __name__ == "__main__":
    unittest.main()
