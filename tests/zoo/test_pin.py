"""The trust rules (README, "The model zoo": Trust): `zoo pin` writes each
file's SHA-256 into a hand-made manifest's own text and keeps everything else
byte for byte; `score` loads only pinned files inside the manifest's folder
unless --allow-outside-zoo or ZOOBENCH_ALLOW_OUTSIDE_ZOO=1 allows a zoo kept
elsewhere. Run by ctest (zoo.pin)."""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import zbtest  # noqa: E402

ZOOBENCH = os.path.abspath(os.environ.get("ZOOBENCH", "build/zoobench"))
SOURCE_DIR = os.path.abspath(os.environ.get("ZB_SOURCE_DIR", "."))
DATA = os.environ.get("ZOOBENCH_DATA_DIR", os.path.join(SOURCE_DIR, "data"))
ENV = {k: v for k, v in os.environ.items() if k not in ("ZOOBENCH_ALLOW_OUTSIDE_ZOO", "ZB_PIN_ROOT")}

# Two entries written by hand: comments, a ${VARIABLE}, a blank sha256 and none at all.
MANIFEST = """# my zoo (hand-written)
zoobench_manifest: 1
models:
  # the first one
  - name: a
    format: torchscript   # exported by tools/export_torchscript.py
    weights: ${ZB_PIN_ROOT}/a/model.pt
    sha256:    # fill me
    in_channels: 1
    mean: [0.5]
    std: [0.25]
  - weights: b/model.pt
    name: b
    format: torchscript
    in_channels: 1
    mean: [0.5]
    std: [0.25]
"""


