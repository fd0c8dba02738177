"""`zoobench score` end to end on a three-model zoo (the tiny config plus an
optdigits expert) and the real packed data: the table, --json, --list,
--save-arrays read back with h5py and every selector with a published
algorithm recomputed with numpy/scipy/scikit-learn (NCTI with scikit-learn's
LDA and the authors' shrinkage rule; three models, so its min-max over the
zoo compares a value, not an ordering), and bad input."""
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import reference  # noqa: E402
import zbtest  # noqa: E402

ZOOBENCH = os.environ.get("ZOOBENCH", "build/zoobench")
SOURCE_DIR = os.environ.get("ZB_SOURCE_DIR", ".")
DATA = os.environ.get("ZOOBENCH_DATA_DIR", "data")
TINY = os.path.join(SOURCE_DIR, "configs", "tiny.yaml")
EIGHTEEN = ["dds", "domain_similarity", "gbc", "hscore", "hscore_shrink", "knn", "leep", "lfc", "lgc",
            "linear_probe", "logme", "nce", "ncti", "nleep", "parc", "rsa", "sfda", "transrate"]
MODELS = ["mnist-cnn", "optdigits-cnn", "generic"]


def run(*args):
    return subprocess.run([ZOOBENCH, *args], capture_output=True, text=True, timeout=600)


