"""Side-by-side baseline for bench_loader: the same work in h5py + numpy +
torch (Debian python3-torch, the same libtorch 1.13): read the packed images,
convert to float32 in [0, 1], wrap as a tensor. Prints images/s per domain,
best of `reps` after one warm-up, with a correctness check."""
import os
import sys
import time

import h5py
import numpy as np
import torch

torch.set_num_threads(int(os.environ.get("ZOOBENCH_THREADS", "2")))
data = os.environ.get("ZOOBENCH_DATA_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "data"))
reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
for domain in ("fashion-mnist", "glyphs-latin"):
    path = os.path.join(data, domain + ".h5")

    def load():
        with h5py.File(path, "r") as f:
            images = f["images"][:]
        return torch.from_numpy(images.astype(np.float32) / np.float32(255.0)), images

    load()  # warm-up (page cache, imports)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        t, raw = load()
        best = min(best, time.perf_counter() - t0)
    assert t[-1].flatten()[512].item() == np.float32(raw[-1].flatten()[512]) / np.float32(255.0)
    print(f"python h5py+numpy+torch  {domain:14s} {len(raw) / best:12,.0f} images/s  ({best * 1e3:.1f} ms for {len(raw)})")
