#!/usr/bin/env python3
"""Goldens for tiny, randomly initialized Hugging Face Llama-family models
(text generation, issue 8): the safetensors + config.json layout, with
`rotate_half` ("halves") RoPE, grouped-query attention, `rope_scaling`
llama3 and linear, Qwen2's q/k/v biases, and tied vs untied lm_head.

Run by hand, never in CI (needs torch, transformers and safetensors):

    ~/.cache/ipfs-accelerate/refenv/bin/python scripts/make-tiny-llama-goldens.py

No weights are committed. As in scripts/make-tiny-gpt2-goldens.py, every
parameter is filled from a 32-bit LCG seeded per tensor (x <- 1664525 x +
1013904223 mod 2^32, top 24 bits, mapped to [-scale, scale)); RMSNorm
weights (`*_layernorm.weight`, `model.norm.weight`) are 1 + 0.2 v with scale
1.0, everything else (embeddings, projections, biases) has scale 0.5.
Tensors are the ones `save_pretrained` writes to model.safetensors, sorted by
name, and tensor i (in that order) of model k (0-based, in the golden's
order) has seed 1000 (k + 1) + i. Shapes are as stored: nn.Linear keeps
weights as [out, in], so y = x Wᵀ + b. A tied lm_head is not written (it is
`model.embed_tokens.weight`).

All models: vocab 96, hidden 64, 2 layers, 4 query heads over 2 key/value
heads (GQA), head_dim 16, intermediate 128, max_position_embeddings 128,
rms_norm_eps 1e-5, no bos/eos/pad (so `generate` never stops early or masks
a token). Widths are multiples of 32, so 4/8-bit block quantization applies.

  llama-untied   LlamaForCausalLM, rope_theta 10000, untied lm_head
  llama3-tied    LlamaForCausalLM, tied lm_head, rope_theta 10000,
                 rope_scaling llama3 (factor 8, low 1, high 4, original 32):
                 of the 8 rotary pairs, pair 0 is kept, pair 1 is smoothed,
                 pairs 2..7 are divided by 8
  llama-linear   LlamaForCausalLM, untied, rope_scaling linear factor 2
  qwen2          Qwen2ForCausalLM (q/k/v biases), untied, rope_theta 1e6

The golden records, per model: `config`, the config.json save_pretrained
writes (transformers 5 puts rope_theta and the scaling in `rope_parameters`);
`config_legacy_layout`, the same config in the layout transformers 4 wrote
and most Hub checkpoints have (top-level `rope_theta`, `rope_scaling`),
checked here to load to the same model; the tensors' names, shapes, seeds
and scales; and for 3 input id sequences (lengths 1, 7 and 40 — 40 is past
llama3-tied's original 32 positions) the logits at the last position (all
96) and the greedy 10-token continuation with each step's top-2 margin, and
`last_logits_q8_0`: the same logits with every matrix (embedding and lm_head
included) rounded through Q8_0 as `--precision 8` quantizes safetensors at
load (float16 block scale, round half away from zero), so the quantized path
is checked against an exact emulation, not just a loose bound.
"""
import copy
import json
import pathlib
import tempfile

import safetensors
import safetensors.torch
import torch
import transformers

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/models/tests/goldens/tiny-llama.json"
NEW_TOKENS = 10

COMMON = dict(vocab_size=96, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              head_dim=16, intermediate_size=128, max_position_embeddings=128, rms_norm_eps=1e-5,
              bos_token_id=None, eos_token_id=None, pad_token_id=None)

MODELS = [
    ("llama-untied", transformers.LlamaConfig, transformers.LlamaForCausalLM,
     dict(rope_theta=10000.0, tie_word_embeddings=False)),
    ("llama3-tied", transformers.LlamaConfig, transformers.LlamaForCausalLM,
     dict(rope_theta=10000.0, tie_word_embeddings=True,
          rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                        "original_max_position_embeddings": 32})),
    ("llama-linear", transformers.LlamaConfig, transformers.LlamaForCausalLM,
     dict(rope_theta=10000.0, tie_word_embeddings=False, rope_scaling={"rope_type": "linear", "factor": 2.0})),
    ("qwen2", transformers.Qwen2Config, transformers.Qwen2ForCausalLM,
     dict(rope_theta=1000000.0, tie_word_embeddings=False)),
]

