"""PyTorch-Python baseline for zoobench's fine-tuning and feature-extraction
throughput: the same architectures (src/zoo/nets.cpp), the same fine-tuning
loop (train_copy in src/finetune/finetune.cpp, augment in
src/finetune/augment.cpp) and the same extraction loop (extract_cell in
src/extract/extract.cpp), on seeded random 32x32 images, with Debian's
python3-torch (the libtorch 1.13 that zoobench links against).

    /usr/bin/python3 bench/python/finetune_baseline.py --arch resnet8 --width 8 \
        --n 512 --batch 32 --epochs 2 --threads 1 --repeats 2 --json

Training throughput: per repeat a fresh copy of the network and a new SGD
optimiser, one warm-up epoch, then --epochs timed epochs; images/s counts the
images actually trained on (a ragged last batch of size < 2 is skipped, as in
train_copy). Extraction throughput: eval mode, no_grad, batches of
--extract-batch images; like extract_cell for a builtin model, the timed
loop includes the uint8 -> float conversion of each batch and the source
head's logits. Both report the best and the median of --repeats.

Parameter counts (hand-derived from src/zoo/nets.cpp: conv3x3 without bias,
BatchNorm2d = 2C parameters, 1x1 downsample conv without bias + BN when the
shape changes, Linear(4w, C) head with bias), in=1 channel, width w = 8:

    backbone (no heads)      + new head 10 classes (32*10 + 10 = 330)
    resnet8   19,480           19,810
    resnet14  43,896           44,226
    resnet20  68,312           68,642
    cnn        5,944            6,274

  resnet8 w=8 in=1, term by term: stem 1*8*9 + 16 = 88; block0_0 (8->8)
  2*(8*8*9) + 2*16 = 1,184; block1_0 (8->16, stride 2) 8*16*9 + 16*16*9 +
  2*32 + down 8*16 + 32 = 3,680; block2_0 (16->32, stride 2) 16*32*9 +
  32*32*9 + 2*64 + down 16*32 + 64 = 14,528; sum 19,480.
  With in=3 channels the stem gains 2*8*9 = 144 (resnet8: 19,624).

"trainable_params" in the JSON is what BuiltinTunable::parameters() hands
to SGD: every backbone parameter plus the new head (the source heads are left
out). The script checks it against expected_params() (the closed form of the
table above) and exits non-zero on a mismatch.
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ARCH_BLOCKS = {"resnet8": 1, "resnet14": 2, "resnet20": 3}
CHANNELS_LAST = False


def conv3(cin, cout, stride):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """nets.cpp BasicBlockImpl with one BatchNorm set (a single domain)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = conv3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = conv3(cout, cout, 1)
        self.bn2 = nn.BatchNorm2d(cout)
        if stride != 1 or cin != cout:
            self.down = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
            self.down_bn = nn.BatchNorm2d(cout)
        else:
            self.down = None

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        c = self.conv2(h)
        skip = self.down_bn(self.down(x)) if self.down is not None else x
        return torch.relu(self.bn2(c) + skip)


class Net(nn.Module):
    """nets.cpp NetImpl, single domain: features() and one source head."""

    def __init__(self, arch, width, in_channels, source_classes):
        super().__init__()
        self.arch = arch
        w = width
        if arch == "cnn":
            self.convs = nn.ModuleList()
            self.conv_bns = nn.ModuleList()
            cin = in_channels
            for k in range(3):
                out = w << k
                self.convs.append(conv3(cin, out, 1))
                self.conv_bns.append(nn.BatchNorm2d(out))
                cin = out
        elif arch in ARCH_BLOCKS:
            n = ARCH_BLOCKS[arch]
            self.stem = conv3(in_channels, w, 1)
            self.stem_bn = nn.BatchNorm2d(w)
            blocks = []
            cin = w
            for stage in range(3):
                for b in range(n):
                    out = w << stage
                    blocks.append(BasicBlock(cin, out, 2 if stage > 0 and b == 0 else 1))
                    cin = out
            self.blocks = nn.Sequential(*blocks)
        else:
            raise SystemExit(f"unknown architecture '{arch}' (known: resnet8, resnet14, resnet20, cnn)")
        self.feature_dim = 4 * w
        self.head0 = nn.Linear(self.feature_dim, source_classes)

    def features(self, x):
        if self.arch == "cnn":
            h = x
            last = len(self.convs) - 1
            for k, (conv, bn) in enumerate(zip(self.convs, self.conv_bns)):
                h = torch.relu(bn(conv(h)))
                if k < last:
                    h = F.max_pool2d(h, 2)
        else:
            h = torch.relu(self.stem_bn(self.stem(x)))
            h = self.blocks(h)
        return F.adaptive_avg_pool2d(h, (1, 1)).flatten(1)

    def forward(self, x):
        return self.head0(self.features(x))


