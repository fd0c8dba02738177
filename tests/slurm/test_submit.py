"""`zoobench submit` on a real Slurm (tests/slurm/cluster.sh: Debian's slurmctld,
slurmd and munge on this machine): configs/tiny.yaml as prepare -> grid ->
reduce, the grid as a job array sharing units through claim files or by
static subsets, as one MPI job (srun --mpi=pmix; mpirun over two nodes); a
failing unit cancels the reduce and `zoobench status` names it; scancel in
the middle and a resubmission finish with no cell twice; USR1 before the
time limit requeues the grid, which resumes; an over-large request is
refused at submit time with Slurm's message and nothing submitted; values
that reach the scripts are quoted. Skipped (77) where no Slurm can start."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np
import yaml

ZOOBENCH = os.environ.get("ZOOBENCH", "build/zoobench")
SOURCE_DIR = os.environ.get("ZB_SOURCE_DIR", ".")
HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(SOURCE_DIR, "configs", "tiny.yaml")
CELLS = 4  # tiny: 2 zoo entries x 2 tasks
UNITS = 12  # 4 score + 4 cells x 2 lrs


if os.geteuid() != 0 or not shutil.which("slurmctld") or not shutil.which("munged"):
    print("skipped: needs root and Debian's slurmctld, slurmd, slurm-client and munge (tools/setup)", file=sys.stderr)
    sys.exit(77)


def sh(*args, timeout=120, **kw):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kw)


class Cluster:
    def __init__(self, folder, nodes=1):
        self.folder = folder
        r = sh("bash", os.path.join(HERE, "cluster.sh"), "up", folder, "--nodes", str(nodes), timeout=120)
        if r.returncode == 77:
            print(r.stdout + r.stderr, file=sys.stderr)
            sys.exit(77)
        if r.returncode != 0:
            raise RuntimeError("cluster.sh up: " + r.stdout + r.stderr)
        m = re.search(r"export SLURM_CONF=(\S+)", r.stdout)
        os.environ["SLURM_CONF"] = m.group(1)
        self.cpus = int(sh("sinfo", "-h", "-o", "%c").stdout.split()[0])

    def down(self):
        sh("bash", os.path.join(HERE, "cluster.sh"), "down", self.folder, timeout=120)


def job_state(job):
    out = sh("scontrol", "--oneliner", "show", "job", job).stdout
    return re.findall(r"JobState=(\S+)", out), out


def wait_gone(job, timeout=600):
    """Waits for a job (every task of an array) to leave the queue; its final states."""
    end = time.time() + timeout
    while time.time() < end:
        if not sh("squeue", "-h", "-j", job).stdout.strip():
            break
        time.sleep(0.5)
    else:
        raise AssertionError("job %s still queued after %d s: %s" % (job, timeout, sh("squeue").stdout))
    return job_state(job)


class Submit(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="zoobench-slurm-")
        cls.cluster = Cluster(os.path.join(cls.root, "cluster"))
        # Every job runs as root: mpirun inside them must be told it may.
        os.environ["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        os.environ["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"

    @classmethod
    def tearDownClass(cls):
        cls.cluster.down()
        shutil.rmtree(cls.root, ignore_errors=True)

    def setUp(self):
        # A working folder whose name a shell would split and expand: the
        # scripts must quote it.
        self.work = tempfile.mkdtemp(prefix="camp aign $(touch PWNED) 'q", dir=self.root)
        self.zoo = os.path.join(self.root, "zoo-tiny")  # trained once, shared by the tests

    def config(self, name, **change):
        with open(TINY) as fh:
            cfg = yaml.safe_load(fh)
        cfg["name"] = name
        cfg["threads"] = 1
        cfg["zoo"]["dir"] = self.zoo
        cfg["results_dir"] = os.path.join(self.work, "results")
        cfg.update(change)
        path = os.path.join(self.work, name + ".yaml")
        with open(path, "w") as fh:
            yaml.safe_dump(cfg, fh)
        return path

    def submit(self, config, *extra, expect=0):
        r = sh(ZOOBENCH, "submit", config, *extra, cwd=self.work, timeout=300)
        self.assertEqual(r.returncode, expect, r.stdout + r.stderr)
        return r

    def jobs(self, name):
        with open(os.path.join(self.work, "jobs", name, "jobs.json")) as fh:
            return json.load(fh)["jobs"]

    def logs(self, name):
        text = ""
        for f in sorted(glob.glob(os.path.join(glob.escape(self.work), "jobs", name, "logs", "*"))):
            with open(f, errors="replace") as fh:
                text += "--- %s\n%s" % (os.path.basename(f), fh.read())
        return text

    def assertComplete(self, name):
        """Every cell merged exactly once; the reduce wrote its tables."""
        results = os.path.join(self.work, "results", name)
        with h5py.File(os.path.join(results, "results.h5"), "r") as f:
            gt = f["ground_truth"]
            cells = list(zip(gt["model"].asstr()[:], gt["task"].asstr()[:]))
            self.assertEqual(len(cells), CELLS, cells)
            self.assertEqual(len(set(cells)), CELLS, cells)
            ft = f["finetune"]
            runs = list(zip(ft["model"].asstr()[:], ft["task"].asstr()[:], ft["lr"][:]))
            self.assertEqual(len(runs), 2 * CELLS)
            self.assertEqual(len(set(runs)), 2 * CELLS)
            self.assertTrue(np.all(np.isfinite(ft["test_acc"][:])))
        self.assertTrue(os.path.exists(os.path.join(results, "tables", "correlations.csv")))
        self.assertEqual(glob.glob(os.path.join(glob.escape(results), "claims", "*")), [])
        return results

    def shard_run_ids(self, name):
        ids = []
        for f in glob.glob(os.path.join(glob.escape(self.work), "results", name, "shards", "*", "*.h5")):
            with h5py.File(f, "r") as h:
                ids.append(h.attrs["run_id"] if isinstance(h.attrs["run_id"], str) else h.attrs["run_id"].decode())
        return ids

    def tearDown(self):
        self.assertEqual(glob.glob(os.path.join(self.root, "**", "PWNED"), recursive=True), [],
                         "a path reached a shell unquoted")

    # ------------------------------------------------------------------------------------------
    def test_array_with_claims(self):
        cfg = self.config("arr")
        r = self.submit(cfg, "--mode", "array", "--shards", "2")
        self.assertIn("submitted arr", r.stdout)
        jobs = self.jobs("arr")
        for key in ("prepare", "grid", "reduce"):
            states, out = wait_gone(jobs[key])
            self.assertEqual(set(states), {"COMPLETED"}, key + ": " + out + self.logs("arr"))
        self.assertComplete("arr")
        # Both array tasks were workers of this grid; every shard is from one of them.
        self.assertIn("grid worker 0 of 2", self.logs("arr"))
        self.assertIn("grid worker 1 of 2", self.logs("arr"))
        st = sh(ZOOBENCH, "status", cfg, cwd=self.work)
        self.assertEqual(st.returncode, 0, st.stdout + st.stderr)
        self.assertIn("units: %d of %d done" % (UNITS, UNITS), st.stdout)

    def test_array_static_subsets(self):
        cfg = self.config("stat")
        self.submit(cfg, "--mode", "array", "--shards", "2", "--share", "static")
        states, out = wait_gone(self.jobs("stat")["reduce"])
        self.assertEqual(states, ["COMPLETED"], out + self.logs("stat"))
        self.assertComplete("stat")
        grid = self.jobs("stat")["grid"]
        # Static subsets: each array task (its own job id) wrote half of the cells' units.
        tasks = {rid.split(":")[1] for rid in self.shard_run_ids("stat")}
        self.assertEqual(len(tasks), 2, tasks)

    def test_mpi_job_with_srun(self):
        cfg = self.config("mpi")
        self.submit(cfg, "--mode", "mpi", "--ntasks-per-node", "2")
        states, out = wait_gone(self.jobs("mpi")["reduce"])
        self.assertEqual(states, ["COMPLETED"], out + self.logs("mpi"))
        self.assertComplete("mpi")
        with h5py.File(os.path.join(self.work, "results", "mpi", "results.h5"), "r") as f:
            self.assertEqual(set(f["finetune"]["rank"][:]), {0, 1})

    def test_failing_unit_cancels_reduce_then_resubmit(self):
        cfg = self.config("fail")
        bad = "finetune/generic/opencv-digits/0.03"
        self.submit(cfg, "--shards", "2", "--env", "ZOOBENCH_FAULT_FAIL_UNIT=" + bad)
        jobs = self.jobs("fail")
        states, out = wait_gone(jobs["reduce"])
        self.assertEqual(states, ["CANCELLED"], out)
        self.assertIn("DependencyNeverSatisfied", out)
        self.assertIn("FAILED", job_state(jobs["grid"])[0])
        st = sh(ZOOBENCH, "status", cfg, cwd=self.work)
        self.assertEqual(st.returncode, 1, st.stdout + st.stderr)
        self.assertIn("FAILED unit " + bad, st.stdout)
        self.assertIn("ZOOBENCH_FAULT_FAIL_UNIT", st.stdout)
        self.assertIn("cancelled by Slurm", st.stdout)
        self.assertIn("resubmit", st.stdout)
        self.assertIn("zoobench submit", st.stdout)
        wait_gone(jobs["grid"])  # the other worker goes on with what does not depend on the failure
        # The cause removed, the same submission finishes what is left.
        self.submit(cfg, "--shards", "2")
        states, out = wait_gone(self.jobs("fail")["reduce"])
        self.assertEqual(states, ["COMPLETED"], out + self.logs("fail"))
        self.assertComplete("fail")
        self.assertEqual(glob.glob(os.path.join(glob.escape(self.work), "results", "fail", "failed", "*")), [])

    def test_scancel_midway_and_resubmit(self):
        cfg = self.config("cancel", finetune={"epochs": 200, "lrs": [0.03, 0.01]})
        self.submit(cfg, "--shards", "2")
        jobs = self.jobs("cancel")
        shards = os.path.join(self.work, "results", "cancel", "shards")
        end = time.time() + 300
        while time.time() < end and len(glob.glob(os.path.join(glob.escape(shards), "*", "*.h5"))) < 3:
            time.sleep(0.5)
        sh("scancel", jobs["prepare"], jobs["grid"], jobs["reduce"])
        for j in jobs.values():
            wait_gone(j)
        done_before = len(glob.glob(os.path.join(glob.escape(shards), "*", "*.h5")))
        self.assertLess(done_before, UNITS, "cancelled too late to test anything")
        self.submit(cfg, "--shards", "2")
        states, out = wait_gone(self.jobs("cancel")["reduce"])
        self.assertEqual(states, ["COMPLETED"], out + self.logs("cancel"))
        self.assertComplete("cancel")

    def test_usr1_requeues_and_resumes(self):
        cfg = self.config("requeue", finetune={"epochs": 200, "lrs": [0.03, 0.01]})
        self.submit(cfg, "--shards", "1")
        jobs = self.jobs("requeue")
        shards = os.path.join(self.work, "results", "requeue", "shards")
        end = time.time() + 300
        while time.time() < end and len(glob.glob(os.path.join(glob.escape(shards), "*", "*.h5"))) < 2:
            time.sleep(0.5)
        # What Slurm does 120 s before the time limit (--signal=B:USR1@120).
        r = sh("scancel", "--batch", "--signal=USR1", jobs["grid"])
        self.assertEqual(r.returncode, 0, r.stderr)
        states, out = wait_gone(jobs["reduce"], timeout=900)
        self.assertEqual(states, ["COMPLETED"], out + self.logs("requeue"))
        self.assertComplete("requeue")
        logs = self.logs("requeue")
        self.assertIn("USR1: finishing the current unit", logs)
        self.assertIn("stopped on request (SIGUSR1)", logs)
        self.assertIn("restart 1", logs)

    def test_overlarge_request_is_refused(self):
        cfg = self.config("big")
        r = self.submit(cfg, "--shards", "2", "--cpus-per-task", str(self.cluster.cpus + 1), expect=1)
        self.assertIn("More processors requested than permitted", r.stderr)
        self.assertIn("nothing was submitted", r.stderr)
        self.assertEqual(len([l for l in r.stderr.splitlines() if l.strip()]), 1, r.stderr)
        self.assertEqual(sh("squeue", "-h").stdout.strip(), "")
        self.assertFalse(os.path.exists(os.path.join(self.work, "jobs", "big", "jobs.json")))

    def test_bad_values_never_reach_a_script(self):
        cfg = self.config("bad")
        for opt, value in (("--partition", "debug; touch PWNED"), ("--account", "$(touch PWNED)"),
                           ("--time", "1:00 --wrap=x"), ("--env", "A B=1")):
            r = sh(ZOOBENCH, "submit", cfg, opt, value, "--dry-run", cwd=self.work)
            self.assertEqual(r.returncode, 2, opt + ": " + r.stdout + r.stderr)
            self.assertIn(opt, r.stderr)
        weird = self.config("bad name")
        r = sh(ZOOBENCH, "submit", weird, "--dry-run", cwd=self.work)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("not a plain name", r.stderr)
        # A value with quotes and $(...) passed through --env arrives verbatim.
        r = sh(ZOOBENCH, "submit", cfg, "--dry-run", "--shards", "1", "--env", "ZB_NOTE=it's $(touch PWNED) `x`",
               cwd=self.work)
        self.assertEqual(r.returncode, 0, r.stderr)
        script = os.path.join(self.work, "jobs", "bad", "prepare.sbatch")
        self.assertEqual(sh("bash", "-n", script).returncode, 0)
        probe = sh("bash", "-c", "eval \"$(grep '^export ZB_NOTE=' \"$1\")\"; printf %s \"$ZB_NOTE\"", "_", script)
        self.assertEqual(probe.stdout, "it's $(touch PWNED) `x`")


class TwoNodes(unittest.TestCase):
    """--mode mpi over a real two-node cluster (two slurmd on this machine), mpirun inside the allocation."""

    def test_mpi_over_two_nodes(self):
        root = tempfile.mkdtemp(prefix="zoobench-slurm2-")
        cluster = Cluster(os.path.join(root, "cluster"), nodes=2)
        try:
            os.environ["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
            os.environ["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
            with open(TINY) as fh:
                cfg = yaml.safe_load(fh)
            cfg.update(name="two", threads=1, results_dir=os.path.join(root, "results"))
            cfg["zoo"]["dir"] = os.path.join(root, "zoo")
            path = os.path.join(root, "two.yaml")
            with open(path, "w") as fh:
                yaml.safe_dump(cfg, fh)
            r = sh(ZOOBENCH, "submit", path, "--mode", "mpi", "--nodes", "2", "--ntasks-per-node", "1", "--launcher",
                   "mpirun", cwd=root, timeout=300)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            with open(os.path.join(root, "jobs", "two", "jobs.json")) as fh:
                jobs = json.load(fh)["jobs"]
            states, out = wait_gone(jobs["reduce"], timeout=900)
            logs = ""
            for f in glob.glob(os.path.join(root, "jobs", "two", "logs", "*")):
                with open(f, errors="replace") as fh:
                    logs += fh.read()
            self.assertEqual(states, ["COMPLETED"], out + logs)
            self.assertIn("grid on 2 node(s)", logs)
            with h5py.File(os.path.join(root, "results", "two", "results.h5"), "r") as f:
                self.assertEqual(set(f["finetune"]["rank"][:]), {0, 1})
                self.assertEqual(len(f["ground_truth"]["model"]), CELLS)
        finally:
            cluster.down()
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
