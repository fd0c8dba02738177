"""The bad-input matrix: every entry point of the CLI against the bad input it
can meet. Each row copies a small, valid workspace (a packed data set, a
TorchScript zoo, a config and a finished experiment), breaks one thing in it,
runs one command there and expects

* the exit code of the error's class (2 usage and config, 3 data, 1 other),
* exactly one `zoobench: error:` line, naming the culprit (file, key, model,
  unit or option),
* a workspace that afterwards differs from before only in what the command is
  meant to write (nothing, for a refused command).

Rows are data: add one to the ROWS table. Run by ctest (bad_input.matrix)."""
import json
import os
import shutil
import struct
import subprocess
import tempfile
import unittest

import h5py
import numpy as np
import yaml

ZOOBENCH = os.path.abspath(os.environ.get("ZOOBENCH", "build/zoobench"))
SOURCE_DIR = os.path.abspath(os.environ.get("ZB_SOURCE_DIR", "."))
PACKED = os.environ.get("ZOOBENCH_DATA_DIR", os.path.join(SOURCE_DIR, "data"))
PY = "/usr/bin/python3"

CONFIG = """name: bad
seed: 0
threads: 1
results_dir: results
data: {dir: data}
tasks:
  - {dataset: optdigits, shots: 5, test_per_class: 10}
zoo: {manifest: zoo/manifest.yaml}
finetune: {epochs: 1, lrs: [0.01]}
selectors: [lfc, leep]
"""


# ---- what a row does to the workspace -----------------------------------------------
def edit(rel, old, new):
    def f(ws):
        p = os.path.join(ws, rel)
        with open(p) as fh:
            text = fh.read()
        assert old in text, (rel, old)
        with open(p, "w") as fh:
            fh.write(text.replace(old, new, 1))
    return f


