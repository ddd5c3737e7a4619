#!/usr/bin/env python3
"""Goldens for a tiny, randomly initialized multilingual Whisper.

Run by hand, never in CI (needs torch, transformers, tokenizers, soundfile):

    ~/.cache/ipfs-accelerate/refenv/bin/python scripts/make-tiny-whisper-goldens.py

The only real Whisper reachable here, tiny.en, is English-only, so the
multilingual paths of the Rust transcriber (language detection, a given
language, the translate task, with and without timestamps) are checked on
this tiny model instead: 2 encoder and 2 decoder layers of width 64, and a
byte-level tokenizer written here with Whisper's special tokens in the
multilingual order (<|endoftext|>, <|startoftranscript|>, 8 languages,
<|translate|>, <|transcribe|>, <|startoflm|>, <|startofprev|>,
<|nocaptions|>, <|notimestamps|>, then the 1501 timestamps <|0.00|> ..
<|30.00|>). The decoder holds 64 positions, so generations end by length
when the random model does not say <|endoftext|>.

No weights are committed: they come from the per-tensor LCG of
scripts/make-tiny-vision-goldens.py (imported), and the golden lists each
tensor's name, shape and seed, so the Rust test
(crates/models/tests/whisper_tiny_multilingual.rs) regenerates them. The
weights are saved and loaded back with from_pretrained before use.

Input: crates/models/tests/goldens/speech/clip.wav through transformers'
WhisperFeatureExtractor (the Rust front end matches it within 1e-4). Each
case runs model.generate (greedy) and records its first decoding pass: the
prompt transformers built, then the generated tokens (see main for why only
the first pass).

Writes crates/models/tests/goldens/tiny-whisper.json.
"""
import importlib.util
import json
import pathlib

import numpy as np
import soundfile
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

ROOT = pathlib.Path(__file__).resolve().parent.parent
GOLDENS = ROOT / "crates/models/tests/goldens"

_spec = importlib.util.spec_from_file_location("tiny_vision", ROOT / "scripts/make-tiny-vision-goldens.py")
tiny_vision = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiny_vision)

LANGUAGES = ["en", "zh", "de", "es", "ru", "ko", "fr", "ja"]
MAX_POSITIONS = 64
CASES = [
    # (name, language, task, timestamps)
    ("detect_transcribe", None, "transcribe", False),
    ("fr_translate", "fr", "translate", False),
    ("de_transcribe_timestamps", "de", "transcribe", True),
]


