#!/usr/bin/env python3
"""Goldens for tiny, randomly initialized ViT and CLIP models.

Run by hand, never in CI (needs torch, transformers and Pillow):

    ~/.cache/ipfs-accelerate/refenv/bin/python scripts/make-tiny-vision-goldens.py

No weights are committed: every parameter is filled from the 32-bit LCG of
scripts/make-tiny-goldens.py, seeded per tensor, and the golden lists each
tensor's name, shape and seed, so the Rust test (crates/models/tests/
vision_models.rs) regenerates the exact same weights. The weights are saved
under the names published checkpoints use (transformers 5 renames some of
ViT's at load time) and loaded back with `from_pretrained`, so the golden
also checks that those names mean what the Rust loader thinks they mean.

The inputs are the committed test images of crates/models/tests/goldens/vision
(PNG only: JPEG decoders differ), preprocessed by transformers' PIL image
processors with the preprocessor_config.json stored in the golden. CLIP's
text side uses a tiny word-level tokenizer.json written here, with CLIP's
special tokens.

Writes crates/models/tests/goldens/tiny-vision.json.
"""
import json
import pathlib
import tempfile

import numpy as np
import torch
import transformers
from PIL import Image
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import CLIPImageProcessorPil, ViTImageProcessorPil

ROOT = pathlib.Path(__file__).resolve().parent.parent
GOLDENS = ROOT / "crates/models/tests/goldens"
IMAGES = ["nonsquare.png", "alpha.png", "photo_pil.png"]
LABELS = ["cat", "dog", "red car", "tree"]
TEMPLATE = "a photo of a {}."

VIT_PREPROCESSOR = {
    "image_processor_type": "ViTImageProcessor",
    "do_resize": True,
    "size": {"height": 32, "width": 32},
    "resample": 2,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
}
CLIP_PREPROCESSOR = {
    "image_processor_type": "CLIPImageProcessor",
    "do_resize": True,
    "size": {"shortest_edge": 32},
    "resample": 3,
    "do_center_crop": True,
    "crop_size": {"height": 32, "width": 32},
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "do_convert_rgb": True,
}

# transformers 5 module names → the names in published ViT checkpoints.
VIT_LEGACY = [
    (".layers.", ".encoder.layer."),
    ("attention.q_proj", "attention.attention.query"),
    ("attention.k_proj", "attention.attention.key"),
    ("attention.v_proj", "attention.attention.value"),
    ("attention.o_proj", "attention.output.dense"),
    ("mlp.fc1", "intermediate.dense"),
    ("mlp.fc2", "output.dense"),
]


def lcg_values(seed, n, scale):
    """n floats in [-scale, scale): x <- 1664525 x + 1013904223 (mod 2^32), top 24 bits."""
    out = []
    x = seed & 0xFFFFFFFF
    for _ in range(n):
        x = (1664525 * x + 1013904223) & 0xFFFFFFFF
        out.append(((x >> 8) / float(1 << 24) - 0.5) * 2.0 * scale)
    return out


def is_norm_weight(name):
    return name.endswith(("norm.weight", "norm1.weight", "norm2.weight", "layrnorm.weight", "layernorm.weight",
                          "layernorm_before.weight", "layernorm_after.weight", "final_layer_norm.weight"))


def fill(model, seed_base, rename=lambda n: n):
    """Fills every parameter from the LCG; returns the tensor specs and the
    state dict under the published names."""
    specs, state = [], {}
    with torch.no_grad():
        for i, (name, param) in enumerate(sorted(model.state_dict().items())):
            if name.endswith("position_ids"):
                continue  # a buffer, not a weight
            seed = seed_base + i
            # logit_scale is drawn around 1 like a norm weight, so exp() of
            # it stays a plausible temperature.
            around_one = is_norm_weight(name) or name == "logit_scale"
            scale = 1.0 if around_one else 0.5
            values = lcg_values(seed, param.numel(), scale)
            if around_one:
                values = [1.0 + v * 0.2 for v in values]
            param.copy_(torch.tensor(values, dtype=torch.float32).reshape(param.shape))
            published = rename(name)
            specs.append({"name": published, "shape": list(param.shape), "seed": seed, "scale": scale,
                          "layer_norm_weight": around_one})
            state[published] = param.detach().clone().contiguous()
    return specs, state


def reload(cls, config, state):
    """Saves the weights under their published names and loads them back as
    transformers does for a downloaded checkpoint."""
    with tempfile.TemporaryDirectory() as d:
        config.save_pretrained(d)
        save_file(state, f"{d}/model.safetensors")
        model = cls.from_pretrained(d)
    model.eval()
    return model


def same_weights(built, loaded):
    for name, param in built.state_dict().items():
        if not name.endswith("position_ids"):
            assert torch.equal(param, loaded.state_dict()[name]), f"{name} did not load back"


