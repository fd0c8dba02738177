"""`zoobench data tasks CONFIG` against the task sizes recomputed here from
the config (PyYAML) and the packed data (h5py): every task of the config is
listed once, with its classes, shots and train / val / test counts.
The sampler's rules, restated independently (docs/results.md, "tasks"):
a class gives `shots` training images (all of them for `shots: all`), of
which round(val_fraction * n) (at most n - 1) are validation; the test set
is test_per_class images of each class, or all of its test images (0);
`drop_small_classes` drops classes with fewer training images than shots.
Usage: check_tasks.py ZOOBENCH CONFIG DATA_DIR"""
import os
import subprocess
import sys

import h5py
import numpy as np
import yaml

zoobench, config, data_dir = sys.argv[1:4]
cfg = yaml.safe_load(open(config))
allowed = {"dataset", "name", "classes", "shots", "shot_grid", "seeds", "seed", "val_fraction", "test_per_class",
           "drop_small_classes", "min_steps"}

expected = {}
for entry in cfg["tasks"]:
    unknown = set(entry) - allowed
    assert not unknown, f"{config}: this check does not know task keys {unknown}: teach it their rule"
    with h5py.File(os.path.join(data_dir, entry["dataset"] + ".h5"), "r") as f:
        labels, split = f["labels"][:], f["split"][:]
        class_names = [c.decode() for c in f["class_names"][:]]
    wanted = entry.get("classes") or class_names
    grid = entry.get("shot_grid")
    seeds = entry.get("seeds", 1)
    expand = grid is not None or seeds > 1
    for shots in grid or [entry.get("shots", 10)]:
        for k in range(seeds):
            seed = entry.get("seed", 0) + k
            name = entry.get("name", entry["dataset"])
            if expand:
                name += f"-{'all' if shots == 'all' else str(shots) + 'shot'}-s{seed}"
            n_classes = train = val = test = 0
            for cname in wanted:
                c = class_names.index(cname)
                n_train = int(((labels == c) & (split == 0)).sum())
                n_test = int(((labels == c) & (split == 1)).sum())
                take = n_train if shots == "all" else shots
                if entry.get("drop_small_classes") and (n_train < max(take, 1) or n_test == 0):
                    continue
                n_val = min(take - 1, int(np.floor(entry.get("val_fraction", 0.2) * take + 0.5)))
                per_class_test = entry.get("test_per_class", 0)
                n_classes += 1
                val += n_val
                train += take - n_val
                test += min(per_class_test, n_test) if per_class_test > 0 else n_test
            expected[name] = (entry["dataset"], n_classes, 0 if shots == "all" else shots, train, val, test)

out = subprocess.run([zoobench, "data", "tasks", config, "--data-dir", data_dir], capture_output=True, text=True)
assert out.returncode == 0, out.stderr
lines = out.stdout.strip().splitlines()
assert lines[0].split() == ["task", "dataset", "classes", "shots", "train", "val", "test"], lines[0]
listed = {}
for line in lines[1:]:
    name, dataset, *numbers = line.split()
    assert name not in listed, f"task {name} listed twice"
    shots = numbers[1]
    listed[name] = (dataset, int(numbers[0]), 0 if shots == "all" else int(shots), *map(int, numbers[2:]))
assert set(listed) == set(expected), f"tasks listed {sorted(set(listed) ^ set(expected))} differ from the config's"
for name, want in expected.items():
    assert listed[name] == want, f"{name}: zoobench says {listed[name]}, recomputed {want}"
print(f"{config}: {len(expected)} tasks, sizes as recomputed from the config and the packed data")
