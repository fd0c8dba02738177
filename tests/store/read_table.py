"""Reads a zoobench columnar table with h5py + pandas; exits non-zero on a mismatch."""
import sys

import h5py
import pandas as pd

with h5py.File(sys.argv[1], "r") as f:
    g = f["scores"]
    df = pd.DataFrame({k: g[k].asstr()[:] if g[k].dtype.kind == "O" else g[k][:] for k in g})
    assert f.attrs["schema_version"] == 1
df = df.sort_values("model").reset_index(drop=True)
assert list(df["model"]) == ["cnn-glyphs", "resnet8-fashion"], df
assert list(df["task"]) == ["thaï", "opencv-digits"], df
assert df["shot"].dtype.kind == "i" and list(df["shot"]) == [5, 10], df
assert df["value"].dtype.kind == "f" and list(df["value"]) == [-1.5, 0.75], df
print(df.to_string())
