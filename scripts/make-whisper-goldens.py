#!/usr/bin/env python3
"""Goldens for speech recognition with Whisper tiny.en (issue 9).

Run by hand, never in CI (needs torch, transformers and soundfile):

    scripts/fetch-test-models.sh          # converts the CTranslate2 model
    ~/.cache/ipfs-accelerate/refenv/bin/python scripts/make-whisper-goldens.py

It loads $IPFS_ACCELERATE_TEST_MODELS/whisper-tiny.en (default
~/.cache/ipfs-accelerate/test-models; the Hugging Face directory written by
scripts/convert-whisper-ct2.py) with WhisperForConditionalGeneration and
WhisperProcessor in float32 on the CPU, and writes
crates/models/tests/goldens/whisper_tiny_en.json with:

- for speech/clip.wav (one 4 s sentence):
  - log-mel features: shape, and features[bin, frame:frame+5] for bins 0, 40,
    79 at frames 0 (leading silence), 100, 150, 200, 275 (speech) and 398
    (across the end of the audio into the zero padding), plus the sum, mean,
    min and max of all 80 x 3000 values; the Rust front end must match the
    slices within 1e-4. espeak-ng's pauses are exact digital silence, so many
    values sit at the clamp floor ((max log10 mel) - 8 + 4) / 4, the min;
  - encoder last_hidden_state: shape, rows 0, 100 and 1499 (first 8 values),
    mean and std;
  - the top-5 raw logits (no suppression applied) of the first decoder step,
    for the prompt [<|startoftranscript|>, <|notimestamps|>] and for the
    timestamp prompt [<|startoftranscript|>];
  - greedy transcription without timestamps: the full token sequence (prompt,
    generated tokens, the closing <|endoftext|>), recomputed by a plain greedy
    loop here and checked against model.generate; the text decoded with
    skip_special_tokens;
  - greedy transcription with timestamps (return_timestamps=True): the full
    sequence and the segments (start, end, token ids, text);
- for speech/long.wav (45 s, longer than one 30 s window): transformers'
  sequential long-form transcription (features of the whole clip with
  truncation=False, generate with return_timestamps=True, greedy, no
  temperature fallback, no conditioning on previous text): the text, the
  generated ids, every 30 s window (its start in seconds and its full token
  sequence including the prompt), and the segments. The first window ends
  with two equal timestamps (<|28.00|><|28.00|>) before <|endoftext|>, so
  the next window starts at 28.0 s, the last timestamp, not at 30 s.

Samples are read as int16 / 32768, exactly as the Rust WAV loader does.
Token ids follow the English-only vocabulary: <|endoftext|> 50256,
<|startoftranscript|> 50257, <|notimestamps|> 50362, timestamps from 50363
(<|0.00|>) in steps of 0.02 s.
"""
import hashlib
import json
import os
import pathlib

import numpy as np
import soundfile
import torch
import transformers
from transformers import WhisperForConditionalGeneration, WhisperProcessor

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/models/tests/goldens/whisper_tiny_en.json"
SPEECH = ROOT / "crates/models/tests/goldens/speech"
MODELS = pathlib.Path(os.environ.get("IPFS_ACCELERATE_TEST_MODELS",
                                     pathlib.Path.home() / ".cache/ipfs-accelerate/test-models"))
MODEL_DIR = MODELS / "whisper-tiny.en"

EOT = 50256
SOT = 50257
NO_TIMESTAMPS = 50362
TIMESTAMP_BEGIN = 50363
TIME_PRECISION = 0.02


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_wav(name):
    pcm, rate = soundfile.read(SPEECH / name, dtype="int16")
    assert rate == 16000 and pcm.ndim == 1, name
    return pcm.astype(np.float32) / 32768.0


def floats(t):
    return [float(v) for v in t.reshape(-1).tolist()]


def top5(logits):
    values, ids = torch.topk(logits, 5)
    return {"ids": ids.tolist(), "values": floats(values)}


def greedy_no_timestamps(model, gen, encoder_out):
    """A plain greedy loop with Whisper's suppression rules, as a cross-check
    of model.generate and to get the full sequence (prompt + <|endoftext|>)."""
    ids = [SOT, NO_TIMESTAMPS]
    suppress = torch.tensor(gen.suppress_tokens)
    begin = torch.tensor(gen.begin_suppress_tokens)
    margins = []
    while len(ids) < gen.max_length:
        with torch.no_grad():
            logits = model(encoder_outputs=(encoder_out,),
                           decoder_input_ids=torch.tensor([ids])).logits[0, -1]
        logits[suppress] = -float("inf")
        if len(ids) == 2:
            logits[begin] = -float("inf")
        top = torch.topk(logits, 2)
        margins.append(float(top.values[0] - top.values[1]))
        ids.append(int(top.indices[0]))
        if ids[-1] == EOT:
            break
    return ids, margins


def segments_of(processor, segs):
    out = []
    for s in segs:
        tokens = [int(t) for t in s["tokens"].tolist()]
        out.append({
            "start": round(float(s["start"]), 2),
            "end": round(float(s["end"]), 2),
            "tokens": tokens,
            "text": processor.tokenizer.decode(tokens, skip_special_tokens=True),
        })
    return out