def write(rel, data):
    def f(ws):
        p = os.path.join(ws, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb" if isinstance(data, bytes) else "w") as fh:
            fh.write(data)
    return f


def remove(rel):
    return lambda ws: os.remove(os.path.join(ws, rel))


def append(rel, data):
    def f(ws):
        with open(os.path.join(ws, rel), "ab") as fh:
            fh.write(data)
    return f


def truncate(rel, keep):
    def f(ws):
        p = os.path.join(ws, rel)
        with open(p, "r+b") as fh:
            fh.truncate(int(os.path.getsize(p) * keep))
    return f


def packed(change):
    """A copy of data/optdigits.h5 as data/bad.h5 with `change(h5file)` applied."""
    def f(ws):
        src, dst = os.path.join(ws, "data", "optdigits.h5"), os.path.join(ws, "data", "bad.h5")
        shutil.copy(src, dst)
        with h5py.File(dst, "r+") as h:
            change(h)
    return f


def replace_dataset(name, value):
    def change(h):
        attrs = dict(h[name].attrs)
        new = value(h) if callable(value) else value
        del h[name]
        h[name] = new
        h[name].attrs.update(attrs)
    return change


def set_attr(path, key, value):
    def f(ws):
        with h5py.File(os.path.join(ws, path), "r+") as h:
            h.attrs[key] = value
    return f


def first_shard(kind):
    def f(ws):
        d = os.path.join(ws, "results", "bad", "shards", kind)
        return os.path.join("results", "bad", "shards", kind, sorted(os.listdir(d))[0])
    return f


def on_shard(kind, action):
    def f(ws):
        action(first_shard(kind)(ws))(ws)
    return f


def both(*fs):
    def f(ws):
        for g in fs:
            g(ws)
    return f


def idx(dims, data, magic_type=0x08):
    return bytes([0, 0, magic_type, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data)


def png_folder(classes, corrupt=False, empty_class=False):
    """An image folder of `classes` classes, 3 tiny PNGs each (via matplotlib's PNG writer)."""
    def f(ws):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        root = os.path.join(ws, "imgs")
        for c in range(classes):
            d = os.path.join(root, f"class{c}")
            os.makedirs(d)
            for i in range(3):
                plt.imsave(os.path.join(d, f"{i}.png"), np.full((8, 8), (c * 3 + i) / 10.0), cmap="gray")
        if corrupt:
            with open(os.path.join(root, "class0", "1.png"), "wb") as fh:
                fh.write(b"\x89PNG\r\n\x1a\n not really a png")
        if empty_class:
            os.makedirs(os.path.join(root, "empty"))
    return f


def pin(ws):
    """Records the zoo's digests as they are now (`zoo pin`), as a user would after changing a file on purpose."""
    subprocess.run([ZOOBENCH, "zoo", "pin", "zoo/manifest.yaml"], cwd=ws, check=True, capture_output=True)


def move_weights_out(link):
    """The model file moves to <ws>/elsewhere; the manifest names it with `..`, or through a link in the zoo folder."""
    def f(ws):
        os.makedirs(os.path.join(ws, "elsewhere"))
        os.rename(os.path.join(ws, "zoo", "model.pt"), os.path.join(ws, "elsewhere", "model.pt"))
        if link:
            os.symlink(os.path.join("..", "elsewhere", "model.pt"), os.path.join(ws, "zoo", "model.pt"))
        else:
            edit("zoo/manifest.yaml", "weights: model.pt", "weights: ../elsewhere/model.pt")(ws)
    return f


def one_line_entry(ws):
    """The manifest's entry rewritten as a one-line {...} map (JSON is YAML's flow style), unpinned."""
    p = os.path.join(ws, "zoo", "manifest.yaml")
    with open(p) as fh:
        doc = yaml.safe_load(fh)
    entry = {k: v for k, v in doc["models"][0].items() if k != "sha256"}
    with open(p, "w") as fh:
        fh.write("zoobench_manifest: 1\nmodels:\n  - " + json.dumps(entry) + "\n")


def nan_model(ws):
    """A TorchScript model whose features are NaN: the manifest entry of the zoo points at it."""
    code = (
        "import torch, sys\n"
        "class M(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.w = torch.nn.Linear(4, 10)\n"
        "    @torch.jit.export\n"
        "    def features(self, x):\n"
        "        return torch.full((x.shape[0], 4), float('nan'))\n"
        "    def forward(self, x):\n"
        "        return self.w(self.features(x))\n"
        "torch.jit.script(M()).save(sys.argv[1])\n")
    script = os.path.join(ws, "nan_model.py")  # TorchScript reads the class's source: a file, not -c
    with open(script, "w") as fh:
        fh.write(code)
    subprocess.run([PY, script, os.path.join(ws, "zoo", "model.pt")], check=True, capture_output=True)
    pin(ws)


SCORE = ["score", "--zoo", "zoo/manifest.yaml", "--data", "data/optdigits.h5", "--selectors", "lfc,leep",
         "--threads", "1"]
SCORE_BAD = ["score", "--zoo", "zoo/manifest.yaml", "--data", "data/bad.h5", "--selectors", "lfc", "--threads", "1"]
RUN = ["run", "exp.yaml", "--quiet"]
PACK_DIR = ["--data-dir", "out"]

# (name, break the workspace, command, exit code, needles of the error line, paths the command may write)
ROWS = [
    # --- experiment configs ---
    ("config: unknown key", edit("exp.yaml", "seed: 0", "seed: 0\nthreds: 2"), ["config", "check", "exp.yaml"], 2,
     ["exp.yaml:3:1", "unknown key 'threds'", "valid keys:"], []),
    ("config: wrong type", edit("exp.yaml", "shots: 5", "shots: ten"), RUN, 2,
     ["exp.yaml:7:33", "tasks[0].shots", "expected an integer or all, got 'ten'"], []),
    ("config: out of range", edit("exp.yaml", "epochs: 1,", "epochs: 1, momentum: 2,"), RUN, 2,
     ["finetune.momentum", "out of range"], []),
    ("config: YAML syntax", write("exp.yaml", "tasks: [\n"), ["config", "check", "exp.yaml"], 2,
     ["exp.yaml", "YAML syntax error"], []),
    ("config: missing file", None, ["config", "check", "nope.yaml"], 2, ["nope.yaml"], []),
    ("config: duplicate task", edit("exp.yaml", "tasks:\n", "tasks:\n  - {dataset: optdigits, shots: 3}\n"), RUN, 2,
     ["duplicate task name 'optdigits'"], []),
    ("config: unset variable in a path", edit("exp.yaml", "dir: data}", "dir: '${ZB_NO_SUCH_VAR}'}"), RUN, 2,
     ["exp.yaml: data.dir names ${ZB_NO_SUCH_VAR}, which is not set"], []),
    ("config: unclosed ${", edit("exp.yaml", "results_dir: results", "results_dir: 'r/${OOPS'"), RUN, 2,
     ["results_dir", "without its '}'"], []),
    ("config: decay epochs not increasing", edit("exp.yaml", "lrs: [0.01]", "lrs: [0.01], decay_epochs: [5, 2]"), RUN, 2,
     ["finetune.decay_epochs", "increasing"], []),
    ("config: no memory for a score", edit("exp.yaml", "lrs: [0.01]}", "lrs: [0.01]}\nextract: {score_memory_mb: 0}"), RUN, 2,
     ["exp.yaml:", "extract.score_memory_mb"], []),
    ("config: unknown selector", edit("exp.yaml", "[lfc, leep]", "[lfc, nope]"), RUN, 2, ["'nope'", "lgc", "logme"], []),
    ("config: unknown class", edit("exp.yaml", "shots: 5,", "shots: 5, classes: [x, y],"), RUN, 3,
     ["task 'optdigits'", "has no class 'x'"], ["results"]),
    ("config: more shots than images", edit("exp.yaml", "shots: 5,", "shots: 100000,"), RUN, 3,
     ["task 'optdigits'", "asks for 100000 shots"], ["results"]),
    # --- zoo manifests ---
    ("manifest: no models list", write("zoo/manifest.yaml", "zoobench_manifest: 1\n"), SCORE, 2,
     ["zoo/manifest.yaml", "has no 'models' list"], []),
    ("manifest: missing key", edit("zoo/manifest.yaml", "    weights: model.pt\n", ""), SCORE, 2,
     ["zoo/manifest.yaml:3", "('small')", "missing key 'weights'"], []),
    ("manifest: wrong type", edit("zoo/manifest.yaml", "in_channels: 1", "in_channels: one"), SCORE, 2,
     ["('small')", "'in_channels' has the wrong type"], []),
    ("manifest: unknown key", edit("zoo/manifest.yaml", "    format:", "    colour: red\n    format:"), SCORE, 2,
     ["models[0]", "unknown key 'colour'"], []),
    ("manifest: weights file missing", remove("zoo/model.pt"), SCORE, 3,
     ["zoo entry 'small'", "model.pt", "is missing"], []),
    ("manifest: checksum mismatch", append("zoo/model.pt", b"\0"), SCORE, 3,
     ["zoo entry 'small'", "SHA-256", "differs from the manifest"], []),
    ("manifest: bad in_channels", edit("zoo/manifest.yaml", "in_channels: 1", "in_channels: 2"), SCORE, 2,
     ["('small')", "in_channels must be 1 or 3"], []),
    ("manifest: duplicate name",
     lambda ws: edit("zoo/manifest.yaml", "models:\n", "models:\n" + open(os.path.join(ws, "zoo", "manifest.yaml")).read()
                     .split("models:\n", 1)[1])(ws), SCORE, 2, ["('small')", "duplicate model name"], []),
    ("manifest: input size 0", edit("zoo/manifest.yaml", "input_size: 32", "input_size: 0"), SCORE, 2,
     ["('small')", "input_size must be in [1, 4096]"], []),
    ("manifest: missing file", None, ["score", "--zoo", "zoo/none.yaml", "--data", "data/optdigits.h5"], 2,
     ["zoo/none.yaml", "does not exist"], []),
    ("manifest: unset variable in weights", edit("zoo/manifest.yaml", "weights: model.pt", "weights: '${ZB_NO_SUCH_VAR}/m.pt'"),
     SCORE, 2, ["zoo entry 'small'", "names ${ZB_NO_SUCH_VAR}, which is not set"], []),
    ("manifest: YAML syntax", write("zoo/manifest.yaml", "models: [\n"), SCORE, 2, ["zoo/manifest.yaml", "YAML syntax error"], []),
    # --- trust: pinned files, inside the zoo's folder ---
    ("manifest: entry not pinned", edit("zoo/manifest.yaml", "sha256:", "# sha256:"), SCORE, 2,
     ["zoo/manifest.yaml: zoo entry 'small'", "no sha256", "zoobench zoo pin zoo/manifest.yaml"], []),
    ("manifest: sha256 not a digest", edit("zoo/manifest.yaml", "sha256: ", "sha256: zz"), SCORE, 2,
     ["('small')", "sha256 must be 64 hexadecimal digits"], []),
    ("manifest: weights outside the zoo folder", move_weights_out(link=False), SCORE, 2,
     ["zoo entry 'small'", "elsewhere/model.pt", "outside the zoo's folder", "--allow-outside-zoo"], []),
    ("manifest: a link out of the zoo folder", move_weights_out(link=True), RUN, 2,
     ["zoo entry 'small'", "outside the zoo's folder", "resolve to", "elsewhere/model.pt"], ["results"]),
    ("zoo pin: weights file missing", remove("zoo/model.pt"), ["zoo", "pin", "zoo/manifest.yaml"], 3,
     ["zoo entry 'small'", "is missing"], []),
    ("zoo pin: a one-line entry", one_line_entry, ["zoo", "pin", "zoo/manifest.yaml"], 2,
     ["zoo/manifest.yaml:3", "models[0] ('small')", "by hand"], []),
    ("zoo pin: weights outside the zoo folder", move_weights_out(link=False), ["zoo", "pin", "zoo/manifest.yaml"], 2,
     ["zoo entry 'small'", "outside the zoo's folder"], []),
    ("zoo pin --check: a changed file", append("zoo/model.pt", b"\0"), ["zoo", "pin", "zoo/manifest.yaml", "--check"], 1,
     ["zoo/manifest.yaml", "0 unpinned and 1 changed of 1 entries"], []),
    ("zoo pin: no manifest", None, ["zoo", "pin", "zoo/none.yaml"], 2, ["zoo/none.yaml", "does not exist"], []),
    # --- packed data ---
    ("packed: not HDF5", write("data/bad.h5", "hello\n"), SCORE_BAD, 3, ["data/bad.h5"], []),
    ("packed: images of the wrong dtype", packed(replace_dataset("images", lambda h: h["images"][:].astype(np.float32))),
     SCORE_BAD, 3, ["data/bad.h5", "images"], []),
    ("packed: images of the wrong shape", packed(replace_dataset("images", lambda h: h["images"][:, :, :16, :16])),
     SCORE_BAD, 3, ["data/bad.h5", "images"], []),
    ("packed: labels out of range", packed(replace_dataset("labels", lambda h: np.where(np.arange(len(h["labels"])) == 7, 99,
                                                                                       h["labels"][:]))),
     SCORE_BAD, 3, ["data/bad.h5", "label 99 of image 7 is outside [0, 10)"], []),
    ("packed: labels missing", packed(lambda h: h.__delitem__("labels")), SCORE_BAD, 3, ["data/bad.h5", "labels"], []),
    ("packed: a size that cannot fit in memory",
     packed(lambda h: (h.__delitem__("images"),
                       h.create_dataset("images", shape=(10 ** 12, 1, 32, 32), dtype=np.uint8, chunks=(1, 1, 32, 32)))),
     SCORE_BAD, 3, ["data/bad.h5", "images"], []),
    ("packed: another schema version", packed(lambda h: h.attrs.__setitem__("schema_version", 99)), SCORE_BAD, 3,
     ["data/bad.h5", "schema_version"], []),
    ("packed: missing file", None, ["score", "--zoo", "zoo/manifest.yaml", "--data", "data/none.h5"], 3, ["data/none.h5"], []),
    # --- TorchScript files ---
    ("torchscript: method missing", edit("zoo/manifest.yaml", "features_method: features", "features_method: embed"),
     SCORE, 3, ["small", "embed"], []),
    ("torchscript: wrong output shape", lambda ws: subprocess.run(
        [PY, os.path.join(SOURCE_DIR, "tools", "export_torchscript.py"), os.path.join(ws, "zoo"), "--channels", "1",
         "--classes", "10", "--name", "small", "--wrong-shape"], check=True, capture_output=True),
     SCORE, 3, ["small", "features"], []),
    ("torchscript: not a TorchScript file", both(write("zoo/model.pt", b"PK\x03\x04 not a zip"), pin),
     SCORE, 3, ["zoo entry 'small'", "cannot load"], []),
    ("torchscript: NaN features", nan_model, SCORE, 3, ["small", "optdigits", "NaN"], []),
    # In a run the score unit meets them (a new results folder: the finished one was made with the old zoo).
    ("torchscript: NaN features in a run", nan_model, RUN + ["--results-dir", "fresh"], 3,
     ["model 'small', task 'optdigits'", "features contain NaN or Inf"], ["fresh"]),
    # --- image folders ---
    ("image folder: missing", None, ["data", "pack", "--image-folder", "imgs", "--name", "mine"] + PACK_DIR, 3,
     ["imgs"], []),
    ("image folder: one class", png_folder(1), ["data", "pack", "--image-folder", "imgs", "--name", "mine"] + PACK_DIR, 3,
     ["imgs", "class"], []),
    ("image folder: corrupt image", png_folder(2, corrupt=True),
     ["data", "pack", "--image-folder", "imgs", "--name", "mine"] + PACK_DIR, 3, ["1.png"], []),
    ("image folder: empty class", png_folder(2, empty_class=True),
     ["data", "pack", "--image-folder", "imgs", "--name", "mine"] + PACK_DIR, 3, ["empty"], []),
    ("image folder: bad channel count", png_folder(2),
     ["data", "pack", "--image-folder", "imgs", "--name", "mine", "--channels", "2"] + PACK_DIR, 2, ["--channels"], []),
    ("image folder: bad name", png_folder(2), ["data", "pack", "--image-folder", "imgs", "--name", "../x"] + PACK_DIR, 2,
     ["--name"], []),
    # --- IDX files ---
    ("idx: bad magic", both(write("im.idx", b"\x01\x02\x03\x04" + bytes(100)), write("lb.idx", idx([4], [0, 1, 0, 1]))),
     ["data", "pack", "--idx", "im.idx", "lb.idx", "--name", "mine"] + PACK_DIR, 3, ["im.idx", "magic"], []),
    ("idx: truncated", both(write("im.idx", idx([4, 28, 28], bytes(4 * 28 * 28))[:-100]), write("lb.idx", idx([4], [0, 1, 0, 1]))),
     ["data", "pack", "--idx", "im.idx", "lb.idx", "--name", "mine"] + PACK_DIR, 3, ["im.idx"], []),
    ("idx: label count mismatch", both(write("im.idx", idx([4, 28, 28], bytes(4 * 28 * 28))), write("lb.idx", idx([3], [0, 1, 0]))),
     ["data", "pack", "--idx", "im.idx", "lb.idx", "--name", "mine"] + PACK_DIR, 3, ["lb.idx"], []),
    ("idx: gzip that is not", both(write("im.gz", b"\x1f\x8b not gzip"), write("lb.idx", idx([4], [0, 1, 0, 1]))),
     ["data", "pack", "--idx", "im.gz", "lb.idx", "--name", "mine"] + PACK_DIR, 3, ["im.gz"], []),
    # --- results shards ---
    ("shard: truncated", on_shard("score", lambda rel: truncate(rel, 0.5)), ["reduce", "results/bad"], 3,
     ["results/bad/shards/score/"], []),
    ("shard: another experiment", on_shard("finetune", lambda rel: set_attr(rel, "identity", "0" * 16)),
     ["reduce", "results/bad"], 3, ["results/bad/shards/finetune/", "written for another experiment"], []),
    ("shard: another schema version", on_shard("score", lambda rel: set_attr(rel, "schema_version", 99)),
     ["reduce", "results/bad"], 3, ["results/bad/shards/score/", "schema"], []),
    ("results: not an experiment", None, ["reduce", "nowhere"], 2, ["nowhere"], []),
    ("results: results.h5 not HDF5", write("results/bad/results.h5", "x"), ["reduce", "results/bad/results.h5"], 3,
     ["results.h5"], []),
    ("results: config changed before a resume", edit("exp.yaml", "epochs: 1,", "epochs: 2,"), RUN, 2,
     ["results/bad", "config"], []),
    # --- command lines ---
    ("cli: unknown command", None, ["frobnicate"], 2, ["frobnicate"], []),
    ("cli: unknown option", None, ["run", "exp.yaml", "--frob"], 2, ["--frob"], []),
    ("cli: run without a config", None, ["run"], 2, ["config"], []),
    ("cli: plan with negative ranks", None, ["plan", "exp.yaml", "--ranks", "-1"], 2, ["--ranks"], []),
    ("cli: score with an unknown selector", None, SCORE[:-4] + ["--selectors", "nope"], 2, ["'nope'", "lfc"], []),
    ("cli: score without data", None, ["score", "--zoo", "zoo/manifest.yaml"], 2, ["--data"], []),
    ("cli: submit with a bad time", None, ["submit", "exp.yaml", "--time", "1 day", "--dry-run"], 2, ["--time"], []),
    ("cli: reduce with zero resamples", None, ["reduce", "results/bad", "--resamples", "0"], 2, ["--resamples"], []),
    ("cli: threads not a number", None, ["run", "exp.yaml", "--threads", "many"], 2, ["--threads"], []),
    ("cli: score with no memory for a score", None, SCORE + ["--score-memory-mb", "0"], 2, ["--score-memory-mb"], []),
]


def listing(root):
    """Every file under root: relative path -> (size, mtime)."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            st = os.stat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return out


class BadInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="zoobench-bad-")
        cls.ws = os.path.join(cls.tmp, "clean")
        os.makedirs(os.path.join(cls.ws, "data"))
        shutil.copy(os.path.join(PACKED, "optdigits.h5"), os.path.join(cls.ws, "data"))
        subprocess.run([PY, os.path.join(SOURCE_DIR, "tools", "export_torchscript.py"), os.path.join(cls.ws, "zoo"),
                        "--channels", "1", "--classes", "10", "--name", "small"], check=True, capture_output=True)
        with open(os.path.join(cls.ws, "exp.yaml"), "w") as fh:
            fh.write(CONFIG)
        r = subprocess.run([ZOOBENCH, *RUN], cwd=cls.ws, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_matrix(self):
        self.assertGreaterEqual(len(ROWS), 40)
        env = {k: v for k, v in os.environ.items() if k not in ("ZOOBENCH_DATA_DIR", "ZB_NO_SUCH_VAR", "OOPS",
                                                               "ZOOBENCH_ALLOW_OUTSIDE_ZOO")}
        for i, (name, breaks, argv, code, needles, writes) in enumerate(ROWS):
            with self.subTest(name):
                ws = os.path.join(self.tmp, f"row{i}")
                shutil.copytree(self.ws, ws)
                if breaks:
                    breaks(ws)
                before = listing(ws)
                r = subprocess.run([ZOOBENCH, *argv], cwd=ws, capture_output=True, text=True, timeout=300, env=env)
                errors = [l for l in r.stderr.splitlines() if l.startswith("zoobench: error: ")]
                self.assertEqual(r.returncode, code, r.stderr)
                self.assertEqual(len(errors), 1, r.stderr)
                for n in needles:
                    self.assertIn(n, errors[0])
                after = listing(ws)
                changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
                unexpected = [p for p in changed if not any(p == w or p.startswith(w + os.sep) for w in writes)]
                self.assertEqual(unexpected, [], f"{name}: the failed command changed these files")
                shutil.rmtree(ws)


if __name__ == "__main__":
    unittest.main()
