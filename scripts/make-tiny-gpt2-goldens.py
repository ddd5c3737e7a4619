#!/usr/bin/env python3
"""Goldens for a tiny, randomly initialized GPT-2 (text generation, issue 8).

Run by hand, never in CI (needs torch, transformers and safetensors):

    ~/.cache/ipfs-accelerate/refenv/bin/python scripts/make-tiny-gpt2-goldens.py

No weights are committed. As in scripts/make-tiny-goldens.py, every parameter
is filled from a 32-bit LCG seeded per tensor (x <- 1664525 x + 1013904223
mod 2^32, top 24 bits, mapped to [-scale, scale)); layer-norm weights are
1 + 0.2 v with scale 1.0, everything else has scale 0.5. Tensors are the ones
GPT2LMHeadModel.save_pretrained writes to model.safetensors, sorted by name,
and tensor i (in that order) has seed 1000 + i. Names carry the
`transformer.` prefix (e.g. `transformer.h.0.attn.c_attn.weight`); the tied
`lm_head.weight` is not written (it is `transformer.wte.weight`). Shapes are
as stored: GPT-2's Conv1D keeps weights as [in, out] (c_attn [16, 48],
c_proj [16, 16], mlp.c_fc [16, 64], mlp.c_proj [64, 16]), so y = x W + b.

The golden records the config.json save_pretrained writes (so a test can
write it next to its safetensors), the tensors' names, shapes, seeds and
scales, a few input id sequences, the logits transformers computes at each
sequence's last position (all 100), and the greedy 12-token continuation.
"""
import json
import pathlib
import tempfile

import safetensors
import torch
import transformers

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/models/tests/goldens/tiny-gpt2.json"
NEW_TOKENS = 12


def lcg_values(seed, n, scale):
    """n floats in [-scale, scale): x <- 1664525 x + 1013904223 (mod 2^32), top 24 bits."""
    out = []
    x = seed & 0xFFFFFFFF
    for _ in range(n):
        x = (1664525 * x + 1013904223) & 0xFFFFFFFF
        out.append(((x >> 8) / float(1 << 24) - 0.5) * 2.0 * scale)
    return out


def is_layer_norm_weight(name):
    return name.split(".")[-2].startswith("ln_") and name.endswith(".weight")


def saved_tensor_names(model):
    """The names (and shapes) save_pretrained actually writes."""
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        config = json.loads((pathlib.Path(d) / "config.json").read_text())
        with safetensors.safe_open(f"{d}/model.safetensors", "pt") as f:
            shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    return config, shapes


def build():
    config = transformers.GPT2Config(
        vocab_size=100, n_positions=64, n_embd=16, n_layer=2, n_head=2, tie_word_embeddings=True,
        layer_norm_epsilon=1e-5, activation_function="gelu_new", bos_token_id=None, eos_token_id=None)
    model = transformers.GPT2LMHeadModel(config)
    model.eval()
    _, saved = saved_tensor_names(model)
    state = model.state_dict()
    tensors = []
    with torch.no_grad():
        for i, name in enumerate(sorted(saved)):
            param = state[name]
            assert list(param.shape) == saved[name], name
            seed = 1000 + i
            ln = is_layer_norm_weight(name)
            scale = 1.0 if ln else 0.5
            values = lcg_values(seed, param.numel(), scale)
            if ln:
                values = [1.0 + v * 0.2 for v in values]
            param.copy_(torch.tensor(values, dtype=torch.float32).reshape(param.shape))
            tensors.append({"name": name, "shape": list(param.shape), "seed": seed, "scale": scale,
                            "layer_norm_weight": ln})
    # Tied head: lm_head shares wte's storage.
    assert torch.equal(model.lm_head.weight, model.transformer.wte.weight)
    config_json, saved_after = saved_tensor_names(model)
    assert sorted(saved_after) == [t["name"] for t in tensors]
    return config_json, model, tensors


def main():
    config_json, model, tensors = build()
    sequences = [[0, 17, 33, 5], [99], [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52], [7, 7, 7, 7, 7, 7]]
    cases = []
    with torch.no_grad():
        for ids in sequences:
            input_ids = torch.tensor([ids])
            logits = model(input_ids=input_ids).logits[0, -1]
            out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False,
                                 num_beams=1, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                                 repetition_penalty=1.0, pad_token_id=0,
                                 output_logits=True, return_dict_in_generate=True)
            new = out.sequences[0, len(ids):].tolist()
            assert len(new) == NEW_TOKENS
            margins = []
            for step_logits in out.logits:
                top2 = torch.topk(step_logits[0], 2)
                margins.append(round(float(top2.values[0] - top2.values[1]), 6))
            assert float((out.logits[0][0] - logits).abs().max()) < 1e-4
            cases.append({"input_ids": ids, "last_logits": [round(float(x), 6) for x in logits],
                          "greedy_new_token_ids": new, "greedy_margins": margins})
            print(ids, "->", new, "min margin", min(margins))
    data = {
        "generated_by": "scripts/make-tiny-gpt2-goldens.py",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        "config": config_json,
        "tensor_names_note": "names as GPT2LMHeadModel.save_pretrained writes them (transformer. prefix; "
                             "tied lm_head.weight omitted); Conv1D weights stored [in, out]",
        "tensors": tensors,
        "cases": cases,
    }
    OUT.write_text(json.dumps(data) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
