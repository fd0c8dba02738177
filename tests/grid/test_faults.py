"""Injected faults on the tiny grid, each ending with the exact unit set of a
clean run or a clear refusal, never silent loss: a unit that fails on one
rank (MPI_Abort takes the others down), one rank killed while the other
lives, shards damaged on disk before a resume, and a full disk (a real
tmpfs, where this machine lets root mount one) under a shard, results.h5
and a packed data set."""
import glob
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import unittest

import h5py
import numpy as np

from test_grid import ZOOBENCH, command, run, session_members, table, tiny_zoo

BAD_UNIT = "finetune/generic/opencv-digits/0.03"


def shards_of(results):
    return sorted(glob.glob(os.path.join(results, "tiny", "shards", "*", "*.h5")))


def temporaries(results):
    return glob.glob(os.path.join(results, "tiny", "shards", "*", "*.tmp.*"))


def zoobench_errors(stderr):
    return [line for line in stderr.splitlines() if line.startswith("zoobench: error: ")]


class Faults(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="zoobench-faults-")
        cls.config, cls.zoo = tiny_zoo(cls.tmp)
        cls.clean_dir = os.path.join(cls.tmp, "clean")
        r = run(2, cls.config, cls.zoo, cls.clean_dir)
        assert r.returncode == 0, r.stderr
        with h5py.File(os.path.join(cls.clean_dir, "tiny", "results.h5"), "r") as f:
            cls.clean = {name: table(f[name]) for name in ("units", "scores", "finetune")}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def folder(self):
        return tempfile.mkdtemp(dir=self.tmp)

    def assertSameAsClean(self, results):
        """The exact unit set of the clean run, no duplicates, the same values (1 thread: bit for bit)."""
        with h5py.File(os.path.join(results, "tiny", "results.h5"), "r") as f:
            units = table(f["units"])
            self.assertEqual(sorted(units["unit"]), sorted(self.clean["units"]["unit"]))
            self.assertEqual(len(set(units["unit"])), len(units["unit"]))
            for name, key, cols in (("scores", ("model", "task", "selector"), ("value",)),
                                    ("finetune", ("model", "task", "lr"), ("test_acc", "val_acc", "train_acc"))):
                got, want = table(f[name]), self.clean[name]
                order = lambda t: np.lexsort([t[k] for k in reversed(key)])  # noqa: E731
                for col in cols:
                    self.assertTrue(np.array_equal(got[col][order(got)], want[col][order(want)]), f"/{name}/{col}")
        self.assertEqual(temporaries(results), [], "no half-written shard left")

    # --- a failure inside a unit on one rank ------------------------------------------
    def test_a_failing_unit_aborts_every_rank_and_a_rerun_resumes(self):
        res = self.folder()
        env = dict(os.environ, ZOOBENCH_FAULT_FAIL_UNIT=BAD_UNIT)
        proc = subprocess.Popen(command(2, self.config, self.zoo, res), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env, start_new_session=True)
        try:
            _, stderr = proc.communicate(timeout=240)  # a rank left waiting for the failed one would hang here
        finally:
            for pid in session_members(proc.pid):
                os.kill(pid, signal.SIGKILL)
        # MPI_Abort(1): the launcher ends with the error's exit code (1: neither usage nor data).
        self.assertEqual(proc.returncode, 1, stderr)
        errors = zoobench_errors(stderr)
        self.assertEqual(len(errors), 1, stderr)
        self.assertIn(BAD_UNIT, errors[0])
        self.assertIn("injected", errors[0])
        self.assertNoRankLeft(proc)
        self.assertFalse(os.path.exists(os.path.join(res, "tiny", "shards", "finetune", "generic%2Fopencv-digits%2F0.03.h5")))
        for path in shards_of(res):
            with h5py.File(path, "r") as fh:
                self.assertIn("seconds", fh.attrs, path)
        again = run(2, self.config, self.zoo, res)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertSameAsClean(res)

    # --- one rank killed, the other alive -----------------------------------------------
    def test_a_killed_rank_ends_the_job_and_a_rerun_resumes(self):
        res = self.folder()
        # Every shard write pauses 20 s with its file open: both ranks are mid-unit when one dies.
        env = dict(os.environ, ZOOBENCH_FAULT_PAUSE_IN_SHARD_WRITE="20")
        with open(os.path.join(res, "log"), "w") as log:
            proc = subprocess.Popen(command(2, self.config, self.zoo, res), stdout=log, stderr=subprocess.STDOUT,
                                    env=env, start_new_session=True)
            try:
                deadline = time.time() + 180
                while time.time() < deadline and not temporaries(res):
                    time.sleep(0.05)
                self.assertTrue(temporaries(res), "a rank reached a shard write")
                ranks = [pid for pid in session_members(proc.pid) if self.comm(pid) == "zoobench"]
                self.assertEqual(len(ranks), 2, ranks)
                os.kill(ranks[1], signal.SIGKILL)
                t0 = time.time()
                proc.wait(timeout=60)  # bounded: the launcher ends the job, the other rank does not hang
                ended = time.time() - t0
            finally:
                for pid in session_members(proc.pid):
                    os.kill(pid, signal.SIGKILL)
                proc.wait(timeout=30)
        self.assertNotEqual(proc.returncode, 0)
        self.assertLess(ended, 60)
        self.assertNoRankLeft(proc)
        again = run(2, self.config, self.zoo, res)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertSameAsClean(res)

    def assertNoRankLeft(self, proc):
        # The launcher's last signals may still be on their way; a zombie
        # (killed, not yet reaped by init) is gone too.
        alive = lambda: [p for p in session_members(proc.pid) if self.comm(p) == "zoobench" and self.state(p) != "Z"]  # noqa: E731
        deadline = time.time() + 20
        while alive() and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual(alive(), [], "no rank outlives the job")

    @staticmethod
    def state(pid):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return "Z"

    @staticmethod
    def comm(pid):
        try:
            with open(f"/proc/{pid}/comm") as fh:
                return fh.read().strip()
        except OSError:
            return ""

    # --- shards damaged on disk after they were committed ------------------------------
    def test_damaged_shards_are_set_aside_and_recomputed(self):
        res = self.folder()
        first = run(2, self.config, self.zoo, res)
        self.assertEqual(first.returncode, 0, first.stderr)
        shards = shards_of(res)
        self.assertEqual(len(shards), 12)
        truncated, emptied, swapped = shards[0], shards[5], shards[9]
        with open(truncated, "r+b") as fh:
            fh.truncate(os.path.getsize(truncated) // 2)
        open(emptied, "wb").close()
        shutil.copy(shards[10], swapped)  # a readable shard that holds another unit
        os.remove(os.path.join(res, "tiny", "results.h5"))
        again = run(2, self.config, self.zoo, res)
        self.assertEqual(again.returncode, 0, again.stderr)
        warnings = [l for l in again.stderr.splitlines() if "is unreadable" in l]
        self.assertEqual(len(warnings), 3, again.stderr)
        for path, why in ((truncated, ""), (emptied, ""), (swapped, "does not hold unit")):
            (line,) = [w for w in warnings if f"'{path}'" in w]
            self.assertTrue(line.startswith("zoobench: warning: shard "), line)
            self.assertIn(why, line)
            self.assertIn("its unit runs again", line)
        self.assertEqual(len(glob.glob(os.path.join(res, "tiny", "broken-shards", "*", "*"))), 3)
        self.assertSameAsClean(res)
        for path in (truncated, emptied, swapped):
            with h5py.File(path, "r") as fh:
                self.assertIn("seconds", fh.attrs)

    # --- a full disk --------------------------------------------------------------------
    def tmpfs(self, size):
        mnt = tempfile.mkdtemp(dir=self.tmp)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mnt], capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest(f"cannot mount a tmpfs here ({r.stderr.strip()}): a full disk needs root")
        self.addCleanup(subprocess.run, ["umount", "-l", mnt], capture_output=True)
        return mnt

    def resize(self, mnt, size):
        r = subprocess.run(["mount", "-o", f"remount,size={size}", mnt], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)

    def single(self, *args):
        return subprocess.run([ZOOBENCH, *args], capture_output=True, text=True, timeout=300)

    def test_a_full_disk_under_shards_and_results(self):
        clean_shards = sum(os.path.getsize(p) for p in shards_of(self.clean_dir))
        results_h5 = os.path.getsize(os.path.join(self.clean_dir, "tiny", "results.h5"))
        # Room for about a third of the shards: the run fails mid-grid, inside HDF5 writes.
        mnt = self.tmpfs(clean_shards // 3)
        r = self.single("run", self.config, "--zoo-dir", self.zoo, "--results-dir", mnt, "--quiet")
        self.assertNotEqual(r.returncode, 0, r.stderr)
        errors = zoobench_errors(r.stderr)
        self.assertEqual(len(errors), 1, r.stderr)
        self.assertIn("No space left on device", errors[0])
        self.assertEqual(temporaries(mnt), [], "the failed shard's temporary file was removed")
        partial = shards_of(mnt)
        self.assertLess(len(partial), 12)
        for path in partial:
            with h5py.File(path, "r") as fh:
                self.assertIn("seconds", fh.attrs, path)
        # Room enough: the rerun resumes.
        self.resize(mnt, 4 * (clean_shards + results_h5))
        r = self.single("run", self.config, "--zoo-dir", self.zoo, "--results-dir", mnt, "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertSameAsClean(mnt)
        # Now results.h5 alone does not fit: reduce fails after opening it and leaves the old one out.
        exp = os.path.join(mnt, "tiny")
        os.remove(os.path.join(exp, "results.h5"))
        shutil.rmtree(os.path.join(exp, "tables"), ignore_errors=True)
        used = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(mnt) for f in fs)
        self.resize(mnt, used + results_h5 // 3 + 65536)
        before = sorted(os.path.relpath(os.path.join(d, f), mnt) for d, _, fs in os.walk(mnt) for f in fs)
        r = self.single("reduce", exp)
        self.assertNotEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(zoobench_errors(r.stderr)), 1, r.stderr)
        self.assertIn("results.h5", zoobench_errors(r.stderr)[0])
        after = sorted(os.path.relpath(os.path.join(d, f), mnt) for d, _, fs in os.walk(mnt) for f in fs)
        self.assertEqual(after, before, "nothing half-written: no results.h5, no temporary file")
        self.resize(mnt, 4 * (clean_shards + results_h5))
        r = self.single("reduce", exp)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertSameAsClean(mnt)

    def test_a_full_disk_under_a_packed_data_set(self):
        n = 3000  # about 3 MB packed, on 512 kB
        src = self.folder()
        rng = np.random.default_rng(0)
        with open(os.path.join(src, "images"), "wb") as fh:
            fh.write(bytes([0, 0, 8, 3]) + struct.pack(">III", n, 28, 28) + rng.integers(0, 256, n * 784, np.uint8).tobytes())
        with open(os.path.join(src, "labels"), "wb") as fh:
            fh.write(bytes([0, 0, 8, 1]) + struct.pack(">I", n) + bytes(i % 10 for i in range(n)))
        mnt = self.tmpfs("512k")
        r = self.single("data", "pack", "--idx", os.path.join(src, "images"), os.path.join(src, "labels"), "--name",
                        "big", "--data-dir", mnt)
        self.assertNotEqual(r.returncode, 0, r.stderr)
        errors = zoobench_errors(r.stderr)
        self.assertEqual(len(errors), 1, r.stderr)
        self.assertIn("big", errors[0])
        self.assertEqual(os.listdir(mnt), [], "nothing half-written")


if __name__ == "__main__":
    unittest.main()
