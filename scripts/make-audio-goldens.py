#!/usr/bin/env python3
"""Goldens for the audio front end (crates/models/src/audio).

Run by hand with the reference environment:

    ~/.cache/ipfs-accelerate/refenv/bin/python scripts/make-audio-goldens.py

It writes, under crates/models/tests/goldens/audio/:

- signal16k.wav: a deterministic 2.0 s test signal at 16 kHz, 16-bit mono
  (a 100 Hz -> 6 kHz linear chirp plus 440 Hz and 3 kHz tones with a fade);
- mel_filters_{80,128}.bin: transformers' Whisper mel filterbank, float32
  little-endian, shape (201, n_mels) row-major, as WhisperFeatureExtractor
  holds it;
- features_{80,128}.bin: WhisperFeatureExtractor(feature_size=N) log-mel
  features of signal16k.wav, float32 little-endian, shape (N, FRAMES)
  row-major: only the first FRAMES of the 3000 frames are stored (the rest
  is the padding value recorded in meta.json), to keep the files small;
- tone44k_stereo.{flac,ogg,mp3}: 0.5 s of a 1 kHz tone at 44.1 kHz, stereo
  (left at 0.5, right at 0.25 amplitude), written by libsndfile (soundfile);
- meta.json: shapes, the padding value and the versions used.

The features are computed from the int16 samples / 32768 exactly as the
Rust loader reads the WAV, so both sides start from the same floats.
"""

import json
import pathlib

import numpy as np
import soundfile
import transformers
from transformers import WhisperFeatureExtractor

OUT = pathlib.Path(__file__).resolve().parent.parent / "crates/models/tests/goldens/audio"
RATE = 16000
SECONDS = 2.0
FRAMES = 210  # 2.0 s is 200 frames (+1 centred); keep a few padding frames too


def test_signal():
    t = np.arange(int(RATE * SECONDS), dtype=np.float64) / RATE
    f0, f1 = 100.0, 6000.0
    chirp = np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * SECONDS) * t * t))
    tones = 0.5 * np.sin(2 * np.pi * 440.0 * t) + 0.25 * np.sin(2 * np.pi * 3000.0 * t)
    fade = np.minimum(1.0, np.minimum(t, SECONDS - t) / 0.05)
    x = 0.4 * (chirp + tones) * fade
    return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


def tone44k_stereo():
    rate = 44100
    t = np.arange(rate // 2, dtype=np.float64) / rate
    s = np.sin(2 * np.pi * 1000.0 * t)
    stereo = np.stack([0.5 * s, 0.25 * s], axis=1)
    return np.round(stereo * 32767.0).astype(np.int16), rate


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    pcm = test_signal()
    soundfile.write(OUT / "signal16k.wav", pcm, RATE, subtype="PCM_16")
    wave = pcm.astype(np.float32) / 32768.0

    meta = {
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "signal": {"rate": RATE, "samples": int(pcm.size)},
        "frames_stored": FRAMES,
        "features": {},
    }
    for n_mels in (80, 128):
        fe = WhisperFeatureExtractor(feature_size=n_mels)
        feats = fe(wave, sampling_rate=RATE, return_tensors="np")["input_features"][0]
        assert feats.shape == (n_mels, 3000), feats.shape
        np.ascontiguousarray(feats[:, :FRAMES], dtype="<f4").tofile(OUT / f"features_{n_mels}.bin")
        np.ascontiguousarray(fe.mel_filters, dtype="<f4").tofile(OUT / f"mel_filters_{n_mels}.bin")
        tail = feats[:, FRAMES:]
        assert np.all(tail == tail[0, 0]), "frames past the signal should all be the padding value"
        meta["features"][str(n_mels)] = {
            "shape_stored": [n_mels, FRAMES],
            "mel_filters_shape": list(fe.mel_filters.shape),
            "padding_value": float(tail[0, 0]),
        }

    stereo, rate = tone44k_stereo()
    for ext, fmt, sub in (("flac", "FLAC", "PCM_16"), ("ogg", "OGG", "VORBIS"), ("mp3", "MP3", "MPEG_LAYER_III")):
        soundfile.write(OUT / f"tone44k_stereo.{ext}", stereo, rate, format=fmt, subtype=sub)
    meta["tone44k_stereo"] = {"rate": rate, "frames": int(stereo.shape[0]), "hz": 1000.0, "amplitudes": [0.5, 0.25]}

    (OUT / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    main()
