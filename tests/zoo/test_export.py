"""tools/export_torchscript.py --torchvision: what it writes, and the one-line
errors for a weights file that disagrees with the command line."""
import os
import subprocess
import tempfile
import unittest

import h5py
import torch
import torchvision
import yaml

TOOL = os.path.join(os.environ.get("ZB_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..")),
                    "tools", "export_torchscript.py")


def export(out, *args):
    return subprocess.run(["/usr/bin/python3", TOOL, out, *args], capture_output=True, text=True)


class Export(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        torch.manual_seed(0)
        m = torchvision.models.resnet18(num_classes=10)
        cls.weights = os.path.join(cls.tmp.name, "r18-10.pt")
        torch.save({"state_dict": m.state_dict(), "classes": [f"c{i}" for i in range(10)]}, cls.weights)
        cls.bad_classes = os.path.join(cls.tmp.name, "r18-9names.pt")
        torch.save({"state_dict": m.state_dict(), "classes": [f"c{i}" for i in range(9)]}, cls.bad_classes)
        cls.reference = m.eval()

    def assertFailsCleanly(self, r, out, *needles):
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        for n in needles:
            self.assertIn(n, lines[0])
        self.assertFalse(os.path.exists(out), "nothing may be written")

    def test_weights_file_classes_and_outputs(self):
        out = os.path.join(self.tmp.name, "ok")
        r = export(out, "--torchvision", "resnet18", "--weights", self.weights, "--input-size", "48")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(out, "manifest.yaml")) as fh:
            text = fh.read()
        self.assertIn("weights file", text)  # provenance in the comments
        e = yaml.safe_load(text)["models"][0]
        self.assertEqual((e["format"], e["input_size"], e["in_channels"]), ("torchscript", 48, 3))
        self.assertEqual(e["source_classes"], [f"c{i}" for i in range(10)])
        with h5py.File(os.path.join(out, "reference.h5")) as f:
            x = torch.from_numpy(f["resized"][...])
            mean = torch.tensor(e["mean"]).view(1, 3, 1, 1)
            std = torch.tensor(e["std"]).view(1, 3, 1, 1)
            with torch.no_grad():
                want = self.reference((x - mean) / std)
            self.assertLess((torch.from_numpy(f["logits"][...]) - want).abs().max().item(), 1e-5)
            self.assertEqual(f["features"].shape, (6, 512))
        # One pass for both outputs, named in the manifest, equal to the two methods.
        self.assertEqual(e["features_and_logits_method"], "features_and_logits")
        m = torch.jit.load(os.path.join(out, "model.pt"))
        x = torch.rand(3, 3, 48, 48)
        with torch.no_grad():
            feats, logits = m.features_and_logits(x)
            self.assertTrue(torch.allclose(feats, m.features(x), atol=1e-6) and torch.allclose(logits, m(x), atol=1e-6))

    def test_random_initialisation_is_said(self):
        out = os.path.join(self.tmp.name, "random")
        r = export(out, "--torchvision", "mobilenet_v3_small", "--input-size", "32", "--seed", "3")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(out, "manifest.yaml")) as fh:
            text = fh.read()
        self.assertIn("random initialisation, seed 3", text)
        self.assertNotIn("source_classes", yaml.safe_load(text)["models"][0])

    def test_bad_input(self):
        out = os.path.join(self.tmp.name, "bad")
        r = export(out, "--torchvision", "resnet18", "--weights", self.weights, "--num-classes", "5")
        self.assertFailsCleanly(r, out, self.weights, "5", "10")
        r = export(out, "--torchvision", "resnet18", "--weights", self.bad_classes)
        self.assertFailsCleanly(r, out, "9", "10")
        r = export(out, "--torchvision", "resnet19")
        self.assertFailsCleanly(r, out, "resnet19", "resnet18")
        r = export(out, "--torchvision", "resnet18", "--weights", os.path.join(self.tmp.name, "none.pt"))
        self.assertFailsCleanly(r, out, "none.pt")


if __name__ == "__main__":
    unittest.main()
