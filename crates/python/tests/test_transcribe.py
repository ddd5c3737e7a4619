"""Accelerator.transcribe against the real whisper-tiny.en test model and the
goldens transformers wrote (crates/models/tests/goldens/whisper_tiny_en.json)."""

import _thread
import json
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

import ipfs_accelerate
from ipfs_accelerate import (
    InvalidInputError,
    ModelNotFoundError,
    UnsupportedModelTypeError,
)

GOLDENS = Path(__file__).resolve().parents[2] / "models" / "tests" / "goldens"
CLIP = GOLDENS / "speech" / "clip.wav"


@pytest.fixture(scope="module")
def golden():
    with open(GOLDENS / "whisper_tiny_en.json") as f:
        return json.load(f)["clip"]


@pytest.fixture(scope="module")
def speech_acc(tmp_path_factory):
    """One accelerator for the module, so the model loads once."""
    d = tmp_path_factory.mktemp("speech")
    with ipfs_accelerate.get_accelerator(db_path=str(d / "journal.sqlite3"), enable_ipfs=False) as a:
        yield a


def _clip_samples():
    """The clip (16 kHz mono 16-bit PCM) as float samples."""
    with wave.open(str(CLIP)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def test_transcript_of_a_file_matches_transformers(speech_acc, whisper_model, golden):
    r = speech_acc.transcribe(whisper_model, str(CLIP))
    assert set(r) == {"text", "language", "duration", "segments", "backend"}
    assert r["text"].strip() == golden["no_timestamps"]["text"].strip()
    assert r["language"] == "en"
    assert r["duration"] == pytest.approx(golden["samples"] / 16000)
    assert isinstance(r["backend"], str) and r["backend"]
    # Without timestamps, one segment spans the clip.
    assert len(r["segments"]) == 1
    assert r["segments"][0]["text"].strip() == r["text"].strip()


def test_segments_with_timestamps(speech_acc, whisper_model, golden):
    r = speech_acc.transcribe(whisper_model, CLIP, timestamps=True)
    want = golden["timestamps"]["segments"]
    assert [s["start"] for s in r["segments"]] == [s["start"] for s in want]
    assert [s["end"] for s in r["segments"]] == [s["end"] for s in want]
    assert r["segments"][-1]["end"] == 3.8
    assert [s["text"] for s in r["segments"]] == [s["text"] for s in want]
    assert r["text"].strip() == golden["timestamps"]["text"].strip()


def test_bytes_and_samples_give_the_path_transcript(speech_acc, whisper_model):
    from_path = speech_acc.transcribe(whisper_model, str(CLIP))
    from_bytes = speech_acc.transcribe(whisper_model, CLIP.read_bytes())
    assert from_bytes == from_path
    # The clip is 16 kHz mono 16-bit PCM: its samples as floats.
    samples = _clip_samples()
    from_samples = speech_acc.transcribe(whisper_model, samples)
    assert from_samples["text"] == from_path["text"]
    assert from_samples["duration"] == pytest.approx(from_path["duration"])


def test_bad_audio_raises_the_input_error(speech_acc, whisper_model, tmp_path):
    with pytest.raises(InvalidInputError, match="audio"):
        speech_acc.transcribe(whisper_model, b"this is not an audio file at all" * 10)
    with pytest.raises(InvalidInputError):
        speech_acc.transcribe(whisper_model, CLIP.read_bytes()[:30])  # a truncated header
    with pytest.raises(InvalidInputError):
        speech_acc.transcribe(whisper_model, b"")
    with pytest.raises(InvalidInputError):
        speech_acc.transcribe(whisper_model, str(tmp_path / "missing.wav"))
    with pytest.raises(InvalidInputError, match="one-dimensional"):
        speech_acc.transcribe(whisper_model, np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(InvalidInputError):
        speech_acc.transcribe(whisper_model, [])
    with pytest.raises(TypeError):
        speech_acc.transcribe(whisper_model, 42)
    # ValueError keeps working for callers that catch the built-in.
    with pytest.raises(ValueError):
        speech_acc.transcribe(whisper_model, b"RIFF")


def test_english_only_model_refuses_other_languages(speech_acc, whisper_model):
    with pytest.raises(InvalidInputError, match="English-only"):
        speech_acc.transcribe(whisper_model, CLIP, language="fr")
    with pytest.raises(InvalidInputError, match="English-only"):
        speech_acc.transcribe(whisper_model, CLIP, translate=True)
    # English is what it speaks.
    assert speech_acc.transcribe(whisper_model, CLIP, language="en")["language"] == "en"


def test_missing_or_wrong_model(acc, tmp_path):
    with pytest.raises(ModelNotFoundError):
        acc.transcribe(str(tmp_path / "no-such-model"), CLIP)
    not_whisper = tmp_path / "bert"
    not_whisper.mkdir()
    (not_whisper / "config.json").write_text('{"model_type": "bert", "architectures": ["BertModel"]}')
    with pytest.raises(UnsupportedModelTypeError, match="Whisper"):
        acc.transcribe(str(not_whisper), CLIP)


def test_ctrl_c_interrupts_and_the_gil_is_free(speech_acc, whisper_model, python_sigint):
    speech_acc.transcribe(whisper_model, CLIP)  # loaded
    long_clip = np.tile(_clip_samples(), 18)  # 72 s: three 30 s windows, seconds of work
    ticks = []
    timer = threading.Timer(0.3, lambda: (ticks.append(time.monotonic()), _thread.interrupt_main()))
    timer.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        speech_acc.transcribe(whisper_model, long_clip)
    # The timer thread ran while Rust worked, and the interrupt was prompt.
    assert ticks and time.monotonic() - started < 3.0
    timer.cancel()
    # The model still works (after the abandoned transcription finishes).
    assert speech_acc.transcribe(whisper_model, CLIP)["text"].strip()
