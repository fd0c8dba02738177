"""`zoobench score --selectors all` on a zoo as a user brings it: torchvision's
ResNet-18 and MobileNet-V3-Small exported by tools/export_torchscript.py
(seeded random weights) beside one zoobench entry, in one manifest. The
saved arrays are recomputed in numpy (LFC, LGC from the saved sketch, LogME,
LEEP), and the features of the two torchvision models equal PyTorch's own
output on the same images, resized and normalised as torchvision would."""
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
import torch
import torchvision
import torchvision.transforms as T
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402
from selectors_baseline import logme  # noqa: E402  (reference puts bench/python on the path)

ZOOBENCH = os.environ.get("ZOOBENCH", "build/zoobench")
SOURCE_DIR = os.environ.get("ZB_SOURCE_DIR", ".")
DATA = os.environ.get("ZOOBENCH_DATA_DIR", "data")
TINY = os.path.join(SOURCE_DIR, "configs", "tiny.yaml")
EXPORT = os.path.join(SOURCE_DIR, "tools", "export_torchscript.py")
SIZE = 64  # enlarged from the packed 32 x 32, so the resize is on the path
CLASSES = 10  # optdigits
TORCHVISION = {"resnet18": ("resnet18", 0), "mobilenet": ("mobilenet_v3_small", 1)}
MODELS = ["mnist-cnn", *TORCHVISION]


def run(*args):
    return subprocess.run([ZOOBENCH, *args], capture_output=True, text=True, timeout=900)


def calibrated_weights(arch, seed, path):
    """Seeded random weights whose batch-norm statistics were measured on
    random images, as training would have left them: with the initial
    statistics (mean 0, variance 1) MobileNet-V3's activations shrink layer
    by layer until its features are constant up to rounding."""
    torch.manual_seed(seed)
    m = getattr(torchvision.models, arch)(num_classes=7)
    for mod in m.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.reset_running_stats()
            mod.momentum = None  # a cumulative average over the calibration batches
    m.train()
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for _ in range(4):
            m(torch.rand(32, 3, SIZE, SIZE, generator=g))
    torch.save({"state_dict": m.state_dict(), "classes": [f"{arch}-c{i}" for i in range(7)]}, path)