def windows_of(segs):
    """Groups the segments by the 30 s window that produced them (they share
    one `result` tensor) and gives each window's start and full sequence."""
    windows = []
    for s in segs:
        result = [int(t) for t in s["result"].tolist()]
        first = int(s["tokens"][0])
        start = float(s["start"]) - (first - TIMESTAMP_BEGIN) * TIME_PRECISION
        if windows and windows[-1]["_result"] is s["result"]:
            continue
        windows.append({"_result": s["result"], "start": round(start, 2), "sequence": result})
    for w in windows:
        del w["_result"]
    return windows


def main():
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration.from_pretrained(MODEL_DIR, torch_dtype=torch.float32).eval()
    processor = WhisperProcessor.from_pretrained(MODEL_DIR)
    gen = model.generation_config

    # ---- clip.wav ---------------------------------------------------------
    clip = load_wav("clip.wav")
    feats = processor(clip, sampling_rate=16000, return_tensors="pt").input_features
    fe = feats[0]
    mel = {"shape": list(fe.shape), "slice_len": 5, "slices": []}
    for b in (0, 40, 79):
        for frame in (0, 100, 150, 200, 275, 398):
            mel["slices"].append({"bin": b, "frame": frame, "values": floats(fe[b, frame:frame + 5])})
    mel["sum"] = float(fe.double().sum())
    mel["mean"] = float(fe.mean())
    mel["max"] = float(fe.max())
    mel["min"] = float(fe.min())

    with torch.no_grad():
        enc = model.model.encoder(feats).last_hidden_state
    h = enc[0]
    encoder = {
        "shape": list(h.shape),
        "rows": {str(r): floats(h[r, :8]) for r in (0, 100, 1499)},
        "mean": float(h.mean()),
        "std": float(h.std()),
    }

    first_step = {}
    for name, prompt in (("notimestamps", [SOT, NO_TIMESTAMPS]), ("timestamps", [SOT])):
        with torch.no_grad():
            logits = model(encoder_outputs=(enc,), decoder_input_ids=torch.tensor([prompt])).logits[0, -1]
        first_step[name] = {"prompt": prompt, "top5": top5(logits)}

    full, margins = greedy_no_timestamps(model, gen, enc)
    generated = model.generate(feats, return_timestamps=False)[0].tolist()
    # transformers 5 returns the new tokens only, without the prompt and
    # without the closing <|endoftext|>.
    if [t for t in generated if t != EOT] != full[2:-1]:
        raise SystemExit(f"greedy loop {full} disagrees with generate {generated}")
    plain = {
        "sequence": full,
        "generated": full[2:],
        "text": processor.tokenizer.decode(full, skip_special_tokens=True),
        "min_margin": min(margins),
    }

    out = model.generate(feats, return_timestamps=True, return_segments=True)
    segs = out["segments"][0]
    windows = windows_of(segs)
    assert len(windows) == 1
    with_ts = {
        "sequence": windows[0]["sequence"],
        "generated": out["sequences"][0].tolist(),
        "text": processor.tokenizer.decode(out["sequences"][0], skip_special_tokens=True),
        "text_with_timestamps": processor.tokenizer.decode(out["sequences"][0], decode_with_timestamps=True),
        "segments": segments_of(processor, segs),
    }

    # ---- long.wav ---------------------------------------------------------
    long = load_wav("long.wav")
    inputs = processor(long, sampling_rate=16000, return_tensors="pt", truncation=False,
                       padding="longest", return_attention_mask=True)
    out = model.generate(**inputs, return_timestamps=True, return_segments=True)
    segs = out["segments"][0]
    long_golden = {
        "samples": len(long),
        "features_shape": list(inputs.input_features[0].shape),
        "generate": {"return_timestamps": True, "do_sample": False, "temperature": None,
                     "condition_on_prev_tokens": False},
        "text": processor.tokenizer.decode(out["sequences"][0], skip_special_tokens=True),
        "generated": out["sequences"][0].tolist(),
        "windows": windows_of(segs),
        "segments": segments_of(processor, segs),
    }

    golden = {
        "generated_by": "scripts/make-whisper-goldens.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "numpy": np.__version__},
        "model": {
            "dir": "whisper-tiny.en (scripts/fetch-test-models.sh, converted by scripts/convert-whisper-ct2.py)",
            "model.safetensors sha256": sha256(MODEL_DIR / "model.safetensors"),
            "dtype": "float32",
        },
        "tokens": {"endoftext": EOT, "startoftranscript": SOT, "notimestamps": NO_TIMESTAMPS,
                   "timestamp_begin": TIMESTAMP_BEGIN, "time_precision": TIME_PRECISION,
                   "suppress_tokens": list(gen.suppress_tokens),
                   "begin_suppress_tokens": list(gen.begin_suppress_tokens),
                   "max_initial_timestamp_index": gen.max_initial_timestamp_index},
        "tolerances": {"mel": 1e-4, "encoder": 2e-3, "logits": 1e-2},
        "clip": {
            "wav": "speech/clip.wav",
            "samples": len(clip),
            "mel": mel,
            "encoder": encoder,
            "first_step_logits": first_step,
            "no_timestamps": plain,
            "timestamps": with_ts,
        },
        "long": {"wav": "speech/long.wav", **long_golden},
    }
    OUT.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {OUT}")
    print("clip:", repr(plain["text"]))
    print("clip (timestamps):", with_ts["text_with_timestamps"])
    print("long:", repr(long_golden["text"]))


if __name__ == "__main__":
    main()