def tokenizer_json():
    """256 byte tokens (GPT-2's byte-to-unicode alphabet, no merges) and
    Whisper's special tokens after them."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|startoftranscript|>"] + [f"<|{c}|>" for c in LANGUAGES] + [
        "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
    tok.add_special_tokens(specials)
    tok.add_tokens([f"<|{i * 0.02:.2f}|>" for i in range(1501)])
    return json.loads(tok.to_str()), vocab, {t: tok.token_to_id(t) for t in specials}


def configs(vocab, ids):
    vocab_size = len(vocab) + len(ids) + 1501
    eot = ids["<|endoftext|>"]
    # Token settings the model config and the generation config both carry.
    tokens = dict(
        decoder_start_token_id=ids["<|startoftranscript|>"],
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        begin_suppress_tokens=[vocab["Ġ"], eot],
        suppress_tokens=[1, 2, 7, 8, 9, 10, 14, 25],
    )
    config = WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=80,
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        max_source_positions=1500,
        max_target_positions=MAX_POSITIONS,
        tie_word_embeddings=True,
        **tokens,
    )
    generation = GenerationConfig(
        no_timestamps_token_id=ids["<|notimestamps|>"],
        prev_sot_token_id=ids["<|startofprev|>"],
        max_initial_timestamp_index=50,
        is_multilingual=True,
        lang_to_id={f"<|{c}|>": ids[f"<|{c}|>"] for c in LANGUAGES},
        task_to_id={"translate": ids["<|translate|>"], "transcribe": ids["<|transcribe|>"]},
        max_length=MAX_POSITIONS,
        **tokens,
    )
    return config, generation


def build(config, generation):
    torch.manual_seed(0)
    built = WhisperForConditionalGeneration(config).eval()
    # proj_out shares the token embedding (tied): fill it once, under the
    # decoder's name, which is the one the Rust loader reads.
    specs, state = tiny_vision.fill(built, seed_base=9000)
    assert any(s["name"] == "proj_out.weight" for s in specs), "proj_out.weight should be in the state dict"
    specs = [s for s in specs if s["name"] != "proj_out.weight"]
    state.pop("proj_out.weight")
    with torch.no_grad():
        # Filling proj_out overwrote the shared tensor; put the embedding's values back.
        built.model.decoder.embed_tokens.weight.copy_(state["model.decoder.embed_tokens.weight"])
    assert torch.equal(built.proj_out.weight, built.model.decoder.embed_tokens.weight)
    loaded = tiny_vision.reload(WhisperForConditionalGeneration, config, state)
    tiny_vision.same_weights(built, loaded)
    loaded.generation_config = generation
    return loaded, specs


def greedy(model, generation, feats, prompt):
    """A plain greedy loop with Whisper's suppression rules (no timestamps), as
    a cross-check of model.generate."""
    ids = list(prompt)
    with torch.no_grad():
        encoded = model.model.encoder(feats).last_hidden_state
        while len(ids) < MAX_POSITIONS:
            logits = model(encoder_outputs=(encoded,), decoder_input_ids=torch.tensor([ids])).logits[0, -1]
            logits[generation.suppress_tokens] = -float("inf")
            if len(ids) == len(prompt):
                logits[generation.begin_suppress_tokens] = -float("inf")
            ids.append(int(torch.argmax(logits)))
            if ids[-1] == generation.eos_token_id:
                break
    return ids[len(prompt):]


def main():
    tokenizer, vocab, ids = tokenizer_json()
    config, generation = configs(vocab, ids)
    model, specs = build(config, generation)
    # The model must use the embedding's own values (the Rust test regenerates those).
    spec = next(s for s in specs if s["name"] == "model.decoder.embed_tokens.weight")
    values = tiny_vision.lcg_values(spec["seed"], int(np.prod(spec["shape"])), spec["scale"])
    assert torch.equal(model.model.decoder.embed_tokens.weight,
                       torch.tensor(values, dtype=torch.float32).reshape(spec["shape"]))

    pcm, rate = soundfile.read(GOLDENS / "speech/clip.wav", dtype="int16")
    assert rate == 16000
    samples = pcm.astype(np.float32) / 32768.0
    features = WhisperFeatureExtractor(feature_size=80)(samples, sampling_rate=16000, return_tensors="pt")
    feats = features.input_features

    cases = []
    for name, language, task, timestamps in CASES:
        with torch.no_grad():
            if language is None:
                detected = model.detect_language(feats)[0].item()
                lang_token = int(detected)
            else:
                lang_token = ids[f"<|{language}|>"]
            prompt = [ids["<|startoftranscript|>"], lang_token, ids[f"<|{task}|>"]]
            if not timestamps:
                prompt.append(ids["<|notimestamps|>"])
            code = next(c for c in LANGUAGES if ids[f"<|{c}|>"] == lang_token)
            out = model.generate(feats, language=code, task=task, return_timestamps=timestamps,
                                 max_new_tokens=MAX_POSITIONS - len(prompt), do_sample=False, num_beams=1,
                                 return_segments=True)
        # The first decoding pass, prompt included (a segment's "result").
        # transformers 5 may decode a short clip's padded window again: from
        # the last timestamp when the pass ended on a pair of timestamps (the
        # timed case here: a second pass from 29.12 s, past the clip's 4 s),
        # and once more when an untimed pass ended by length. The Rust
        # transcriber decodes a short clip once, so the golden is that pass.
        sequence = [int(t) for t in out["segments"][0][0]["result"].tolist()]
        assert sequence[:len(prompt)] == prompt, (name, sequence, prompt)
        generated = sequence[len(prompt):]
        if not timestamps:
            plain = greedy(model, generation, feats, prompt)
            assert plain == generated, f"{name}: greedy loop {plain} disagrees with generate's {generated}"
        cases.append({
            "name": name,
            "language": language,
            "task": task,
            "timestamps": timestamps,
            "detected_language": code,
            "prompt": prompt,
            "generated": generated,
        })
        print(name, code, prompt, generated)

    data = {
        "generated_by": "scripts/make-tiny-whisper-goldens.py",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        "config": json.loads(config.to_json_string()),
        "generation_config": json.loads(generation.to_json_string()),
        "tokenizer": tokenizer,
        "tensors": specs,
        "cases": cases,
    }
    target = GOLDENS / "tiny-whisper.json"
    target.write_text(json.dumps(data) + "\n")
    print(f"wrote {target} ({target.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