class Normaliser:
    """model.cpp Normaliser: (x - mean) / std with 1 x C x 1 x 1 tensors."""

    def __init__(self, mean, std, channels):
        self.mean = torch.tensor([mean] * channels, dtype=torch.float32).view(1, channels, 1, 1)
        self.std = torch.tensor([std] * channels, dtype=torch.float32).view(1, channels, 1, 1)

    def __call__(self, x):
        return (x - self.mean) / self.std


class Tunable(nn.Module):
    """model.cpp BuiltinTunable: the cloned source net plus a new Linear head;
    normalisation happens inside forward, on every batch."""

    def __init__(self, net, norm, classes):
        super().__init__()
        self.net = net
        self.norm = norm
        self.head = nn.Linear(net.feature_dim, classes)

    def forward(self, x):
        return self.head(self.net.features(self.norm(x)))

    def tuned_parameters(self):
        # The source heads get no gradient and no weight decay: left out.
        p = [t for name, t in self.net.named_parameters() if not name.startswith("head")]
        return p + list(self.head.parameters())


def expected_params(arch, w, cin, classes):
    """Closed form of the docstring table (backbone + new head)."""
    head = 4 * w * classes + classes  # Linear(4w, classes) with bias
    if arch == "cnn":
        total, i = 0, cin
        for k in range(3):
            o = w << k
            total += 9 * i * o + 2 * o
            i = o
        return total + head
    n = ARCH_BLOCKS[arch]
    total = 9 * cin * w + 2 * w  # stem + stem_bn
    for s in range(3):
        ws = w << s
        i = w if s == 0 else w << (s - 1)
        total += 9 * i * ws + 9 * ws * ws + 4 * ws  # first block: conv1, conv2, bn1, bn2
        if s > 0:
            total += i * ws + 2 * ws  # 1x1 downsample + its BN
        total += (n - 1) * (18 * ws * ws + 4 * ws)  # the other blocks
    return total + head


def augment_loop(batch, pad, flip, gen):
    """augment.cpp, step for step: replicate pad, per-sample offsets in
    [0, 2 pad] (row, column) and flip bits drawn from gen, a per-sample
    narrow, then stack."""
    if pad == 0 and not flip:
        return batch
    n, h, w = batch.shape[0], batch.shape[2], batch.shape[3]
    padded = F.pad(batch, (pad, pad, pad, pad), mode="replicate") if pad > 0 else batch
    offs = torch.randint(0, 2 * pad + 1, (n, 2), generator=gen, dtype=torch.long)
    flips = torch.randint(0, 2, (n,), generator=gen, dtype=torch.long)
    o = offs.tolist()
    fl = flips.tolist()
    out = []
    for i in range(n):
        x = padded[i].narrow(1, o[i][0], h).narrow(2, o[i][1], w)
        if flip and fl[i]:
            x = x.flip(2)
        out.append(x)
    return torch.stack(out)


