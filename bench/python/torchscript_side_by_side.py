#!/usr/bin/env python3
"""An exported torchvision ResNet-18 in zoobench against PyTorch-Python:
extraction images/s and LGC seconds per cell, at 32 x 32 and at 224 x 224.

    /usr/bin/python3 bench/python/torchscript_side_by_side.py [--zoobench build/zoobench]
        [--data data/optdigits.h5] [--shots 10] [--sizes 32 224] [--threads 2] [--repeats 3]

Per input size: tools/export_torchscript.py --torchvision resnet18 (seeded
random weights; timing does not depend on them), then REPEATS alternating
runs of

* zoobench: `zoobench score --selectors lfc,lgc --json --save-arrays` on one
  task (SHOTS images a class of the target). LFC's seconds are the
  extraction (uint8 -> float, grey -> RGB, the antialiased resize, the
  normalisation, one forward pass giving features and source logits through
  the exported `features_and_logits`, in batches of 256) plus the LFC score (well under a millisecond at these N);
  LGC's are the gradient sketch (one forward and m = 4 backward passes a
  sample through the default parameter, the last 3 x 3 convolution's 2.36 M
  weights, each gradient projected to K = 4,096 columns) plus the score. A
  fresh process each time: TorchScript's first (profiling) call is included.
* PyTorch-Python on the same images (the indices zoobench saved): the same
  preprocessing with torchvision's transforms, then the exported module's
  `features_and_logits` (TorchScript, one pass, as zoobench calls it) and the
  eager torchvision model up to its pooled features, each timed after one
  warm-up call on the same batch.

Correctness beside the timing: the Python features must equal the ones
zoobench saved to 1e-5 relative, else the script fails. The table shows
medians over the repeats; images/s = N / seconds."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# The BLAS kernels zoobench runs (it corrects OpenBLAS's choice on CPUs newer
# than OpenBLAS, bench/blas_env.sh), set before torch loads the library.
if "OPENBLAS_CORETYPE" not in os.environ:
    _v = subprocess.run([os.path.join(REPO, "build", "zoobench"), "version"], capture_output=True, text=True).stdout
    for _line in _v.splitlines():
        if "set by zoobench (OPENBLAS_CORETYPE)" in _line:
            os.environ["OPENBLAS_CORETYPE"] = _line.split("kernels:")[1].split(",")[0].strip()
import torch  # noqa: E402
import torchvision  # noqa: E402
import torchvision.transforms as T  # noqa: E402


def load_images(data, idx):
    with h5py.File(data, "r") as f:
        order = np.argsort(idx)
        x = np.empty((len(idx),) + f["images"].shape[1:], np.uint8)
        x[order] = f["images"][np.sort(idx)]
    return torch.from_numpy(x)


def preprocess(x, size, mean, std):
    x = x.float().div(255)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if size != x.shape[-1]:
        x = T.Resize((size, size), interpolation=T.InterpolationMode.BILINEAR, antialias=True)(x)
    return T.Normalize(mean, std)(x)


def timed(fn):
    fn()  # warm-up
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoobench", default=os.path.join(REPO, "build", "zoobench"))
    ap.add_argument("--data", default=os.path.join(REPO, "data", "optdigits.h5"))
    ap.add_argument("--shots", type=int, default=10)
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 224])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tmp = tempfile.mkdtemp(prefix="zoobench-ts-bench-")
    rows = []
    for size in a.sizes:
        out = os.path.join(tmp, f"r18-{size}")
        subprocess.run(["/usr/bin/python3", os.path.join(REPO, "tools", "export_torchscript.py"), out,
                        "--torchvision", "resnet18", "--input-size", str(size)], check=True, capture_output=True)
        module = torch.jit.load(os.path.join(out, "model.pt")).eval()
        eager = torchvision.models.resnet18()
        eager.fc = torch.nn.Identity()
        eager.eval()
        ms = {"zb_extract": [], "zb_lgc": [], "py_script": [], "py_eager": []}
        n = None
        for rep in range(a.repeats):
            arrays = os.path.join(tmp, f"arrays-{size}-{rep}.h5")
            r = subprocess.run([a.zoobench, "score", "--zoo", os.path.join(out, "manifest.yaml"), "--data", a.data,
                                "--selectors", "lfc,lgc", "--task-spec", f"{{shots: {a.shots}, seed: 0}}", "--json",
                                "--save-arrays", arrays, "--threads", str(a.threads)], capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"torchscript_side_by_side: zoobench score failed: {r.stderr.strip()}")
            sec = {s["selector"]: s["seconds"] for s in json.loads(r.stdout)["scores"]}
            ms["zb_extract"].append(sec["lfc"])
            ms["zb_lgc"].append(sec["lgc"])
            with h5py.File(arrays, "r") as f:
                idx, saved = f["resnet18"]["indices"][:], f["resnet18"]["features"][:]
            mean = [0.485, 0.456, 0.406]
            std = [0.229, 0.224, 0.225]
            x = load_images(a.data, idx)
            n = len(idx)

            def script_pass():
                with torch.no_grad():
                    return module.features_and_logits(preprocess(x, size, mean, std))

            def eager_pass():
                with torch.no_grad():
                    return eager(preprocess(x, size, mean, std))

            t, (feats, _) = timed(script_pass)
            err = np.abs(feats.numpy() - saved).max()
            if not err <= 1e-5 * max(np.abs(saved).max(), 1.0):
                sys.exit(f"torchscript_side_by_side: at {size} x {size} zoobench's features differ from "
                         f"PyTorch's by {err:.3g}")
            ms["py_script"].append(t)
            ms["py_eager"].append(timed(eager_pass)[0])
        med = {k: statistics.median(v) for k, v in ms.items()}
        rows.append((size, n, med))
        print(json.dumps({"size": size, "n": n, "threads": a.threads, **{k: v for k, v in ms.items()}}), flush=True)
    print(f"\nResNet-18 (torchvision, exported), {a.threads} threads, N images a cell, medians of {a.repeats}")
    print("| input | N | zoobench extraction (img/s) | PyTorch TorchScript features+logits (img/s) | "
          "PyTorch eager features (img/s) | zoobench / TorchScript | zoobench LGC (s/cell) | LGC / extraction |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for size, n, m in rows:
        print(f"| {size} x {size} | {n} | {n / m['zb_extract']:.0f} | {n / m['py_script']:.0f} | "
              f"{n / m['py_eager']:.0f} | {m['py_script'] / m['zb_extract']:.2f}x | {m['zb_lgc']:.2f} | "
              f"{m['zb_lgc'] / m['zb_extract']:.0f}x |")


if __name__ == "__main__":
    main()