def images(convert_rgb):
    """The test images as an image pipeline hands them over: ViT's processor
    has no do_convert_rgb, so its pipeline's load_image drops alpha first;
    CLIP's processor composites alpha over white itself."""
    opened = [Image.open(GOLDENS / "vision" / name) for name in IMAGES]
    return opened if convert_rgb else [im.convert("RGB") for im in opened]


def rounded(t):
    return [[round(float(x), 7) for x in row] for row in t]


def vit_golden():
    config = transformers.ViTConfig(
        image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, hidden_act="gelu", layer_norm_eps=1e-12, qkv_bias=True,
        id2label={0: "cat", 1: "dog", 2: "red car", 3: "tree", 4: "house"},
        label2id={"cat": 0, "dog": 1, "red car": 2, "tree": 3, "house": 4},
        architectures=["ViTForImageClassification"],
    )
    built = transformers.ViTForImageClassification(config)

    def legacy(name):
        for new, old in VIT_LEGACY:
            name = name.replace(new, old)
        return name

    specs, state = fill(built, 3000, legacy)
    model = reload(transformers.ViTForImageClassification, config, state)
    same_weights(built, model)
    proc = ViTImageProcessorPil(**{k: v for k, v in VIT_PREPROCESSOR.items() if k != "image_processor_type"})
    pixels = proc(images=images(False), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        logits = model(pixel_values=pixels).logits
    return {
        "config": json.loads(config.to_json_string()),
        "preprocessor_config": VIT_PREPROCESSOR,
        "tensors": specs,
        "logits": rounded(logits),
    }


def tiny_tokenizer():
    """A word-level tokenizer with CLIP's special tokens and CLIP's layout
    (`<|startoftext|> words <|endoftext|>`), lowercasing as CLIP's does."""
    words = ["<|startoftext|>", "<|endoftext|>", "<|unk|>", "a", "photo", "of", ".", "an", "picture"]
    words += sorted({w for label in LABELS for w in label.split()})
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<|unk|>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", 0), ("<|endoftext|>", 1)],
    )
    return tok, len(words)


def clip_golden():
    tok, vocab = tiny_tokenizer()
    text = transformers.CLIPTextConfig(
        vocab_size=vocab, hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=16, hidden_act="quick_gelu", layer_norm_eps=1e-5,
        bos_token_id=0, eos_token_id=1, pad_token_id=1,
    )
    vision = transformers.CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
        patch_size=8, hidden_act="quick_gelu", layer_norm_eps=1e-5,
    )
    config = transformers.CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=16,
                                     architectures=["CLIPModel"])
    built = transformers.CLIPModel(config)
    specs, state = fill(built, 5000)
    model = reload(transformers.CLIPModel, config, state)
    same_weights(built, model)
    proc = CLIPImageProcessorPil(**{k: v for k, v in CLIP_PREPROCESSOR.items() if k != "image_processor_type"})
    pixels = proc(images=images(True), return_tensors="pt")["pixel_values"]
    prompts = [TEMPLATE.format(label) for label in LABELS]
    ids = [tok.encode(p).ids for p in prompts]
    with torch.no_grad():
        image_embeds = model.get_image_features(pixel_values=pixels).pooler_output
        text_embeds = torch.cat([model.get_text_features(input_ids=torch.tensor([i])).pooler_output for i in ids])
        # The whole model on a padded batch (pad = eos, as CLIP's tokenizer
        # pads) must agree: padding after the EOS token changes nothing.
        longest = max(len(i) for i in ids)
        padded = torch.tensor([i + [1] * (longest - len(i)) for i in ids])
        mask = torch.tensor([[1] * len(i) + [0] * (longest - len(i)) for i in ids])
        out = model(input_ids=padded, attention_mask=mask, pixel_values=pixels)
    image_embeds = image_embeds / image_embeds.norm(dim=-1, keepdim=True)
    text_embeds = text_embeds / text_embeds.norm(dim=-1, keepdim=True)
    assert torch.allclose(out.image_embeds, image_embeds, atol=1e-6)
    assert torch.allclose(out.text_embeds, text_embeds, atol=1e-6)
    probs = out.logits_per_image.softmax(dim=-1)
    return {
        "config": json.loads(config.to_json_string()),
        "preprocessor_config": CLIP_PREPROCESSOR,
        "tokenizer": json.loads(tok.to_str()),
        "tensors": specs,
        "labels": LABELS,
        "template": TEMPLATE,
        "input_ids": ids,
        "logit_scale": float(model.logit_scale.detach()),
        "image_embeds": rounded(image_embeds),
        "text_embeds": rounded(text_embeds),
        "probs": rounded(probs),
    }


def main():
    data = {
        "generated_by": "scripts/make-tiny-vision-goldens.py",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        "images": IMAGES,
        "vit": vit_golden(),
        "clip": clip_golden(),
    }
    target = GOLDENS / "tiny-vision.json"
    target.write_text(json.dumps(data) + "\n")
    print(f"wrote {target}")
    print("vit logits", np.array(data["vit"]["logits"]).round(3))
    print("clip probs", np.array(data["clip"]["probs"]).round(3))


if __name__ == "__main__":
    main()
