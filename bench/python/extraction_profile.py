#!/usr/bin/env python3
"""Where extraction's time goes, by operator: libtorch's profiler on
zoobench's networks (src/zoo/nets.cpp, as finetune_baseline.py ports them)
in PyTorch on the same libtorch, eval mode, no autograd, a batch of 256 grey
32 x 32 images; before (each BatchNorm a pass of its own) and after folding
BatchNorm into the convolutions, as zoobench's extraction now runs them
(zoo::FoldedNet). Self CPU time per operator over 10 passes after 3 warm-up
passes; the folded outputs are checked against the unfolded ones.

    /usr/bin/python3 bench/python/extraction_profile.py [--nets resnet8:4 resnet20:16] [--threads 2]"""
import argparse
import copy
import os
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if "OPENBLAS_CORETYPE" not in os.environ:  # the kernels zoobench runs (bench/blas_env.sh)
    _v = subprocess.run([os.path.join(REPO, "build", "zoobench"), "version"], capture_output=True, text=True).stdout
    for _line in _v.splitlines():
        if "set by zoobench (OPENBLAS_CORETYPE)" in _line:
            os.environ["OPENBLAS_CORETYPE"] = _line.split("kernels:")[1].split(",")[0].strip()
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from torch.nn.utils.fusion import fuse_conv_bn_eval  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from finetune_baseline import Net  # noqa: E402  (nets.cpp's layout in PyTorch)


def fold(net):
    """Every BatchNorm into the convolution before it, as zoo::FoldedNet."""
    def fused(conv, bn):
        return fuse_conv_bn_eval(conv, bn), nn.Identity()
    if net.arch == "cnn":
        for k in range(len(net.convs)):
            net.convs[k], net.conv_bns[k] = fused(net.convs[k], net.conv_bns[k])
    else:
        net.stem, net.stem_bn = fused(net.stem, net.stem_bn)
        for b in net.blocks:
            b.conv1, b.bn1 = fused(b.conv1, b.bn1)
            b.conv2, b.bn2 = fused(b.conv2, b.bn2)
            if b.down is not None:
                b.down, b.down_bn = fused(b.down, b.down_bn)
    return net


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
    ap.add_argument("--nets", nargs="+", default=["resnet8:4", "resnet20:16"], help="ARCH:WIDTH ...")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for spec in a.nets:
        arch, width = spec.split(":")
        torch.manual_seed(int(width))
        net = Net(arch, int(width), 1, 10).eval()
        with torch.no_grad():  # statistics as a trained net has them
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.3)
                    m.running_mean.normal_(0, 0.5), m.running_var.uniform_(0.2, 3.0)
        folded = fold(copy.deepcopy(net)).eval()
        x = torch.randn(256, 1, 32, 32)
        with torch.no_grad():
            want, got = net.features(x), folded.features(x)
        diff = (got - want).abs().max().item()
        if diff > 1e-4 * max(want.abs().max().item(), 1.0):
            raise SystemExit(f"{spec}: folded features differ from unfolded ones by {diff}")
        for name, m in (("unfolded", net), ("folded", folded)):
            ms, top = profile(m.features, x)
            print(f"{arch} w{width} {name}: {ms:.1f} ms a batch (profiled); "
                  + "; ".join(f"{k} {p:.0f} %" for k, p in top), flush=True)


if __name__ == "__main__":
    main()
