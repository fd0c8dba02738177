"""Reads every packed domain with h5py and checks the layout docs/results.md
promises: shapes, dtypes, attributes, class coverage, the split and the
printed-character domain's >= 100 font families."""
import os
import sys

import h5py
import numpy as np

data_dir = sys.argv[1]
expected = ["fashion-mnist", "mnist", "opencv-digits", "optdigits", "glyphs-latin", "glyphs-handwriting",
            "glyphs-greek", "glyphs-cyrillic", "glyphs-hebrew", "glyphs-georgian", "glyphs-armenian", "glyphs-thai",
            "glyphs-devanagari", "emoji-google", "emoji-twitter", "openmoji-line"]
sizes = {"fashion-mnist": 70000, "mnist": 10010, "opencv-digits": 5000, "optdigits": 1797}
for name in expected:
    path = os.path.join(data_dir, name + ".h5")
    assert os.path.exists(path), path
    with h5py.File(path, "r") as f:
        a = f.attrs
        assert a["schema_version"] == 1, (name, a["schema_version"])
        assert a["domain"] == name
        for key in ("source_package", "source_version", "license", "created_utc", "split_rule", "zoobench_version"):
            assert isinstance(a[key], str) and a[key], (name, key)
        im, lab, split = f["images"], f["labels"][:], f["split"][:]
        classes = [c.decode() for c in f["class_names"][:]]
        n, c, h, w = im.shape
        assert im.dtype == np.uint8 and lab.dtype == np.int64 and split.dtype == np.uint8, name
        assert (h, w) == (32, 32) and c == (3 if name.startswith("emoji") else 1), (name, im.shape)
        assert len(lab) == n == len(split) and n > 0
        assert set(np.unique(lab)) == set(range(len(classes))), f"{name}: every class has images"
        assert set(np.unique(split)) == {0, 1}, f"{name}: train and test both present"
        for k in range(len(classes)):
            assert (split[lab == k] == 0).any(), f"{name}: class {classes[k]} has no training image"
        if name in sizes and name != "mnist":
            assert n == sizes[name], (name, n)
        pixels = im[: min(n, 500)]
        assert pixels.std() > 10, f"{name}: images are not blank"
        if name == "fashion-mnist":
            assert (split == 0).sum() == 60000
        if name.startswith("glyphs"):
            fams = {g.decode() for g in f["groups"][:]}
            train_f = {g.decode() for g, s in zip(f["groups"][:], split) if s == 0}
            test_f = {g.decode() for g, s in zip(f["groups"][:], split) if s == 1}
            assert not (train_f & test_f), f"{name}: a font family is in both train and test"
            if name == "glyphs-latin":
                assert len(fams) >= 100, f"glyphs-latin has {len(fams)} font families, need >= 100"
                assert classes == [chr(ord("A") + i) for i in range(26)]
        print(f"{name:20s} {n:6d} images {len(classes):3d} classes  ok")
print("all packed domains ok")