class TorchvisionZoo(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="zoobench-torchvision-")
        r = run("zoo", "train", TINY, "--zoo-dir", os.path.join(cls.tmp, "tiny"), "--data-dir", DATA, "--quiet")
        assert r.returncode == 0, r.stderr
        with open(os.path.join(cls.tmp, "tiny", "manifest.yaml")) as fh:
            entries = [e for e in yaml.safe_load(fh)["models"] if e["name"] == "mnist-cnn"]
        entries[0]["weights"] = "tiny/" + entries[0]["weights"]
        for name, (arch, seed) in TORCHVISION.items():
            weights = os.path.join(cls.tmp, f"{name}-weights.pt")
            calibrated_weights(arch, seed, weights)
            r = subprocess.run(["/usr/bin/python3", EXPORT, os.path.join(cls.tmp, name), "--torchvision", arch,
                                "--weights", weights, "--input-size", str(SIZE), "--name", name],
                               capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            with open(os.path.join(cls.tmp, name, "manifest.yaml")) as fh:
                e = yaml.safe_load(fh)["models"][0]
            e["weights"] = f"{name}/model.pt"
            entries.append(e)
        # ResNet-18 differentiates a small tensor named in the manifest (the
        # default, its last 3 x 3 convolution, has 2.4 M weights: slow for a test);
        # MobileNet keeps the default, the weight of the linear layer its features come from.
        cls.module = {n: torch.jit.load(os.path.join(cls.tmp, n, "model.pt")).eval() for n in TORCHVISION}
        cls.lgc_parameter = next(n for n, _ in cls.module["resnet18"].named_parameters()
                                 if n.endswith("layer4.0.downsample.0.weight"))
        entries[1]["lgc_parameter"] = cls.lgc_parameter
        cls.manifest = os.path.join(cls.tmp, "manifest.yaml")
        with open(cls.manifest, "w") as fh:
            yaml.safe_dump({"zoobench_manifest": 1, "models": entries}, fh)
        cls.target = os.path.join(DATA, "optdigits.h5")
        cls.arrays = os.path.join(cls.tmp, "arrays.h5")
        cls.score = run("score", "--zoo", cls.manifest, "--data", cls.target, "--selectors", "all",
                        "--probe", "mnist-cnn", "--task-spec", "{shots: 6, seed: 2}", "--json",
                        "--save-arrays", cls.arrays, "--threads", "2")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_every_selector_scores_every_model(self):
        self.assertEqual(self.score.returncode, 0, self.score.stderr)
        j = json.loads(self.score.stdout)
        self.assertEqual(j["task"]["samples"], 6 * CLASSES)
        self.assertEqual(len(j["variants"]), 18)
        self.assertIn("probe=mnist-cnn", j["variants"]["rsa"])
        self.assertIn(f"resnet18=dense:{self.lgc_parameter}", j["variants"]["lgc"])
        self.assertRegex(j["variants"]["lgc"], r"mobilenet=dense:[\w.]*classifier\.0\.weight")
        rows = {(s["model"], s["selector"]): s for s in j["scores"]}
        self.assertEqual(len(rows), 3 * 18)
        for (model, sel), row in rows.items():
            with self.subTest(model=model, selector=sel):
                self.assertGreaterEqual(row["seconds"], 0)
                if sel == "domain_similarity" and model in TORCHVISION:
                    # Their source domain (ImageNet) is not packed here: no value, and
                    # Domain Similarity ranks nothing on this zoo.
                    self.assertIsNone(row["value"])
                    self.assertIsNone(row["rank"])
                    self.assertRegex(row["note"], r"^cannot score: its source domain 'imagenet' is not packed \(.*imagenet\.h5\)$")
                    continue
                # D = 512 or 1,024 features on 60 samples: H-score and SFDA may
                # saturate (a note, no rank), but nothing is degenerate here.
                if row["value"] is None or not math.isfinite(row["value"]):
                    self.fail(f"{model}/{sel}: {row}")
                self.assertNotIn("degenerate", row.get("note", ""))
        self.assertIsNone(rows[("mnist-cnn", "domain_similarity")]["rank"])
        self.assertTrue(math.isfinite(rows[("mnist-cnn", "domain_similarity")]["value"]))
        self.assertIn("zoobench: warning: model 'resnet18': its source domain 'imagenet' is not packed", self.score.stderr)

    def test_features_are_pytorchs_own(self):
        self.assertEqual(self.score.returncode, 0, self.score.stderr)
        with h5py.File(self.target, "r") as d, h5py.File(self.arrays, "r") as f:
            images = d["images"]
            for name in TORCHVISION:
                idx = f[name]["indices"][:]
                order = np.argsort(idx)  # h5py reads increasing indices
                x = np.empty((len(idx),) + images.shape[1:], np.uint8)
                x[order] = images[np.sort(idx)]
                x = torch.from_numpy(x).float().div(255).expand(-1, 3, -1, -1)
                with open(self.manifest) as fh:
                    entry = yaml.safe_load(fh)["models"][MODELS.index(name)]
                x = T.Resize((SIZE, SIZE), interpolation=T.InterpolationMode.BILINEAR, antialias=True)(x)
                x = T.Normalize(entry["mean"], entry["std"])(x)
                # How far float32 rounding of the input alone moves this model's
                # outputs: random MobileNet weights on digits amplify it (features
                # up to ~400), ResNet-18's stay near 1e-6 of their scale.
                jitter = x * (1 + 1.2e-7 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)))
                with torch.no_grad():
                    want = self.module[name].features(x).numpy()
                    logits = self.module[name](x).double()
                    moved = np.abs(self.module[name].features(jitter).numpy() - want).max()
                    moved_p = (torch.softmax(self.module[name](jitter).double(), 1) - torch.softmax(logits, 1)).abs().max()
                probs = torch.softmax(logits, 1).numpy()
                got = f[name]["features"][:]
                with self.subTest(model=name):
                    self.assertEqual(got.shape, want.shape)
                    self.assertGreater(want.std(0).mean(), 1e-3 * np.abs(want).mean())  # not degenerate
                    self.assertLess(np.abs(got - want).max(), 1e-5 * max(np.abs(want).max(), 1.0) + 4 * moved)
                    # zoobench takes both from the exported features_and_logits, one pass
                    self.assertLess(np.abs(f[name]["source_probs"][:] - probs).max(), 1e-5 + 4 * float(moved_p))

    def test_saved_arrays_recompute_in_numpy(self):
        self.assertEqual(self.score.returncode, 0, self.score.stderr)
        with h5py.File(self.arrays, "r") as f:
            t = f["scores"]
            table = {(m.decode(), s.decode()): v for m, s, v in zip(t["model"][:], t["selector"][:], t["value"][:])}
            for model in MODELS:
                g = f[model]
                x, y = g["features"][:].astype(np.float64), g["labels"][:]
                sketch, p = g["grad_sketch"][:].astype(np.float64), g["source_probs"][:]
                with self.subTest(model=model):
                    self.assertEqual(sketch.shape, (6 * CLASSES, 4096))
                    self.assertAlmostEqual(table[(model, "lfc")], reference.lfc(x, y), delta=1e-9)
                    self.assertAlmostEqual(table[(model, "lgc")], reference.lfc(sketch, y), delta=1e-9)
                    self.assertAlmostEqual(table[(model, "leep")], reference.leep_from(p, y, CLASSES), delta=1e-9)
                    # Both iterate LogME's fixed point to a tolerance: on D = 1,024
                    # features of N = 60 samples they stop 1e-5 apart.
                    want = logme(x, y, CLASSES)
                    self.assertAlmostEqual(table[(model, "logme")], want, delta=1e-4 * max(abs(want), 1.0))


if __name__ == "__main__":
    unittest.main()
