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


def readme_table():
    """The README's table of domains: name -> (classes, images) as ranges, so
    the numbers it shows users are the ones packing gives."""
    readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")
    rows, inside = {}, False
    for line in open(readme, encoding="utf-8"):
        if line.startswith("| domain | classes | images |"):
            inside = True
            continue
        if inside and not line.startswith("|"):
            break
        if not inside or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        def span(text):
            lo, _, hi = text.replace(",", "").replace(" each", "").partition("–")
            return int(lo), int(hi or lo)
        first, _, rest = cells[0].partition(", ")
        names = [first] + ["-".join(first.split("-")[:-1]) + n for n in rest.split(", ") if rest]
        if " / " in cells[0]:
            names = [n.strip() for n in cells[0].split(" / ")]
        rows[tuple(names)] = (span(cells[1]), span(cells[2]))
    return rows


table = readme_table()
assert sorted(n for names in table for n in names) == sorted(expected), f"the README's table lists {sorted(table)}"
counts = {}
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
        counts[name] = (len(classes), n)
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
for names, ((c_lo, c_hi), (n_lo, n_hi)) in table.items():
    got_c = [counts[n][0] for n in names]
    got_n = [counts[n][1] for n in names]
    # A row of one domain states its numbers; a row of several states the range they span.
    assert (min(got_c), max(got_c)) == (c_lo, c_hi), f"README: {names} have {c_lo}-{c_hi} classes, packed {got_c}"
    assert (min(got_n), max(got_n)) == (n_lo, n_hi), f"README: {names} have {n_lo}-{n_hi} images, packed {got_n}"
print(f"all packed domains ok; the README's table matches them ({len(table)} rows)")
