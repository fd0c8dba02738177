#!/usr/bin/python3
"""Exports a small PyTorch model as TorchScript for a zoobench zoo, with the
reference outputs that the C++ side must reproduce.

    /usr/bin/python3 tools/export_torchscript.py OUT_DIR [--channels 1] [--classes 10] [--wrong-shape]

Writes OUT_DIR/model.pt (methods `features` -> N x D and `forward` -> N x C),
OUT_DIR/manifest.yaml (a `format: torchscript` entry) and OUT_DIR/reference.h5
(a fixed input and the model's features and logits for it). --wrong-shape
exports a model whose `features` returns N x C x H x W, for error tests."""
import argparse
import hashlib
import os

import h5py
import numpy as np
import torch
import torch.nn as nn


class Small(nn.Module):
    def __init__(self, channels: int, classes: int, wrong_shape: bool):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.head = nn.Linear(16, classes)
        self.wrong_shape = wrong_shape

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        if self.wrong_shape:
            return h
        return h.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean(dim=(2, 3)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--name", default="external-small")
    ap.add_argument("--wrong-shape", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(0)
    model = Small(a.channels, a.classes, a.wrong_shape)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for bn in (model.body[1], model.body[5]):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
    model.eval()
    scripted = torch.jit.script(model)
    path = os.path.join(a.out, "model.pt")
    scripted.save(path)
    mean, std = [0.5] * a.channels, [0.25] * a.channels
    x = torch.rand(6, a.channels, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        xn = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
        feats, logits = scripted.features(xn), scripted(xn)
    with h5py.File(os.path.join(a.out, "reference.h5"), "w") as f:
        f["input"] = x.numpy().astype(np.float32)
        f["features"] = feats.numpy().astype(np.float32)
        f["logits"] = logits.numpy().astype(np.float32)
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    classes = ", ".join(f'"c{i}"' for i in range(a.classes))
    with open(os.path.join(a.out, "manifest.yaml"), "w") as f:
        f.write(f"""zoobench_manifest: 1
models:
  - name: {a.name}
    format: torchscript
    kind: external
    weights: model.pt
    sha256: {sha}
    in_channels: {a.channels}
    input_size: 32
    mean: {mean}
    std: {std}
    source_domains: [synthetic]
    source_classes: [{classes}]
    features_method: features
    logits_method: forward
""")
    print(f"exported {path} (sha256 {sha[:12]}...)")


if __name__ == "__main__":
    main()
