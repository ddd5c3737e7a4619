"""Exports a local sentence-transformers BERT model (all-MiniLM-L6-v2) to ONNX in the
layout transformers.js loads with env.localModelPath and allowRemoteModels = false:

    <out>/<name>/config.json, tokenizer.json, tokenizer_config.json,
    special_tokens_map.json, onnx/model.onnx

The graph takes input_ids, attention_mask, token_type_ids (int64, dynamic batch and
sequence) and returns last_hidden_state; transformers.js does the mean pooling and
normalization. Needs torch, transformers and onnx (the refenv has them); no network.

Usage: python export_onnx.py MODEL_DIR OUT_DIR
"""

import shutil
import sys
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer


class LastHidden(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state


def main():
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    dest = out / src.name
    (dest / "onnx").mkdir(parents=True, exist_ok=True)
    for name in ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]:
        if (src / name).exists():
            shutil.copy(src / name, dest / name)
    tok = AutoTokenizer.from_pretrained(src)
    model = AutoModel.from_pretrained(src).eval()
    enc = tok(["an example sentence", "another one, a bit longer"], padding=True, return_tensors="pt")
    args = (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    axes = {0: "batch", 1: "sequence"}
    torch.onnx.export(
        LastHidden(model),
        args,
        str(dest / "onnx" / "model.onnx"),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state"],
        dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "last_hidden_state": axes},
        opset_version=17,
        dynamo=False,
    )
    print(dest)


if __name__ == "__main__":
    main()
