#!/usr/bin/python3
"""Exports a model as TorchScript for a zoobench zoo, with reference outputs for the C++ side.

    /usr/bin/python3 tools/export_torchscript.py OUT_DIR [--channels 1] [--classes 10] [--name N] [--wrong-shape]
    /usr/bin/python3 tools/export_torchscript.py OUT_DIR --torchvision NAME [--weights FILE]
        [--num-classes C] [--input-size S] [--name ENTRY] [--seed N]

The first form exports a tiny built-in CNN ("Small", for tests); --wrong-shape
makes its `features` return N x C x H x W, for error tests. The second exports
any torchvision.models classification builder, built with weights=None: random
initialisation after torch.manual_seed(N) (default 0), or --weights FILE, a
local torch.save'd state_dict or a dict with a "state_dict" (or "model") key
and an optional "classes" list of names, loaded with strict=True. The class
count is --num-classes, else the weights' final layer, else 1000. `features`
is the input to the model's last nn.Linear, which becomes the head that
`forward` applies; the split is checked against the original model. Inputs are
resized to S x S (default 224) and ImageNet-normalised.

Both write OUT_DIR/model.pt (methods `features` -> N x D, `forward` -> N x C;
the torchvision form adds `features_and_logits`, both from one forward pass),
OUT_DIR/manifest.yaml (one `format: torchscript` entry) and OUT_DIR/reference.h5
("input": 6 x channels x 32 x 32 in [0, 1] and the model's "features" and
"logits" for it; the torchvision form adds "resized" when S != 32). Its errors
print one line and exit 2 (arguments, weights) or 1 (a model that cannot be
exported), writing nothing."""
import argparse
import hashlib
import json
import os
import sys
import warnings
from typing import Tuple

import h5py
import numpy as np
import torch
import torch.nn as nn

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


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


def export_small(a):
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


