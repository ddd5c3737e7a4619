#!/usr/bin/env python3
"""Goldens for tiny, randomly initialized BERT and RoBERTa encoders.

Run by hand, never in CI (needs torch and transformers):

    ~/.cache/ipfs-accelerate/refenv/bin/python scripts/make-tiny-goldens.py

No weights are committed: every parameter is filled from a 32-bit LCG seeded
per tensor, and the golden lists each tensor's name, shape and seed, so the
Rust test regenerates the exact same weights. The golden records the
last hidden states transformers computes for a few token-id sequences.
"""
import json
import pathlib

import torch
import transformers

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/models/tests/goldens"


def lcg_values(seed, n, scale):
    """n floats in [-scale, scale): x <- 1664525 x + 1013904223 (mod 2^32), top 24 bits."""
    out = []
    x = seed & 0xFFFFFFFF
    for _ in range(n):
        x = (1664525 * x + 1013904223) & 0xFFFFFFFF
        out.append(((x >> 8) / float(1 << 24) - 0.5) * 2.0 * scale)
    return out


def build(kind):
    common = dict(vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=32, hidden_act="gelu", layer_norm_eps=1e-12)
    if kind == "bert":
        config = transformers.BertConfig(max_position_embeddings=40, type_vocab_size=2, **common)
        model = transformers.BertModel(config, add_pooling_layer=False)
    else:
        config = transformers.RobertaConfig(max_position_embeddings=42, type_vocab_size=1, pad_token_id=1, **common)
        model = transformers.RobertaModel(config, add_pooling_layer=False)
    model.eval()
    tensors = []
    with torch.no_grad():
        for i, (name, param) in enumerate(sorted(model.state_dict().items())):
            if "position_ids" in name or "token_type_ids" in name:
                continue  # buffers, not weights
            seed = 1000 + i
            scale = 1.0 if name.endswith("LayerNorm.weight") else 0.5
            values = lcg_values(seed, param.numel(), scale)
            if name.endswith("LayerNorm.weight"):
                values = [1.0 + v * 0.2 for v in values]
            param.copy_(torch.tensor(values, dtype=torch.float32).reshape(param.shape))
            tensors.append({"name": name, "shape": list(param.shape), "seed": seed, "scale": scale,
                            "layer_norm_weight": name.endswith("LayerNorm.weight")})
    return config, model, tensors


def golden(kind):
    config, model, tensors = build(kind)
    sequences = [[2, 17, 33, 5, 3], [2, 99, 3], [2, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 3]]
    type_ids = [[0] * len(s) for s in sequences]
    if kind == "bert":
        type_ids[0] = [0, 0, 0, 1, 1]
    outputs = []
    with torch.no_grad():
        for ids, types in zip(sequences, type_ids):
            out = model(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types])).last_hidden_state[0]
            outputs.append([[round(float(x), 7) for x in row] for row in out])
    data = {
        "generated_by": "scripts/make-tiny-goldens.py",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        "config": json.loads(config.to_json_string()),
        "tensors": tensors,
        "input_ids": sequences,
        "token_type_ids": type_ids,
        "last_hidden_state": outputs,
    }
    target = OUT / f"tiny-{kind}.json"
    target.write_text(json.dumps(data) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    for kind in ["bert", "roberta"]:
        golden(kind)