SEQUENCES = [
    [42],
    [1, 17, 33, 5, 90, 64, 8],
    [(7 * i + 3) % 96 for i in range(40)],
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
    return name.split(".")[-2].endswith("norm") and name.endswith(".weight")


def saved(model):
    """The config.json and the tensor names/shapes save_pretrained actually writes."""
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        config = json.loads((pathlib.Path(d) / "config.json").read_text())
        with safetensors.safe_open(f"{d}/model.safetensors", "pt") as f:
            shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    return config, shapes


def legacy_layout(config_json):
    """transformers 4's layout: top-level rope_theta and (non-default) rope_scaling."""
    legacy = copy.deepcopy(config_json)
    params = dict(legacy.pop("rope_parameters"))
    legacy["rope_theta"] = params.pop("rope_theta")
    if params.get("rope_type", "default") != "default":
        legacy["rope_scaling"] = params
    return legacy


def build(k, config_cls, model_cls, extra):
    config = config_cls(**COMMON, **extra)
    model = model_cls(config)
    model.eval()
    _, shapes = saved(model)
    state = model.state_dict()
    tensors = []
    with torch.no_grad():
        for i, name in enumerate(sorted(shapes)):
            param = state[name]
            assert list(param.shape) == shapes[name], name
            seed = 1000 * (k + 1) + i
            norm = is_norm_weight(name)
            scale = 1.0 if norm else 0.5
            values = lcg_values(seed, param.numel(), scale)
            if norm:
                values = [1.0 + v * 0.2 for v in values]
            param.copy_(torch.tensor(values, dtype=torch.float32).reshape(param.shape))
            tensors.append({"name": name, "shape": list(param.shape), "seed": seed, "scale": scale,
                            "norm_weight": norm})
    if extra["tie_word_embeddings"]:
        assert "lm_head.weight" not in shapes
        assert torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)
    else:
        assert "lm_head.weight" in shapes
    config_json, shapes_after = saved(model)
    assert sorted(shapes_after) == [t["name"] for t in tensors]
    return config_json, model, tensors


def q8_0_round_trip(w):
    """`--precision 8` as the loader applies it to a float [rows, cols] matrix: Q8_0 blocks of 32
    along each row, d = max|x| / 127 stored as float16, q = round(x / d) half away from zero."""
    rows, cols = w.shape
    b = w.reshape(rows, cols // 32, 32)
    d = b.abs().amax(dim=-1, keepdim=True) / 127.0
    inv = torch.where(d != 0, 1.0 / d, torch.zeros_like(d))
    s = b * inv
    q = torch.sign(s) * torch.floor(s.abs() + 0.5)
    return (q * d.to(torch.float16).to(torch.float32)).reshape(rows, cols)


def q8_0_model(model):
    """A copy of model with every matrix (embedding and lm_head included) through Q8_0; the
    loader's Q8_0 products dequantize the weights and keep activations in float32."""
    quantized = copy.deepcopy(model)
    with torch.no_grad():
        for _, p in quantized.named_parameters():
            if p.dim() == 2:
                p.copy_(q8_0_round_trip(p))
    if model.config.tie_word_embeddings:
        assert quantized.lm_head.weight is quantized.model.embed_tokens.weight
    return quantized


def check_legacy_loads_the_same(model_cls, model, legacy, ids):
    """The legacy-layout config.json with the same weights gives the same logits in transformers."""
    with tempfile.TemporaryDirectory() as d:
        (pathlib.Path(d) / "config.json").write_text(json.dumps(legacy))
        safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()
                                     if not (k == "lm_head.weight" and legacy["tie_word_embeddings"])},
                                    f"{d}/model.safetensors")
        again = model_cls.from_pretrained(d, attn_implementation=model.config._attn_implementation)
        again.eval()
        assert again.config.rope_parameters == model.config.rope_parameters, (
            again.config.rope_parameters, model.config.rope_parameters)
        with torch.no_grad():
            a = model(input_ids=torch.tensor([ids])).logits
            b = again(input_ids=torch.tensor([ids])).logits
        assert torch.equal(a, b), float((a - b).abs().max())


def main():
    torch.set_num_threads(1)
    models = []
    for k, (name, config_cls, model_cls, extra) in enumerate(MODELS):
        config_json, model, tensors = build(k, config_cls, model_cls, extra)
        legacy = legacy_layout(config_json)
        check_legacy_loads_the_same(model_cls, model, legacy, SEQUENCES[-1])
        quantized = q8_0_model(model)
        cases = []
        with torch.no_grad():
            for ids in SEQUENCES:
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
                logits_q8 = quantized(input_ids=input_ids).logits[0, -1]
                assert float((logits_q8 - logits).abs().max()) > 1e-3
                cases.append({"input_ids": ids, "last_logits": [round(float(x), 6) for x in logits],
                              "last_logits_q8_0": [round(float(x), 6) for x in logits_q8],
                              "greedy_new_token_ids": new, "greedy_margins": margins})
                print(name, len(ids), "->", new, "min margin", min(margins),
                      "logit range", round(float(logits.min()), 3), round(float(logits.max()), 3),
                      "q8_0 vs f32", round(float((logits_q8 - logits).abs().max()), 4))
        models.append({"name": name, "architecture": model_cls.__name__, "config": config_json,
                       "config_legacy_layout": legacy, "tensors": tensors, "cases": cases})
    data = {
        "generated_by": "scripts/make-tiny-llama-goldens.py",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        "tensor_names_note": "names as save_pretrained writes them (model. prefix; a tied lm_head.weight is "
                             "omitted); nn.Linear weights stored [out, in]",
        "models": models,
    }
    OUT.write_text(json.dumps(data) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
