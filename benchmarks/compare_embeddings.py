#!/usr/bin/env python3
"""Embedding throughput: ipfs-accelerate vs sentence-transformers (PyTorch CPU)
vs ONNX Runtime, on the same texts, in the same run, interleaved.

Not run in CI. Needs torch, sentence-transformers, onnx and onnxruntime:

    python3 -m venv ~/.cache/ipfs-accelerate/refenv
    ~/.cache/ipfs-accelerate/refenv/bin/pip install torch sentence-transformers onnx onnxruntime
    scripts/fetch-test-models.sh
    cargo build --release -p ipfs-accelerate
    ~/.cache/ipfs-accelerate/refenv/bin/python benchmarks/compare_embeddings.py

Every engine embeds the same texts end to end (tokenize, encode, pool,
normalize) for `--seconds` per configuration; each configuration is measured
`--rounds` times, engines interleaved, and the median is reported with our
speed as a ratio to each of theirs.
"""
import argparse
import json
import os
import pathlib
import random
import statistics
import subprocess
import tempfile
import time

import numpy as np
import onnxruntime as ort
import torch
from sentence_transformers import SentenceTransformer
from transformers import AutoModel, AutoTokenizer

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_MODEL = pathlib.Path(
    os.environ.get("IPFS_ACCELERATE_TEST_MODELS", pathlib.Path.home() / ".cache/ipfs-accelerate/test-models")
) / "all-MiniLM-L6-v2"

WORDS = (
    "the model runs in a browser and on native GPUs with verified weights content addressed by hash every "
    "byte is checked before use fast small people search documents for answers about cats rivers music "
    "history science quickly reads writes shares network storage peer server request response sentence "
    "meaning vector space close far similar different today tomorrow city garden kitchen mountain ocean "
    "train ticket window"
).split()


def make_texts(tokenizer, n, tokens=None, seed=0):
    """n short sentences (8-16 words), or n texts of `tokens` tokens."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if tokens is None:
            out.append(" ".join(rng.choice(WORDS) for _ in range(8 + i % 9)) + ".")
            continue
        words = []
        while True:
            candidate = words + [rng.choice(WORDS)]
            if len(tokenizer(" ".join(candidate))["input_ids"]) > tokens:
                break
            words = candidate
        out.append(" ".join(words))
    return out


def timed(fn, texts, batch, seconds):
    fn(texts[:batch])  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or done < len(texts):
        for i in range(0, len(texts), batch):
            fn(texts[i : i + batch])
            done += len(texts[i : i + batch])
    return done / (time.perf_counter() - start)


def ours(binary, model, texts, batch, seconds):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(texts) + "\n")
    try:
        out = subprocess.run(
            [binary, "bench", "embed", "--model", str(model), "--texts-file", f.name,
             "--batch-sizes", str(batch), "--seconds", str(seconds), "--json"],
            check=True, capture_output=True, text=True,
        ).stdout
    finally:
        os.unlink(f.name)
    return json.loads(out)["results"][0]["sentences_per_sec"]


class OnnxEmbedder:
    def __init__(self, model_dir, workdir):
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        hf = AutoModel.from_pretrained(model_dir).eval()

        class Encoder(torch.nn.Module):
            """Keyword arguments only: positional order differs across transformers versions."""

            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state

        path = os.path.join(workdir, "model.onnx")
        ids = torch.ones(2, 8, dtype=torch.long)
        torch.onnx.export(
            Encoder(hf), (ids, ids, torch.zeros_like(ids)), path,
            input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "seq"} for n in ["input_ids", "attention_mask", "token_type_ids", "last_hidden_state"]},
            opset_version=17, dynamo=False,
        )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def __call__(self, texts):
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="np")
        feeds = {k: enc[k].astype(np.int64) for k in ["input_ids", "attention_mask", "token_type_ids"]}
        hidden = self.session.run(None, feeds)[0]
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(DEFAULT_MODEL))
    p.add_argument("--binary", default=str(ROOT / "target/release/ipfs-accelerate"))
    p.add_argument("--batch-sizes", default="1,32")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--texts", type=int, default=64)
    args = p.parse_args()

    torch.set_grad_enabled(False)
    st = SentenceTransformer(args.model, device="cpu")
    tokenizer = st.tokenizer
    with tempfile.TemporaryDirectory() as workdir:
        onnx = OnnxEmbedder(args.model, workdir)
        engines = {
            "ipfs-accelerate": lambda texts, b, s: ours(args.binary, args.model, texts, b, s),
            "pytorch": lambda texts, b, s: timed(lambda t: st.encode(t, batch_size=b), texts, b, s),
            "onnxruntime": lambda texts, b, s: timed(onnx, texts, b, s),
        }
        workloads = {
            "short": make_texts(tokenizer, args.texts),
            "long128": make_texts(tokenizer, args.texts, tokens=128, seed=1),
        }
        print(f"torch {torch.__version__} threads {torch.get_num_threads()}, onnxruntime {ort.__version__}, "
              f"cpu count {os.cpu_count()}")
        rows = []
        for name, texts in workloads.items():
            mean_tokens = statistics.mean(len(tokenizer(t)["input_ids"]) for t in texts)
            for b in [int(x) for x in args.batch_sizes.split(",")]:
                samples = {e: [] for e in engines}
                for _ in range(args.rounds):
                    for engine, fn in engines.items():
                        samples[engine].append(fn(texts, b, args.seconds))
                med = {e: statistics.median(v) for e, v in samples.items()}
                rows.append((name, b, mean_tokens, med))
                print(f"{name:8} batch {b:3} ({mean_tokens:5.1f} tokens): "
                      + "  ".join(f"{e} {v:7.1f}/s" for e, v in med.items())
                      + f"  | ratio vs pytorch {med['ipfs-accelerate'] / med['pytorch']:.2f}x"
                      + f", vs onnxruntime {med['ipfs-accelerate'] / med['onnxruntime']:.2f}x", flush=True)


if __name__ == "__main__":
    main()