def augment_gather(batch, pad, flip, gen):
    """The same crops (same draws from gen) without a per-sample loop: one
    advanced-indexing gather. Not what zoobench does; an upper reference."""
    if pad == 0 and not flip:
        return batch
    n, c, h, w = batch.shape
    padded = F.pad(batch, (pad, pad, pad, pad), mode="replicate") if pad > 0 else batch
    offs = torch.randint(0, 2 * pad + 1, (n, 2), generator=gen, dtype=torch.long)
    flips = torch.randint(0, 2, (n,), generator=gen, dtype=torch.long)
    rows = offs[:, 0:1] + torch.arange(h)  # n x h
    cols = offs[:, 1:2] + torch.arange(w)  # n x w
    if flip:
        cols = torch.where(flips.bool().unsqueeze(1), cols.flip(1), cols)
    ni = torch.arange(n).view(n, 1, 1, 1)
    ci = torch.arange(c).view(1, c, 1, 1)
    return padded[ni, ci, rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]


def train_copy(source, norm, xtr, ytr, classes, lr, epochs, batch, momentum, weight_decay, pad, flip, seed,
               augment, on_epoch_end=None):
    """finetune.cpp train_copy: step decay x0.1 at 50 % and x0.01 at 83 % of
    the epochs, randperm per epoch and augmentation from one generator
    seeded seed + 1, SGD (Nesterov when momentum > 0), cross-entropy."""
    n = xtr.shape[0]
    e1, e2 = epochs // 2, int(epochs * 0.83)
    torch.manual_seed(seed)  # finetune_copy: seeds the new head's initialisation
    net = Tunable(clone(source), norm, classes)
    if CHANNELS_LAST:
        net = net.to(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.SGD(net.tuned_parameters(), lr=lr, momentum=momentum, nesterov=momentum > 0,
                          weight_decay=weight_decay, foreach=False)
    trained = 0
    for e in range(epochs):
        factor = 0.01 if e >= e2 else 0.1 if e >= e1 else 1.0
        for g in opt.param_groups:
            g["lr"] = lr * factor
        net.train(True)
        perm = torch.randperm(n, generator=gen, dtype=torch.long)
        for lo in range(0, n, batch):
            b = min(batch, n - lo)
            if b < 2 and n >= 2:
                continue  # BatchNorm needs two samples; only a ragged last batch is skipped
            idx = perm.narrow(0, lo, b)
            x = augment(xtr.index_select(0, idx), pad, flip, gen)
            if CHANNELS_LAST:
                x = x.contiguous(memory_format=torch.channels_last)
            opt.zero_grad(set_to_none=False)  # libtorch 1.13's Optimizer::zero_grad zeroes in place
            F.cross_entropy(net(x), ytr.index_select(0, idx)).backward()
            opt.step()
            trained += b
        if on_epoch_end:
            on_epoch_end(e, trained)
    return net


def clone(net):
    """nets.cpp clone_net: a deep copy of parameters and buffers."""
    import copy

    return copy.deepcopy(net)


def extract(source, norm, images_u8, batch):
    """extract.cpp extract_cell for a builtin model (BuiltinModel is in eval
    mode): per batch, uint8 -> float in [0, 1], features and source logits."""
    source.eval()
    feats, logits = [], []
    with torch.no_grad():
        for lo in range(0, images_u8.shape[0], batch):
            x = images_u8[lo:lo + batch].to(torch.float32).mul_(1.0 / 255.0)
            if CHANNELS_LAST:
                x = x.contiguous(memory_format=torch.channels_last)
            f = source.features(norm(x))
            feats.append(f)
            logits.append(source.head0(f))
    return torch.cat(feats), torch.cat(logits)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet8", choices=sorted(ARCH_BLOCKS) + ["cnn"])
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--channels", type=int, default=1, choices=(1, 3))
    ap.add_argument("--classes", type=int, default=10, help="classes of the fine-tuning task (the new head)")
    ap.add_argument("--source-classes", type=int, default=10, help="classes of the source head (extraction logits)")
    ap.add_argument("--n", type=int, default=512, help="training images (and images extracted)")
    ap.add_argument("--batch", type=int, default=32, help="fine-tuning batch size (config finetune.batch_size)")
    ap.add_argument("--extract-batch", type=int, default=256, help="extraction batch size (config extract.batch_size)")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs, after one warm-up epoch")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--crop-padding", type=int, default=2)
    ap.add_argument("--flip", action="store_true", help="also random left-right flips (flip_domains)")
    ap.add_argument("--augment", default="loop", choices=("loop", "gather"),
                    help="loop: augment.cpp's per-sample narrow + stack (default); gather: one indexing op")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mean", type=float, default=0.5)
    ap.add_argument("--std", type=float, default=0.25)
    ap.add_argument("--json", action="store_true", help="print only one JSON line")
    ap.add_argument("--channels-last", action="store_true",
                    help="the network and its inputs in channels-last (NHWC) memory format")
    a = ap.parse_args()
    global CHANNELS_LAST
    CHANNELS_LAST = a.channels_last
    if a.n < 2 or a.batch < 1 or a.epochs < 1 or a.repeats < 1:
        raise SystemExit("need --n >= 2, --batch >= 1, --epochs >= 1, --repeats >= 1")

    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(a.seed)
    images_u8 = torch.randint(0, 256, (a.n, a.channels, 32, 32), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, a.classes, (a.n,), generator=g, dtype=torch.long)
    xtr = images_u8.to(torch.float32).mul_(1.0 / 255.0)  # images_tensor: done before train_copy, not timed
    norm = Normaliser(a.mean, a.std, a.channels)
    torch.manual_seed(a.seed)
    source = Net(a.arch, a.width, a.channels, a.source_classes)
    if CHANNELS_LAST:
        source = source.to(memory_format=torch.channels_last)
    augment = augment_loop if a.augment == "loop" else augment_gather

    probe = Tunable(source, norm, a.classes)
    params = sum(t.numel() for t in probe.tuned_parameters())
    expected = expected_params(a.arch, a.width, a.channels, a.classes)
    if params != expected:
        print(f"parameter count {params} != expected {expected} from nets.cpp", file=sys.stderr)
        sys.exit(1)
    del probe

    # Training: one warm-up epoch, then the timed epochs, per repeat.
    train_rates = []
    for _ in range(a.repeats):
        marks = {}

        def on_epoch_end(e, trained):
            marks[e] = (time.perf_counter(), trained)

        train_copy(source, norm, xtr, labels, a.classes, a.lr, 1 + a.epochs, a.batch, a.momentum, a.weight_decay,
                   a.crop_padding, a.flip, a.seed, augment, on_epoch_end)
        (tw, nw), (te, ne) = marks[0], marks[a.epochs]
        train_rates.append((ne - nw) / (te - tw))

    # Extraction: one warm-up pass, then the timed passes.
    extract(source, norm, images_u8, a.extract_batch)
    extract_rates = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        f, z = extract(source, norm, images_u8, a.extract_batch)
        extract_rates.append(a.n / (time.perf_counter() - t0))
    assert f.shape == (a.n, 4 * a.width) and z.shape == (a.n, a.source_classes)

    result = {
        "impl": "pytorch-python",
        "arch": a.arch,
        "width": a.width,
        "channels": a.channels,
        "classes": a.classes,
        "n": a.n,
        "batch": a.batch,
        "extract_batch": a.extract_batch,
        "epochs": a.epochs,
        "repeats": a.repeats,
        "threads": torch.get_num_threads(),
        "augment": a.augment,
        "flip": a.flip,
        "trainable_params": params,
        "train_images_per_s": round(max(train_rates), 1),
        "train_images_per_s_median": round(statistics.median(train_rates), 1),
        "extract_images_per_s": round(max(extract_rates), 1),
        "extract_images_per_s_median": round(statistics.median(extract_rates), 1),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "torch": torch.__version__,
    }
    if a.json:
        print(json.dumps(result))
    else:
        print(f"{a.arch} w={a.width} in={a.channels}: {params:,} trainable parameters (expected {expected:,})")
        print(f"train    {result['train_images_per_s']:>10,.1f} images/s best, "
              f"{result['train_images_per_s_median']:,.1f} median  (batch {a.batch}, {a.epochs} epochs x {a.repeats})")
        print(f"extract  {result['extract_images_per_s']:>10,.1f} images/s best, "
              f"{result['extract_images_per_s_median']:,.1f} median  (batch {a.extract_batch}, {a.n} images)")
        print(json.dumps(result))


if __name__ == "__main__":
    main()
