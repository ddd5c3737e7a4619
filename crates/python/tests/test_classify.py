"""Accelerator.classify: the real EfficientNet-Lite0 test model against its
PyTorch goldens (crates/models/tests/goldens/efficientnet_lite0.json), and
the tiny random ViT and CLIP of crates/models/tests/goldens/tiny-vision.json
(weights regenerated here from their seeds, as the Rust tests do) against
transformers' probabilities."""

import json
import math
import struct
from pathlib import Path

import pytest

import ipfs_accelerate
from ipfs_accelerate import InvalidInputError, ModelNotFoundError

GOLDENS = Path(__file__).resolve().parents[2] / "models" / "tests" / "goldens"


def _softmax(logits):
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    total = sum(exps)
    return [e / total for e in exps]


def _lcg_values(spec):
    """The golden scripts' generator (crates/models/tests/common/lcg_weights.rs), value for value."""
    n = math.prod(spec["shape"])
    x = spec["seed"]
    out = []
    for _ in range(n):
        x = (x * 1664525 + 1013904223) & 0xFFFFFFFF
        v = ((x >> 8) / float(1 << 24) - 0.5) * 2.0 * spec["scale"]
        if spec.get("layer_norm_weight") or spec.get("norm_weight"):
            v = 1.0 + v * 0.2
        out.append(v)
    return struct.pack(f"<{n}f", *out)


def _write_safetensors(specs, path):
    header, blobs, offset = {}, [], 0
    for spec in specs:
        data = _lcg_values(spec)
        header[spec["name"]] = {"dtype": "F32", "shape": spec["shape"], "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for blob in blobs:
            f.write(blob)


@pytest.fixture(scope="module")
def tiny():
    with open(GOLDENS / "tiny-vision.json") as f:
        return json.load(f)


def _tiny_model(root, golden):
    root.mkdir()
    (root / "config.json").write_text(json.dumps(golden["config"]))
    (root / "preprocessor_config.json").write_text(json.dumps(golden["preprocessor_config"]))
    if "tokenizer" in golden:
        (root / "tokenizer.json").write_text(json.dumps(golden["tokenizer"]))
    _write_safetensors(golden["tensors"], root / "model.safetensors")
    return str(root)


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory, tiny):
    return _tiny_model(tmp_path_factory.mktemp("vision") / "vit", tiny["vit"])


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory, tiny):
    return _tiny_model(tmp_path_factory.mktemp("vision") / "clip", tiny["clip"])


@pytest.fixture(scope="module")
def tiny_images(tiny):
    return [str(GOLDENS / "vision" / name) for name in tiny["images"]]


@pytest.fixture(scope="module")
def vision_acc(tmp_path_factory):
    """One accelerator for the module, so each model loads once."""
    d = tmp_path_factory.mktemp("classify")
    with ipfs_accelerate.get_accelerator(db_path=str(d / "journal.sqlite3"), enable_ipfs=False) as a:
        yield a


def test_efficientnet_top1_matches_pytorch(vision_acc, efficientnet_model):
    with open(GOLDENS / "efficientnet_lite0.json") as f:
        golden = json.load(f)["images"]
    paths = [str(GOLDENS / image["file"]) for image in golden]
    results = vision_acc.classify(efficientnet_model, paths)
    assert len(results) == len(golden)
    for image, scored in zip(golden, results):
        assert len(scored) == 5
        assert set(scored[0]) == {"label", "score"}
        assert scored[0]["label"] == image["top5"][0]["label"]
        # The probability PyTorch's logits give that label.
        want = max(_softmax(image["logits"]))
        assert scored[0]["score"] == pytest.approx(want, abs=1e-3)
        scores = [s["score"] for s in scored]
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 < s <= 1.0 for s in scores)


def test_efficientnet_bytes_equal_paths_and_top_k(vision_acc, efficientnet_model):
    path = GOLDENS / "efficientnet" / "china.png"
    from_path = vision_acc.classify(efficientnet_model, str(path), top_k=3)
    from_bytes = vision_acc.classify(efficientnet_model, [path.read_bytes()], top_k=3)
    assert from_bytes == from_path
    assert len(from_path) == 1 and len(from_path[0]) == 3
    assert len(vision_acc.classify(efficientnet_model, [path], top_k=1)[0]) == 1


def test_efficientnet_refuses_clip_options(vision_acc, efficientnet_model):
    image = str(GOLDENS / "efficientnet" / "china.png")
    with pytest.raises(InvalidInputError, match="labels= is for CLIP"):
        vision_acc.classify(efficientnet_model, image, labels=["cat", "dog"])
    with pytest.raises(InvalidInputError, match="template= is for CLIP"):
        vision_acc.classify(efficientnet_model, image, template="a {label}")


def test_tiny_vit_matches_transformers(vision_acc, tiny, tiny_vit, tiny_images):
    results = vision_acc.classify(tiny_vit, tiny_images, top_k=5)
    labels = [tiny["vit"]["config"]["id2label"][str(i)] for i in range(5)]
    for scored, logits in zip(results, tiny["vit"]["logits"]):
        got = {s["label"]: s["score"] for s in scored}
        for label, want in zip(labels, _softmax(logits)):
            assert got[label] == pytest.approx(want, abs=1e-4)
    assert vision_acc.classify(tiny_vit, tiny_images[0], top_k=1)[0][0]["label"] == "red car"


def test_tiny_clip_zero_shot_matches_transformers(vision_acc, tiny, tiny_clip, tiny_images):
    clip = tiny["clip"]
    template = clip["template"].replace("{}", "{label}")
    results = vision_acc.classify(tiny_clip, tiny_images, labels=clip["labels"], template=template)
    for scored, want in zip(results, clip["probs"]):
        assert len(scored) == len(clip["labels"])
        got = {s["label"]: s["score"] for s in scored}
        for label, p in zip(clip["labels"], want):
            assert got[label] == pytest.approx(p, abs=1e-4)
    top2 = vision_acc.classify(tiny_clip, tiny_images[:1], labels=clip["labels"], template=template, top_k=2)
    assert len(top2[0]) == 2
    with pytest.raises(InvalidInputError, match="labels"):
        vision_acc.classify(tiny_clip, tiny_images[0])
    with pytest.raises(InvalidInputError, match="placeholder"):
        vision_acc.classify(tiny_clip, tiny_images[0], labels=["cat"], template="a photo")


def test_bad_images_and_values(vision_acc, tiny_vit, tmp_path):
    with pytest.raises(InvalidInputError, match="image"):
        vision_acc.classify(tiny_vit, b"not an image at all")
    with pytest.raises(InvalidInputError):
        vision_acc.classify(tiny_vit, str(tmp_path / "missing.png"))
    with pytest.raises(InvalidInputError):
        vision_acc.classify(tiny_vit, [])
    with pytest.raises(InvalidInputError, match="top_k"):
        vision_acc.classify(tiny_vit, str(GOLDENS / "vision" / "photo.jpg"), top_k=0)
    with pytest.raises(TypeError):
        vision_acc.classify(tiny_vit, [42])
    with pytest.raises(TypeError):
        vision_acc.classify(tiny_vit, str(GOLDENS / "vision" / "photo.jpg"), top_k="5")


def test_missing_model(acc, tmp_path):
    with pytest.raises(ModelNotFoundError):
        acc.classify(str(tmp_path / "no-such-model"), str(GOLDENS / "vision" / "photo.jpg"))
