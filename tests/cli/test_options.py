"""Options and outcomes the README promises that no other test exercised:
every command's --help, `data show --json` against h5py, `--idx-test`,
`config check --print` as a fixed point, `version --bench`, the
pthread-OpenBLAS warning and exit code 1. Run by ctest with ZOOBENCH set."""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import zbtest  # noqa: E402

ZOOBENCH = os.environ.get("ZOOBENCH", "build/zoobench")
SOURCE_DIR = os.environ.get("ZB_SOURCE_DIR", ".")
COMMANDS = (["version"], ["data", "pack"], ["data", "show"], ["data", "tasks"], ["zoo", "train"], ["zoo", "pin"], ["score"], ["run"],
            ["reduce"], ["plan"], ["submit"], ["status"], ["config", "explain"], ["config", "check"])


def run(*args, env=None, cwd=None):
    e = dict(os.environ)
    e.pop("ZOOBENCH_DATA_DIR", None)
    e.update(env or {})
    return subprocess.run([ZOOBENCH, *args], capture_output=True, text=True, env=e, cwd=cwd, timeout=300)


def idx(dims, data):
    return bytes([0, 0, 0x08, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data)


class Options(zbtest.CliAssertions, unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="zoobench-options-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, *p):
        return os.path.join(self.tmp, *p)

    def write_idx(self, name, n, seed):
        rng = np.random.default_rng(seed)
        with open(self.path(name + "-images"), "wb") as f:
            f.write(idx([n, 28, 28], rng.integers(0, 256, n * 28 * 28, dtype=np.uint8)))
        with open(self.path(name + "-labels"), "wb") as f:
            f.write(idx([n], [i % 4 for i in range(n)]))
        return self.path(name + "-images"), self.path(name + "-labels")

    def test_every_command_lists_in_help_and_has_its_own(self):
        top = run("--help")
        self.assertEqual(top.returncode, 0, top.stderr)
        for cmd in COMMANDS:
            self.assertRegex(top.stdout, r"\n  " + re.escape(" ".join(cmd)) + r" +\S", cmd)
            r = run(*cmd, "--help")
            self.assertEqual(r.returncode, 0, (cmd, r.stderr))
            self.assertTrue(r.stdout.startswith("usage: zoobench " + " ".join(cmd)), (cmd, r.stdout[:200]))
            self.assertIn("--help", r.stdout, cmd)
            self.assertEqual(r.stderr, "", cmd)
        # Every command the top-level help lists is one of these.
        listed = re.findall(r"^  ([a-z]+(?: [a-z]+)?)  ", top.stdout, re.M)
        self.assertEqual(sorted(listed), sorted(" ".join(c) for c in COMMANDS))

    def test_idx_test_files_become_the_test_split_and_show_json_agrees_with_h5py(self):
        train, test = self.write_idx("train", 40, 1), self.write_idx("test", 12, 2)
        out = self.path("data")
        r = run("data", "pack", "--idx", *train, "--idx-test", *test, "--name", "four", "--data-dir", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        with h5py.File(os.path.join(out, "four.h5"), "r") as h:
            split, labels = h["split"][:], h["labels"][:]
            self.assertEqual(h["images"].shape, (52, 1, 32, 32))
            # The given files decide the split: 40 training images then 12 test images, no split of its own.
            self.assertEqual(split.tolist(), [0] * 40 + [1] * 12)
            self.assertEqual(labels.tolist(), [i % 4 for i in range(40)] + [i % 4 for i in range(12)])
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in h.attrs.items()}
        shown = run("data", "show", "four", "--data-dir", out, "--json")
        self.assertEqual(shown.returncode, 0, shown.stderr)
        (j,) = json.loads(shown.stdout)
        self.assertEqual((j["domain"], j["images"], j["train"], j["test"], j["classes"]), ("four", 52, 40, 12, 4))
        self.assertEqual((j["channels"], j["height"], j["width"]), (1, 32, 32))
        for key in ("source_package", "source_version", "license", "split_rule"):
            self.assertEqual(j[key], attrs[key], key)
        self.assertEqual(os.path.realpath(j["path"]), os.path.realpath(os.path.join(out, "four.h5")))
        # Without names, every packed file of the folder, in name order.
        self.write_idx("more", 8, 3)
        r = run("data", "pack", "--idx", self.path("more-images"), self.path("more-labels"), "--name", "alpha",
                "--data-dir", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        every = json.loads(run("data", "show", "--data-dir", out, "--json").stdout)
        self.assertEqual([d["domain"] for d in every], ["alpha", "four"])
        self.assertOnlyError(run("data", "pack", "--idx", *train, "--idx-test", test[0], "--name", "x", "--data-dir",
                               self.path("d2")), 2, "--idx-test takes IMAGES LABELS")

    def test_config_check_print_is_the_resolved_config_and_a_fixed_point(self):
        tiny = os.path.join(SOURCE_DIR, "configs", "tiny.yaml")
        r = run("config", "check", tiny, "--print")
        self.assertEqual(r.returncode, 0, r.stderr)
        resolved = yaml.safe_load(r.stdout)
        with open(tiny) as f:
            given = yaml.safe_load(f)
        # What the file says is kept, strings as strings for any YAML reader
        # (class names "3", "5", "8" quoted); what it leaves out is filled
        # with the documented defaults.
        self.assertEqual(resolved["tasks"][1]["classes"], ["3", "5", "8"])
        self.assertEqual(resolved["finetune"]["lrs"], given["finetune"]["lrs"])
        self.assertNotIn("results_dir", given)
        self.assertEqual(resolved["results_dir"], "results")
        self.assertEqual(resolved["tasks"][0]["val_fraction"], 0.2)
        self.assertEqual(resolved["execution"]["ranks_per_cell"], 1)
        explained = run("config", "explain").stdout
        for key in ("results_dir", "execution.ranks_per_cell", "tasks[].val_fraction", "finetune.batch_size"):
            self.assertIn(key, explained)
        self.assertIn("batch_size", resolved["finetune"])
        again = self.path("resolved.yaml")
        with open(again, "w") as f:
            f.write(r.stdout)
        r2 = run("config", "check", again, "--print")
        self.assertEqual(r2.returncode, 0, r2.stderr)
        self.assertEqual(r2.stdout, r.stdout, "the resolved config resolves to itself")
        plain = run("config", "check", tiny)
        self.assertEqual(plain.stdout.strip(), f"{tiny}: ok (experiment 'tiny', 2 task(s))")

    def test_version_bench_times_a_checked_matmul(self):
        r = run("version", "--bench", "--threads", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.search(r"^matmul +([0-9.]+) GFLOP/s \(1024\^2 float, 1 threads\)$", r.stdout, re.M)
        self.assertIsNotNone(m, r.stdout)
        self.assertGreater(float(m.group(1)), 0)
        self.assertNotIn("WRONG RESULT", r.stdout)
        self.assertNotIn("matmul", run("version").stdout, "timed only when asked")

    def test_pthread_openblas_is_named_and_warned_about(self):
        # Debian installs the pthread OpenBLAS under .../openblas-pthread/; the
        # warning keys on that location. Put the installed OpenBLAS's libblas
        # there (a real copy: the check resolves symbolic links).
        src = "/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3"
        if not os.path.exists(src):
            self.skipTest("libopenblas0-openmp is not installed")
        where = self.path("openblas-pthread")
        os.makedirs(where)
        shutil.copy(src, where)
        r = run("version", env={"LD_LIBRARY_PATH": where})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"[{os.path.realpath(where)}/libblas.so.3]", r.stdout)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith("zoobench: warning: the pthread OpenBLAS keeps its own thread pool"), r.stderr)
        self.assertIn("libopenblas0-openmp", lines[0])
        self.assertEqual(run("version").stderr, "", "no warning on the OpenMP OpenBLAS")

    def test_exit_code_1_for_an_error_that_is_neither_usage_nor_data(self):
        with open(self.path("afile"), "w") as f:
            f.write("a file where a folder should be\n")
        train = self.write_idx("train", 8, 1)
        r = run("data", "pack", "--idx", *train, "--name", "x", "--data-dir", self.path("afile", "sub"))
        self.assertOnlyError(r, 1, "cannot create directory", "afile/sub")
        with open(self.path("afile")) as f:
            self.assertEqual(f.read(), "a file where a folder should be\n")


if __name__ == "__main__":
    unittest.main()
