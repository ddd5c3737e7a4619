#!/usr/bin/env python3
"""Writes crates/models/tests/goldens/gguf/llamacpp-tiny.{gguf,json} with the
llama.cpp project's own writer (PyPI `gguf`), to prove the Rust reader reads
what llama.cpp writes: metadata of several types, and one tensor per dtype the
reader dequantizes, quantized and dequantized by gguf-py itself.

    python3 -m venv /tmp/gguf-venv && /tmp/gguf-venv/bin/pip install gguf==0.19.0
    /tmp/gguf-venv/bin/python scripts/make-gguf-fixtures.py
"""
import json
import pathlib

import gguf
import numpy as np

OUT = pathlib.Path(__file__).resolve().parent.parent / "crates/models/tests/goldens/gguf"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "llamacpp-tiny.gguf"
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_name("tiny")
    w.add_uint32("llama.block_count", 2)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_int8("test.i8", -5)
    w.add_uint64("test.u64", 1 << 40)
    w.add_float64("test.f64", 0.25)
    w.add_token_list(["<s>", "</s>", "hello", "▁world"])
    w.add_token_scores([0.0, -1.0, -2.5, -3.0])
    w.add_array("test.ints", [1, -2, 3])

    rng = np.random.default_rng(8)
    expected = {}
    dtypes = {
        "f32": gguf.GGMLQuantizationType.F32,
        "f16": gguf.GGMLQuantizationType.F16,
        "q8_0": gguf.GGMLQuantizationType.Q8_0,
        "q4_0": gguf.GGMLQuantizationType.Q4_0,
        "q4_1": gguf.GGMLQuantizationType.Q4_1,
    }
    for name, qtype in dtypes.items():
        # Shape [2, 64] in NumPy order: ggml dims [64, 2].
        values = rng.standard_normal((2, 64)).astype(np.float32)
        if qtype == gguf.GGMLQuantizationType.F32:
            stored = values
        elif qtype == gguf.GGMLQuantizationType.F16:
            stored = values.astype(np.float16)
        else:
            stored = gguf.quants.quantize(values, qtype)
        w.add_tensor(f"{name}.weight", stored, raw_dtype=qtype if stored.dtype == np.uint8 else None)
        deq = gguf.quants.dequantize(stored.view(np.uint8) if stored.dtype == np.uint8 else stored, qtype)
        expected[f"{name}.weight"] = {
            "dims": [64, 2],
            "type_id": int(qtype),
            "values": [float(x) for x in np.asarray(deq, dtype=np.float32).reshape(-1)],
        }

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    (OUT / "llamacpp-tiny.json").write_text(json.dumps({"gguf_py_version": "0.19.0", "tensors": expected}, indent=1) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