def digest(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def zb(*args, cwd, env=None):
    return subprocess.run([ZOOBENCH, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**ENV, **(env or {})})


class Pin(zbtest.CliAssertions, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="zoobench-pin-")
        cls.models = os.path.join(cls.tmp, "exported")
        for name in ("a", "b"):
            subprocess.run(["/usr/bin/python3", os.path.join(SOURCE_DIR, "tools", "export_torchscript.py"),
                            os.path.join(cls.models, name), "--channels", "1", "--classes", "10", "--name", name],
                           check=True, capture_output=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def zoo(self, name, eol="\n"):
        """A zoo folder with the two models and the hand-written manifest."""
        root = os.path.join(self.tmp, name)
        for m in ("a", "b"):
            os.makedirs(os.path.join(root, m))
            shutil.copy(os.path.join(self.models, m, "model.pt"), os.path.join(root, m, "model.pt"))
        path = os.path.join(root, "manifest.yaml")
        with open(path, "w", newline="") as fh:
            fh.write(MANIFEST.replace("\n", eol))
        return root, path

    def test_pin_writes_the_digests_and_nothing_else(self):
        root, path = self.zoo("zoo-lf")
        env = {"ZB_PIN_ROOT": root}
        r = zb("zoo", "pin", "--check", path, cwd=root, env=env)
        self.assertOneError(r, 1, path, "2 unpinned and 0 changed of 2 entries")
        self.assertIn("a: unpinned", r.stdout)
        # Score refuses the unpinned zoo before it loads anything.
        r = zb("score", "--zoo", path, "--data", os.path.join(DATA, "optdigits.h5"), "--selectors", "lfc", cwd=root, env=env)
        self.assertOneError(r, 2, "zoo entry 'a'", "no sha256", "zoobench zoo pin " + path)

        r = zb("zoo", "pin", path, cwd=root, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("a: pinned", r.stdout)
        self.assertIn("(updated)", r.stdout)
        with open(path, newline="") as fh:
            text = fh.read()
        da, db = digest(os.path.join(root, "a", "model.pt")), digest(os.path.join(root, "b", "model.pt"))
        want = MANIFEST.replace("    sha256:    # fill me\n", f"    sha256: {da}    # fill me\n").replace(
            "  - weights: b/model.pt\n", f"  - weights: b/model.pt\n    sha256: {db}\n")
        self.assertEqual(text, want)

        # A second pin changes nothing, not even the file's time; --check agrees.
        before = os.stat(path).st_mtime_ns
        r = zb("zoo", "pin", path, cwd=root, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("(unchanged)", r.stdout)
        self.assertEqual(os.stat(path).st_mtime_ns, before)
        r = zb("zoo", "pin", path, "--check", cwd=root, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("b: pinned", r.stdout)

        # The pinned zoo scores; a changed file is refused until it is pinned again.
        score = ["score", "--zoo", path, "--data", os.path.join(DATA, "optdigits.h5"), "--selectors", "lfc",
                 "--threads", "1", "--task-spec", "{shots: 5}"]
        r = zb(*score, cwd=root, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(root, "b", "model.pt"), "ab") as fh:
            fh.write(b"\0")
        r = zb(*score, cwd=root, env=env)
        self.assertOneError(r, 3, "zoo entry 'b'", "SHA-256", "differs from the manifest")
        r = zb("zoo", "pin", path, "--check", cwd=root, env=env)
        self.assertOneError(r, 1, "0 unpinned and 1 changed of 2 entries")
        with open(path, newline="") as fh:
            self.assertEqual(fh.read(), want)  # --check wrote nothing
        r = zb("zoo", "pin", path, cwd=root, env=env)
        self.assertIn("b: re-pinned (the file changed)", r.stdout)
        with open(path, newline="") as fh:
            self.assertEqual(fh.read(), want.replace(db, digest(os.path.join(root, "b", "model.pt"))))

    def test_pin_keeps_crlf_line_ends(self):
        root, path = self.zoo("zoo-crlf", eol="\r\n")
        r = zb("zoo", "pin", path, cwd=root, env={"ZB_PIN_ROOT": root})
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(path, "rb") as fh:
            data = fh.read()
        self.assertEqual(data.count(b"\r\n"), MANIFEST.count("\n") + 1)  # one line added
        self.assertEqual(data.replace(b"\r\n", b"").count(b"\n"), 0)
        self.assertIn(b"    sha256: " + digest(os.path.join(root, "b", "model.pt")).encode() + b"\r\n", data)

    def test_a_zoo_outside_the_manifests_folder(self):
        # The manifest lives in configs/, the models elsewhere (the paper zoo's layout).
        root, _ = self.zoo("zoo-out")
        configs = os.path.join(self.tmp, "configs")
        os.makedirs(configs)
        path = os.path.join(configs, "zoo.yaml")
        with open(path, "w") as fh:
            fh.write(MANIFEST.replace("b/model.pt", "${ZB_PIN_ROOT}/b/model.pt"))
        env = {"ZB_PIN_ROOT": root}
        r = zb("zoo", "pin", path, cwd=self.tmp, env=env)
        self.assertOneError(r, 2, "zoo entry 'a'", os.path.join(root, "a", "model.pt"), "outside the zoo's folder",
                            "--allow-outside-zoo")
        r = zb("zoo", "pin", path, "--allow-outside-zoo", cwd=self.tmp, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        score = ["score", "--zoo", path, "--data", os.path.join(DATA, "optdigits.h5"), "--selectors", "lfc",
                 "--threads", "1", "--task-spec", "{shots: 5}"]
        r = zb(*score, cwd=self.tmp, env=env)
        self.assertOneError(r, 2, "zoo entry 'a'", "outside the zoo's folder")
        r = zb(*score, "--allow-outside-zoo", cwd=self.tmp, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = zb(*score, cwd=self.tmp, env={**env, "ZOOBENCH_ALLOW_OUTSIDE_ZOO": "1"})
        self.assertEqual(r.returncode, 0, r.stderr)
        r = zb(*score, cwd=self.tmp, env={**env, "ZOOBENCH_ALLOW_OUTSIDE_ZOO": "yes"})
        self.assertOneError(r, 2, "ZOOBENCH_ALLOW_OUTSIDE_ZOO='yes'", "expected 1 or 0")

    def test_links_and_dots_do_not_lead_out(self):
        root, path = self.zoo("zoo-links")
        env = {"ZB_PIN_ROOT": root}
        outside = os.path.realpath(os.path.join(self.tmp, "outside.pt"))
        shutil.copy(os.path.join(root, "b", "model.pt"), outside)
        os.remove(os.path.join(root, "b", "model.pt"))
        os.symlink(outside, os.path.join(root, "b", "model.pt"))
        r = zb("zoo", "pin", path, cwd=root, env=env)
        self.assertOneError(r, 2, "zoo entry 'b'", "outside the zoo's folder", "resolve to '" + outside + "'")
        # A link that stays inside the folder is fine, and so is `..` that comes back in.
        os.remove(os.path.join(root, "b", "model.pt"))
        os.symlink(os.path.join("..", "a", "model.pt"), os.path.join(root, "b", "model.pt"))
        with open(path) as fh:
            text = fh.read()
        with open(path, "w") as fh:
            fh.write(text.replace("${ZB_PIN_ROOT}/a/model.pt", "b/../a/model.pt"))
        r = zb("zoo", "pin", path, cwd=root, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