class Exported(nn.Module):
    """A torchvision model split at its last nn.Linear (an nn.Identity in the body now)."""

    def __init__(self, body: nn.Module, head: nn.Linear):
        super().__init__()
        self.body = body
        self.head = head

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    # What extraction calls: both outputs from one pass through the body.
    @torch.jit.export
    def features_and_logits(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        f = self.body(x)
        return f, self.head(f)


class Traceable(Exported):
    # torch.jit.trace_module scripts @torch.jit.export methods, and scripting
    # is what failed when tracing is tried, so the methods must not carry it.
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def features_and_logits(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        f = self.body(x)
        return f, self.head(f)


def fail(msg, code=2):
    print(f"export_torchscript.py: error: {msg}", file=sys.stderr)
    sys.exit(code)


def one_line(e):
    s = "; ".join(p.strip() for p in str(e).splitlines() if p.strip())
    return s if len(s) <= 400 else s[:400] + " ..."


def builder_names(tvm):
    if hasattr(tvm, "list_models"):
        return sorted(tvm.list_models(module=tvm))
    # Older releases: the namespace also holds classes and helpers (detection etc. are in subpackages).
    return sorted(n for n in dir(tvm) if n[:1].islower() and not n.startswith("get_")
                  and callable(getattr(tvm, n)) and not isinstance(getattr(tvm, n), type))


def read_weights(path):
    """Returns (state_dict, classes or None); weights_only so that a weights file cannot run code."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        fail(f"cannot read weights file {path} (expected a torch.save'd state_dict): {one_line(e)}")
    classes = None
    if isinstance(obj, dict) and ("state_dict" in obj or "model" in obj):
        classes = obj.get("classes")
        obj = obj["state_dict"] if "state_dict" in obj else obj["model"]
    if not isinstance(obj, dict) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        fail(f"weights file {path} holds no state_dict (nor a dict with a 'state_dict' or 'model' one)")
    if classes is not None and not (isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes)):
        fail(f"weights file {path}: 'classes' must be a list of strings")
    return obj, (list(classes) if classes is not None else None)


def build(tvm, name, num_classes, size, seed, state_dict):
    kw = {"num_classes": num_classes}
    if name.startswith("vit_"):  # their position embedding is sized for one input size
        kw["image_size"] = size
    elif name.startswith("maxvit_"):
        kw["input_size"] = (size, size)
    elif name in ("googlenet", "inception_v3"):
        # Aux heads only exist in training; keep them only if the weights have them
        # so strict loading works, and mirror the builder's transform_input for
        # pretrained weights.
        aux = state_dict is not None and any(k.startswith(("aux1.", "aux2.", "AuxLogits.")) for k in state_dict)
        kw.update(aux_logits=aux, init_weights=True, transform_input=state_dict is not None)
    torch.manual_seed(seed)
    try:
        return getattr(tvm, name)(weights=None, **kw)
    except Exception as e:
        fail(f"torchvision.models.{name}({', '.join(f'{k}={v!r}' for k, v in kw.items())}) failed: {one_line(e)}", 1)


def last_linear(model):
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return names[-1] if names else None


def split_at(model, head_name):
    parent, _, child = head_name.rpartition(".")
    owner = model.get_submodule(parent) if parent else model
    head = getattr(owner, child)
    setattr(owner, child, nn.Identity())
    return Exported(model, head)


def to_torchscript(wrapped, x):
    try:
        return torch.jit.script(wrapped)
    except Exception as e:
        print(f"note: torch.jit.script failed ({one_line(e)[:200]}); using torch.jit.trace instead, "
              f"whose graph is only checked for {x.shape[-1]} x {x.shape[-1]} inputs", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        try:
            return torch.jit.trace_module(Traceable(wrapped.body, wrapped.head), {"forward": x, "features": x,
                                                                          "features_and_logits": x})
        except Exception as e:
            fail(f"neither torch.jit.script nor torch.jit.trace can export this model: {one_line(e)}", 1)


def export_torchvision(a):
    import torchvision
    import torchvision.models as tvm
    import torchvision.transforms as T

    names = builder_names(tvm)
    if a.torchvision not in names:
        fail(f"unknown torchvision model '{a.torchvision}'; valid names: {', '.join(names)}")
    name, size, seed = a.torchvision, a.input_size or 224, a.seed if a.seed is not None else 0
    state_dict, classes = read_weights(a.weights) if a.weights else (None, None)

    model = build(tvm, name, a.num_classes or 1000, size, seed, state_dict)
    head_name = last_linear(model)
    if head_name is None:
        fail(f"{name} has no nn.Linear layer, so it has no pooled features to export", 1)
    if state_dict is not None:
        w = state_dict.get(head_name + ".weight")
        if w is not None and w.dim() == 2:
            if a.num_classes and a.num_classes != w.shape[0]:
                fail(f"weights file {a.weights}: --num-classes {a.num_classes} but its final layer "
                     f"'{head_name}' has {w.shape[0]} outputs")
            if w.shape[0] != (a.num_classes or 1000):
                model = build(tvm, name, w.shape[0], size, seed, state_dict)
        try:
            model.load_state_dict(state_dict, strict=True)
        except Exception as e:
            fail(f"weights file {a.weights} does not fit torchvision {name}: {one_line(e)}")
    n_classes, n_features = (getattr(model.get_submodule(head_name), k) for k in ("out_features", "in_features"))
    if classes is not None and len(classes) != n_classes:
        fail(f"weights file {a.weights}: 'classes' lists {len(classes)} names but the model has {n_classes} classes")
    model.eval()

    x_check = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    head_inputs = []  # what the original head sees: the features the split must reproduce
    hook = model.get_submodule(head_name).register_forward_pre_hook(lambda m, i: head_inputs.append(i[0]))
    with torch.no_grad():
        try:
            expected = model(x_check)
        except Exception as e:
            fail(f"{name} does not run on 3 x {size} x {size} inputs: {one_line(e)}", 1)
        hook.remove()
        if not torch.is_tensor(expected) or expected.shape != (2, n_classes) or not head_inputs:
            fail(f"{name} does not return N x {n_classes} logits from its last nn.Linear '{head_name}' "
                 f"in eval mode", 1)
        exported = to_torchscript(split_at(model, head_name), x_check)
        got, feats = exported(x_check), exported.features(x_check)
        both = exported.features_and_logits(x_check)
    if feats.dim() != 2 or feats.shape[1] != n_features:
        fail(f"{name}: the input to its last nn.Linear '{head_name}' is {list(feats.shape)}, "
             f"not N x {n_features} pooled features", 1)
    # Relative to each output's scale: random-init models can give logits of
    # 1e-10 (mobilenet_v3_*) or exactly 0 (vit_*: zero-initialised head).
    for what, out, ref in (("features(x)", feats, head_inputs[-1]), ("head(features(x))", got, expected),
                           ("features_and_logits(x)[0]", both[0], head_inputs[-1]),
                           ("features_and_logits(x)[1]", both[1], expected)):
        err = (out - ref).abs().max().item()
        if not err <= 1e-5 * ref.abs().max().item():
            fail(f"{name}: {what} differs from the original model's by {err:.3g}; its last nn.Linear "
                 f"'{head_name}' is not its final operation, so the model cannot be split there", 1)

    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    resized = x if size == 32 else T.Resize((size, size), interpolation=T.InterpolationMode.BILINEAR,
                                            antialias=True)(x)
    with torch.no_grad():
        xn = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)(resized)
        feats, logits = exported.features(xn), exported(xn)

    entry = a.name or name
    if a.weights:
        wsha = hashlib.sha256(open(a.weights, "rb").read()).hexdigest()
        origin = f"weights file {os.path.abspath(a.weights)} (sha256 {wsha})".replace("\n", "\\n")
    else:
        origin = f"random initialisation, seed {seed} (no weights file)"
    # Provenance goes in comments: the manifest schema rejects unknown keys.
    classes_line = f"\n    source_classes: [{', '.join(map(json.dumps, classes))}]" if classes is not None else ""
    def manifest(sha):
        return f"""# Exported by tools/export_torchscript.py from torchvision.models.{name} \
(torchvision {torchvision.__version__}, torch {torch.__version__}).
# Weights: {origin}
# features = the input to its last nn.Linear '{head_name}'; forward = that layer on them.
zoobench_manifest: 1
models:
  - name: {json.dumps(entry)}
    format: torchscript
    kind: external
    weights: model.pt
    sha256: {sha}
    in_channels: 3
    input_size: {size}
    mean: {IMAGENET_MEAN}
    std: {IMAGENET_STD}
    source_domains: {'[imagenet]' if a.weights else '[]'}{classes_line}
    features_method: features
    logits_method: forward
    features_and_logits_method: features_and_logits
"""

    # Temporary names, renamed only once everything is written, so that a
    # failure never leaves a half-written export (or a manifest without a model).
    created = not os.path.isdir(a.out)
    os.makedirs(a.out, exist_ok=True)
    final = {f: os.path.join(a.out, f) for f in ("model.pt", "reference.h5", "manifest.yaml")}
    tmp = {f: os.path.join(a.out, f".{f}.tmp{os.getpid()}") for f in final}
    try:
        exported.save(tmp["model.pt"])
        sha = hashlib.sha256(open(tmp["model.pt"], "rb").read()).hexdigest()
        with h5py.File(tmp["reference.h5"], "w") as f:
            f["input"] = x.numpy().astype(np.float32)
            if size != 32:
                f["resized"] = resized.numpy().astype(np.float32)
            f["features"] = feats.numpy().astype(np.float32)
            f["logits"] = logits.numpy().astype(np.float32)
            f.attrs.update(torchvision_version=torchvision.__version__, model=name, name=entry, input_size=size)
        with open(tmp["manifest.yaml"], "w") as f:
            f.write(manifest(sha))
        for f in final:  # the manifest last: it is what points at the rest
            os.replace(tmp[f], final[f])
    except BaseException:
        for p in filter(os.path.exists, tmp.values()):
            os.remove(p)
        if created and not os.listdir(a.out):
            os.rmdir(a.out)
        raise
    print(f"exported {final['model.pt']}: {entry} (torchvision {name}), features {feats.shape[1]}, "
          f"classes {n_classes}, input {size}x{size}, sha256 {sha[:12]}...")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--name", help="manifest entry name (default: external-small, or the torchvision NAME)")
    small = ap.add_argument_group("Small mode")
    small.add_argument("--channels", type=int)
    small.add_argument("--classes", type=int)
    small.add_argument("--wrong-shape", action="store_true")
    tv = ap.add_argument_group("torchvision mode")
    tv.add_argument("--torchvision", metavar="NAME", help="a torchvision.models classification builder")
    tv.add_argument("--weights", metavar="FILE", help="local torch.save'd state_dict (default: random init)")
    tv.add_argument("--num-classes", type=int)
    tv.add_argument("--input-size", type=int, help="default 224")
    tv.add_argument("--seed", type=int, help="for the random initialisation (default 0)")
    a = ap.parse_args()
    if a.torchvision is not None:
        if a.channels is not None or a.classes is not None or a.wrong_shape:
            ap.error("--channels, --classes and --wrong-shape only apply to the Small model, not to --torchvision")
        for flag, v in (("--num-classes", a.num_classes), ("--input-size", a.input_size)):
            if v is not None and v < 1:
                ap.error(f"{flag} must be positive")
        export_torchvision(a)
    else:
        if a.weights or a.num_classes is not None or a.input_size is not None or a.seed is not None:
            ap.error("--weights, --num-classes, --input-size and --seed only apply with --torchvision")
        a.channels = 1 if a.channels is None else a.channels
        a.classes = 10 if a.classes is None else a.classes
        a.name = a.name or "external-small"
        export_small(a)


if __name__ == "__main__":
    main()