class Score(zbtest.CliAssertions, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="zoobench-score-")
        zoo = os.path.join(cls.tmp, "zoo")
        with open(TINY) as fh:
            config = yaml.safe_load(fh)
        config["zoo"]["experts"].append({"name": "optdigits-cnn", "arch": "cnn", "width": 8, "domains": ["optdigits"]})
        three = os.path.join(cls.tmp, "three.yaml")
        with open(three, "w") as fh:
            yaml.safe_dump(config, fh)
        r = run("zoo", "train", three, "--zoo-dir", zoo, "--data-dir", DATA, "--quiet")
        assert r.returncode == 0, r.stderr
        cls.manifest = os.path.join(zoo, "manifest.yaml")
        cls.target = os.path.join(DATA, "opencv-digits.h5")
        cls.arrays = os.path.join(cls.tmp, "arrays.h5")
        cls.json_run = run("score", "--zoo", cls.manifest, "--data", cls.target, "--data-dir", DATA,
                           "--task-spec", "{shots: 12, seed: 3}", "--json", "--save-arrays", cls.arrays,
                           "--threads", "2")
        # 40 samples: 4 per class, so the linear probe runs 4 folds, not 5.
        cls.arrays_few = os.path.join(cls.tmp, "arrays-few.h5")
        cls.few_run = run("score", "--zoo", cls.manifest, "--data", cls.target, "--data-dir", DATA,
                          "--task-spec", "{shots: 4, seed: 5}", "--save-arrays", cls.arrays_few, "--threads", "2")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_list_names_every_selector_with_its_variant(self):
        r = run("score", "--list")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [l.split() for l in r.stdout.splitlines()[1:]]
        self.assertEqual([row[0] for row in rows], EIGHTEEN)
        self.assertTrue(all(len(row) >= 3 for row in rows))

    def test_json_ranks_every_model_by_every_selector(self):
        self.assertEqual(self.json_run.returncode, 0, self.json_run.stderr)
        j = json.loads(self.json_run.stdout)
        self.assertEqual(j["task"]["samples"], 120)  # 10 classes x 12 shots
        self.assertEqual(sorted(j["variants"]), EIGHTEEN)
        self.assertIn("m=4;K=4096;seed=0", j["variants"]["lgc"])
        self.assertIn("probe=generic", j["variants"]["rsa"])
        self.assertIn("centred", j["variants"]["rsa"])
        self.assertIn("floor-1e-4", j["variants"]["gbc"])
        self.assertIn("max(exp(-top32-pca-var),1e-10),svd-solver-at-floor", j["variants"]["ncti"])
        self.assertIn("k=min(5,smallest-class)", j["variants"]["linear_probe"])
        rows = j["scores"]
        self.assertEqual(len(rows), 3 * 18)
        for sel in EIGHTEEN:
            mine = [r for r in rows if r["selector"] == sel]
            self.assertTrue(all(np.isfinite(r["value"]) and r["seconds"] >= 0 for r in mine))
            best = max(mine, key=lambda r: r["value"])
            self.assertEqual(best["rank"], 1, sel)
        self.assertGreater(j["shared_seconds"]["probe_features"]["seconds"], 0)

    def test_table(self):
        r = run("score", "--zoo", self.manifest, "--data", self.target, "--selectors", "lfc,leep,knn",
                "--task-spec", "shots: 5", "--threads", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertIn("3 models x 3 selectors on 'opencv-digits' (10 classes, 50 samples)", lines[0])
        self.assertEqual(lines[1].split(), ["model", "lfc", "leep", "knn"])
        self.assertEqual({l.split()[0] for l in lines[2:5]}, {"mnist-cnn", "optdigits-cnn", "generic"})
        self.assertEqual(sorted(l.split()[2] for l in lines[2:5]), ["(1)", "(2)", "(3)"])
        self.assertTrue(lines[6].startswith("seconds"))
        per_model = {l.split()[0]: [float(v) for v in l.split()[1:]] for l in lines[7:11]}
        self.assertEqual(sorted(per_model), ["all", "generic", "mnist-cnn", "optdigits-cnn"])
        for k in range(3):
            parts = per_model["generic"][k] + per_model["mnist-cnn"][k] + per_model["optdigits-cnn"][k]
            self.assertAlmostEqual(per_model["all"][k], parts, delta=3e-3)

    def recompute(self, path, samples):
        """Every score in a --save-arrays file against its numpy form."""
        with h5py.File(path, "r") as f:
            t = f["scores"]
            table = {(m.decode(), s.decode()): v for m, s, v in zip(t["model"][:], t["selector"][:], t["value"][:])}
            self.assertEqual(len(table), 3 * 18)
            probe = f["_probe/features"][:].astype(np.float64)
            self.assertEqual(f["_probe"].attrs["model"], "generic")
            terms = {}
            for model in MODELS:
                g = f[model]
                x, y = g["features"][:].astype(np.float64), g["labels"][:]
                self.assertEqual(g["features"].dtype, np.float32)
                self.assertEqual(y.dtype, np.int64)
                self.assertEqual(x.shape[0], samples)
                p = g["source_probs"][:]
                np.testing.assert_allclose(p.sum(1), 1, rtol=1e-12)
                got = lambda s: table[(model, s)]  # noqa: E731
                rel = lambda want: 1e-6 * max(abs(want), 1e-12)  # noqa: E731
                with self.subTest(model=model, samples=samples):
                    self.assertAlmostEqual(got("lfc"), reference.lfc(x, y), delta=1e-9)
                    self.assertAlmostEqual(got("lgc"), reference.lfc(g["grad_sketch"][:], y), delta=1e-9)
                    self.assertAlmostEqual(got("leep"), reference.leep_from(p, y, 10), delta=1e-9)
                    self.assertAlmostEqual(got("nce"), reference.nce(p, y, 10), delta=1e-9)
                    self.assertAlmostEqual(got("hscore"), reference.hscore(x, y, 10), delta=1e-6 * abs(got("hscore")))
                    self.assertEqual(got("knn"), reference.knn(x, y))
                    want = reference.gbc(x, y, 10)
                    self.assertAlmostEqual(got("gbc"), want, delta=rel(want))
                    self.assertAlmostEqual(got("rsa"), reference.rsa(x, probe), delta=1e-9)
                    self.assertAlmostEqual(got("dds"), reference.dds(x, probe), delta=1e-9)
                    # Same folds (zoobench's rule, replayed in numpy), scikit-learn's lbfgs: the same
                    # accuracies, to one held-out prediction. Both fits stop at the 100 iterations of the
                    # definition before they converge (scikit-learn warns so), on iterates that differ
                    # (zoobench's products are float32), and a sample near a boundary may fall either way.
                    self.assertAlmostEqual(got("linear_probe"), reference.linear_probe(x, y, 10), delta=1 / len(y) + 1e-9)
                    ds = reference.domain_similarity(x, y, 10, g["source_class_means"][:], g["source_class_counts"][:])
                    self.assertAlmostEqual(got("domain_similarity"), ds, delta=1e-6)
                terms[model] = reference.ncti_terms(x, y)
            ncti = reference.ncti_zoo([terms[m] for m in MODELS])
            strictly_inside = 0
            for model, want in zip(MODELS, ncti):
                self.assertAlmostEqual(table[(model, "ncti")], want, delta=1e-6, msg=model)
                strictly_inside += -1 < want < 2 and want not in (0.0, 1.0)
            self.assertGreaterEqual(strictly_inside, 1, "NCTI compared orderings, not values")

    def test_saved_arrays_recompute_to_the_same_scores(self):
        self.assertEqual(self.json_run.returncode, 0, self.json_run.stderr)
        self.recompute(self.arrays, 120)

    def test_saved_arrays_recompute_with_fewer_samples_than_pca_components(self):
        self.assertEqual(self.few_run.returncode, 0, self.few_run.stderr)
        self.recompute(self.arrays_few, 40)

    def test_bad_input(self):
        r = run("score", "--zoo", self.manifest, "--data", self.target, "--selectors", "lfc,logmee")
        self.assertOnlyError(r, 2, "unknown selector 'logmee'", "linear_probe")
        r = run("score", "--zoo", self.manifest, "--data", self.target, "--task-spec", "{shots: 5, colour: red}")
        self.assertOnlyError(r, 2, "--task-spec", "colour")
        r = run("score", "--zoo", self.manifest, "--data", self.target, "--task-spec", "{shots: 5000}")
        self.assertOnlyError(r, 3, "5000")
        r = run("score", "--zoo", self.manifest, "--data", os.path.join(self.tmp, "nope.h5"))
        self.assertOnlyError(r, 3, "nope.h5")
        r = run("score", "--zoo", self.manifest)
        self.assertOnlyError(r, 2, "--data")
        # A feature extractor without a source head: LEEP cannot score it; nothing is written.
        ts = os.path.join(self.tmp, "ts")
        subprocess.run(["/usr/bin/python3", os.path.join(SOURCE_DIR, "tools", "export_torchscript.py"), ts],
                       check=True, capture_output=True)
        manifest = os.path.join(ts, "manifest.yaml")
        with open(manifest) as fh:
            doc = yaml.safe_load(fh)
        for e in doc["models"] if "models" in doc else doc["entries"]:
            e["logits_method"] = ""
        with open(manifest, "w") as fh:
            yaml.safe_dump(doc, fh)
        out = os.path.join(self.tmp, "bad-arrays.h5")
        r = run("score", "--zoo", manifest, "--data", os.path.join(DATA, "optdigits.h5"), "--selectors", "lfc,leep",
                "--save-arrays", out)
        self.assertOnlyError(r, 3, "model 'external-small'", "leep", "no source head")
        self.assertFalse(os.path.exists(out))
        r = run("score", "--zoo", manifest, "--data", os.path.join(DATA, "optdigits.h5"), "--selectors", "lfc,knn")
        self.assertEqual(r.returncode, 0, r.stderr)  # without logits-based selectors it scores
        r = run("score", "--zoo", manifest, "--data", os.path.join(DATA, "optdigits.h5"), "--selectors", "rsa")
        self.assertOnlyError(r, 2, "rsa", "probe model", "generic", "--probe NAME", "external-small")
        r = run("score", "--zoo", manifest, "--data", os.path.join(DATA, "optdigits.h5"), "--selectors", "rsa",
                "--probe", "nope")
        self.assertOnlyError(r, 2, "no entry 'nope'", "external-small")
        # --probe names the probe; LGC differentiates a TorchScript entry (its features, having no head).
        r = run("score", "--zoo", manifest, "--data", os.path.join(DATA, "optdigits.h5"), "--selectors",
                "rsa,lgc", "--probe", "external-small", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        j = json.loads(r.stdout)
        self.assertIn("probe=external-small", j["variants"]["rsa"])
        self.assertIn("external-small=dense:body.4.weight", j["variants"]["lgc"])
        self.assertTrue(all(math.isfinite(s["value"]) for s in j["scores"]))

    def test_degenerate_model_ranks_last_and_saturated_scores_rank_nothing(self):
        # A TorchScript entry whose features are constant up to float rounding
        # (relative spread about 1e-6, as MobileNet-V3-Small's at 32 x 32), beside
        # the tiny zoo; 3 shots give N = 30 samples, so the CNNs' 32 features span
        # them and H-score is C - 1 by construction.
        import torch

        class Constant(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.proj = torch.nn.Parameter(torch.randn(16, 16, generator=torch.Generator().manual_seed(0)))
                self.head = torch.nn.Linear(16, 3)

            @torch.jit.export
            def features(self, x: torch.Tensor) -> torch.Tensor:
                pooled = torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)  # 16 values that follow the digit
                return 2.0 + 1e-6 * (pooled @ self.proj)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.head(self.features(x))

        zoo = os.path.dirname(self.manifest)
        torch.jit.script(Constant()).save(os.path.join(zoo, "constant.pt"))
        with open(self.manifest) as fh:
            doc = yaml.safe_load(fh)
        with open(os.path.join(zoo, "constant.pt"), "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        doc["models"].append(dict(name="constant", format="torchscript", kind="external", weights="constant.pt", sha256=digest,
                                  in_channels=1, input_size=32, mean=[0.5], std=[0.25], source_domains=["synthetic"],
                                  source_classes=["a", "b", "c"], features_method="features", logits_method="forward"))
        manifest = os.path.join(zoo, "with-constant.yaml")
        with open(manifest, "w") as fh:
            yaml.safe_dump(doc, fh)
        sels = "lfc,knn,hscore,sfda,ncti,lgc,leep"
        args = ["score", "--zoo", manifest, "--data", self.target, "--selectors", sels, "--task-spec", "{shots: 3}",
                "--threads", "2"]
        r = run(*args, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("zoobench: warning: model 'constant'", r.stderr)
        self.assertIn("the features are constant up to rounding", r.stderr)
        rows = {(s["model"], s["selector"]): s for s in json.loads(r.stdout)["scores"]}
        for sel in ("lfc", "knn", "hscore", "sfda", "ncti"):
            row = rows[("constant", sel)]
            self.assertIsNone(row["value"], sel)
            self.assertEqual(row["rank"], 4, sel)
            self.assertTrue(row["note"].startswith("degenerate features (relative spread"), row)
        # LEEP reads the source probabilities; LGC the gradient sketches, which
        # vary with the input here (d features / d proj = 1e-6 x pooled): both are kept.
        for sel in ("leep", "lgc"):
            self.assertTrue(math.isfinite(rows[("constant", sel)]["value"]), sel)
            self.assertNotIn("note", rows[("constant", sel)])
        for m in ("mnist-cnn", "optdigits-cnn"):
            row = rows[(m, "hscore")]
            self.assertAlmostEqual(row["value"], 9.0, delta=1e-5)
            self.assertIsNone(row["rank"])
            self.assertIn("D = 32 features >= N - 1 = 29 samples: H-score = C - 1 for any model", row["note"])
        self.assertNotIn("note", rows[("generic", "hscore")])  # 16 features do not span 30 samples...
        self.assertIsNone(rows[("generic", "hscore")]["rank"])  # ...but H-score ranks nothing on this task
        self.assertEqual(sorted(rows[(m, "lfc")]["rank"] for m in MODELS), [1, 2, 3])
        r = run(*args)
        self.assertEqual(r.returncode, 0, r.stderr)
        table = {l.split()[0]: l for l in r.stdout.splitlines()[2:6]}
        self.assertIn("degenerate (4)", table["constant"])
        self.assertIn("9.0000 (-)", table["mnist-cnn"])
        self.assertIn("cannot rank ((-): the score saturates on this task, or n/a: cannot score a model; "
                      "degenerate: ranked last)", r.stdout)
        self.assertIn("  hscore, mnist-cnn: D = 32 features >= N - 1 = 29 samples", r.stdout)

    def test_a_score_over_its_memory_limit_is_refused_naming_a_max_per_class_that_fits(self):
        # PARC and RSA hold N^2/2 pairs: at 1 MiB, 25 shots x 10 classes is too many.
        def scores(shots):
            r = run("score", "--zoo", self.manifest, "--data", self.target, "--selectors", "parc,rsa,knn",
                    "--task-spec", f"{{shots: {shots}, seed: 3}}", "--score-memory-mb", "1", "--json", "--threads", "2")
            self.assertEqual(r.returncode, 0, r.stderr)
            return r, {(row["model"], row["selector"]): row for row in json.loads(r.stdout)["scores"]}
        r, rows = scores(25)
        fits = []
        for m in MODELS:
            for sel in ("parc", "rsa"):
                row = rows[(m, sel)]
                self.assertIsNone(row["value"], row)
                self.assertRegex(row["note"], rf"^cannot score: selector '{sel}' would need \d+\.\d GB at N = 250 samples, "
                                 r"over extract.score_memory_mb = 1 MiB; extract.max_per_class: \d+ would fit "
                                 r"\(N <= \d+ over 10 classes\)$")
                fits.append(int(row["note"].split("max_per_class: ")[1].split()[0]))
            self.assertTrue(math.isfinite(rows[(m, "knn")]["value"]))  # kNN works in blocks: not limited
        self.assertEqual(r.stderr.count("zoobench: warning: task 'opencv-digits': selector 'parc' would need"), 1, r.stderr)
        # The named max_per_class is exact: at it every model is scored, one more is refused.
        _, rows = scores(min(fits))
        self.assertTrue(all(math.isfinite(rows[(m, s)]["value"]) for m in MODELS for s in ("parc", "rsa")), rows)
        _, rows = scores(max(fits) + 1)
        self.assertTrue(all(rows[(m, s)]["value"] is None for m in MODELS for s in ("parc", "rsa")), rows)
        r = run("score", "--zoo", self.manifest, "--data", self.target, "--score-memory-mb", "0")
        self.assertOneError(r, 2, "--score-memory-mb: at least 1, got 0")


if __name__ == "__main__":
    unittest.main()
