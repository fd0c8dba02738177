#!/usr/bin/env python3
"""Where extraction's time goes, by operator: libtorch's profiler on
zoobench's ResNet layout (src/zoo/nets.cpp: a 3x3 stem, three stages of
basic blocks, widths w, 2w, 4w, 1x1 shortcuts where the shape changes) in
PyTorch on the same libtorch, eval mode, no autograd, a batch of 256 grey
32 x 32 images; before (each BatchNorm a pass of its own) and after folding
BatchNorm into the convolutions, as zoobench's extraction now runs them
(zoo::FoldedNet). Self CPU time per operator over 10 passes after 3 warm-up
passes; the folded outputs are checked against the unfolded ones.

    /usr/bin/python3 bench/python/extraction_profile.py [--widths 4 16] [--threads 2]"""
import argparse
import copy
import os
import subprocess

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if "OPENBLAS_CORETYPE" not in os.environ:  # the kernels zoobench runs (bench/blas_env.sh)
    _v = subprocess.run([os.path.join(REPO, "build", "zoobench"), "version"], capture_output=True, text=True).stdout
    for _line in _v.splitlines():
        if "set by zoobench (OPENBLAS_CORETYPE)" in _line:
            os.environ["OPENBLAS_CORETYPE"] = _line.split("kernels:")[1].split(",")[0].strip()
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from torch.nn.utils.fusion import fuse_conv_bn_eval  # noqa: E402


def conv3(i, o, s):
    return nn.Conv2d(i, o, 3, s, 1, bias=False)


class Block(nn.Module):
    def __init__(self, i, o, s):
        super().__init__()
        self.conv1, self.bn1 = conv3(i, o, s), nn.BatchNorm2d(o)
        self.conv2, self.bn2 = conv3(o, o, 1), nn.BatchNorm2d(o)
        self.down = (nn.Sequential(nn.Conv2d(i, o, 1, s, bias=False), nn.BatchNorm2d(o))
                     if s != 1 or i != o else nn.Identity())

    def forward(self, x):
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))) + self.down(x))

    def fold(self):
        self.conv1, self.bn1 = fuse_conv_bn_eval(self.conv1, self.bn1), nn.Identity()
        self.conv2, self.bn2 = fuse_conv_bn_eval(self.conv2, self.bn2), nn.Identity()
        if isinstance(self.down, nn.Sequential):
            self.down = fuse_conv_bn_eval(self.down[0], self.down[1])


class Net(nn.Module):
    def __init__(self, width, blocks_per_stage):
        super().__init__()
        self.stem = nn.Sequential(conv3(1, width, 1), nn.BatchNorm2d(width), nn.ReLU())
        layers, i = [], width
        for stage in range(3):
            for b in range(blocks_per_stage):
                o = width << stage
                layers.append(Block(i, o, 2 if stage > 0 and b == 0 else 1))
                i = o
        self.blocks = nn.Sequential(*layers)

    def forward(self, x):
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1)

    def fold(self):
        self.stem = nn.Sequential(fuse_conv_bn_eval(self.stem[0], self.stem[1]), nn.ReLU())
        for b in self.blocks:
            b.fold()
        return self


def profile(model, x, passes=10):
    with torch.no_grad():
        for _ in range(3):
            model(x)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as p:
            for _ in range(passes):
                model(x)
    events = p.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:5]
    return total / passes / 1e3, [(e.key, 100 * e.self_cpu_time_total / total) for e in top]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--widths", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for width in a.widths:
        torch.manual_seed(width)
        blocks = 1 if width < 16 else 3  # resnet8 for the narrow zoo widths, resnet20 w16
        net = Net(width, blocks).eval()
        with torch.no_grad():  # statistics as a trained net has them
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.3)
                    m.running_mean.normal_(0, 0.5), m.running_var.uniform_(0.2, 3.0)
        folded = copy.deepcopy(net).fold().eval()
        x = torch.randn(256, 1, 32, 32)
        with torch.no_grad():
            want, got = net(x), folded(x)
        diff = (got - want).abs().max().item()
        if diff > 1e-4 * max(want.abs().max().item(), 1.0):
            raise SystemExit(f"folded features differ from unfolded ones by {diff}")
        for name, m in (("unfolded", net), ("folded", folded)):
            ms, top = profile(m, x)
            print(f"resnet{2 + 6 * blocks} w{width} {name}: {ms:.1f} ms a batch (profiled); "
                  + "; ".join(f"{k} {p:.0f} %" for k, p in top), flush=True)


if __name__ == "__main__":
    main()
