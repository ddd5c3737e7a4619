#!/usr/bin/env python3
"""Writes the committed reference outputs ("goldens") the Rust tests compare against.

Run by hand, never in CI (CI has no PyTorch):

    python3 -m venv ~/.cache/ipfs-accelerate/refenv
    ~/.cache/ipfs-accelerate/refenv/bin/pip install torch sentence-transformers
    scripts/fetch-test-models.sh
    ~/.cache/ipfs-accelerate/refenv/bin/python scripts/make-goldens.py

It loads each model with sentence-transformers from the same directory the
tests use, and records the token ids and the final (pooled, normalized)
embeddings for a fixed set of texts.
"""
import json
import os
import pathlib
import sys

import sentence_transformers
import torch
import transformers

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = pathlib.Path(
    os.environ.get("IPFS_ACCELERATE_TEST_MODELS", pathlib.Path.home() / ".cache/ipfs-accelerate/test-models")
)
OUT = ROOT / "crates/models/tests/goldens"

LONG = " ".join(
    f"Sentence number {i} talks about content addressing, hashes, and verified model weights."
    for i in range(40)
)

TEXTS = [
    "Hello, world!",
    "",
    "The quick brown fox jumps over the lazy dog.",
    "IPFS addresses content by its hash, so every byte can be verified.",
    "Ünïcödé: café, naïve, Straße, 東京タワー, Москва, 🚀✨",
    "a",
    "   leading and trailing spaces   ",
    "WebGPU and WebNN run transformer models inside the browser.",
    "Numbers like 3.14159 and 2,718 and dates like 2026-11-27.",
    "UPPER case and lower CASE should match after lower-casing.",
    "A somewhat longer sentence that keeps going, adding clauses and commas, so that the "
    "attention has more than a handful of tokens to look at when it mixes them together.",
    LONG,
]


def golden(name: str) -> None:
    path = MODELS / name
    model = sentence_transformers.SentenceTransformer(str(path), device="cpu")
    tokenizer = model.tokenizer
    ids = [
        tokenizer(t, truncation=True, max_length=model.max_seq_length)["input_ids"]
        for t in TEXTS
    ]
    with torch.no_grad():
        emb = model.encode(TEXTS, batch_size=4, convert_to_numpy=True, normalize_embeddings=False)
    data = {
        "model": name,
        "generated_by": "scripts/make-goldens.py",
        "versions": {
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
        "max_seq_length": model.max_seq_length,
        "texts": TEXTS,
        "token_ids": ids,
        "embeddings": [[round(float(x), 8) for x in row] for row in emb],
    }
    OUT.mkdir(parents=True, exist_ok=True)
    target = OUT / f"{name}.json"
    target.write_text(json.dumps(data, ensure_ascii=False) + "\n")
    print(f"wrote {target} ({len(TEXTS)} texts, dim {emb.shape[1]}, long text {len(ids[-1])} tokens)")


if __name__ == "__main__":
    for name in sys.argv[1:] or ["all-MiniLM-L6-v2"]:
        golden(name)
