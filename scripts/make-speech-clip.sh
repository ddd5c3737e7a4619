#!/usr/bin/env bash
# Makes the committed speech goldens for the Whisper tests with espeak-ng:
#
#   crates/models/tests/goldens/speech/clip.wav  one sentence, about 4 s
#   crates/models/tests/goldens/speech/long.wav  several sentences with
#                                                pauses, about 45 s (longer
#                                                than one 30 s Whisper window)
#
# both 16 kHz, mono, 16-bit PCM. Run by hand (CI uses the committed files):
#
#   apt-get install -y espeak-ng    # made with eSpeak NG 1.51 (Debian 12)
#   scripts/make-speech-clip.sh
#
# espeak-ng speaks at 22050 Hz; the clips are resampled to 16 kHz with an
# FFT (band-limited) resampler in numpy, so a python with numpy is needed:
# $PYTHON, else the reference venv's python, else python3.
# The transcripts live in crates/models/tests/goldens/speech/text.json.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/crates/models/tests/goldens/speech"
voice="en-us"
speed=150 # words per minute

if ! command -v espeak-ng >/dev/null; then
    echo "make-speech-clip: espeak-ng is not installed (apt-get install -y espeak-ng)" >&2
    exit 1
fi
py="${PYTHON:-}"
if [ -z "$py" ]; then
    if [ -x "$HOME/.cache/ipfs-accelerate/refenv/bin/python" ]; then
        py="$HOME/.cache/ipfs-accelerate/refenv/bin/python"
    else
        py=python3
    fi
fi
if ! "$py" -c 'import numpy' 2>/dev/null; then
    echo "make-speech-clip: $py has no numpy; set PYTHON to a python with numpy" >&2
    exit 1
fi

clip_text="We will meet at the library at ten o'clock tomorrow morning."
long_text=(
    "Good morning everyone, and welcome to the weekly project meeting."
    "First, the build servers were moved to the new data center on Monday."
    "The test suite now runs in about twelve minutes instead of forty."
    "Second, we still need a volunteer to update the user documentation."
    "Please send your comments on the design document before Friday."
    "The next release is planned for the end of the month."
    "Our budget for new hardware was approved by the finance team yesterday."
    "Three new engineers will join the group in the spring."
    "If you have questions about the schedule, ask in the chat room."
    "Thank you all for coming, and have a great week."
)

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$out"
espeak-ng -v "$voice" -s "$speed" -w "$tmp/clip.wav" "$clip_text"
args=()
for i in "${!long_text[@]}"; do
    espeak-ng -v "$voice" -s "$speed" -w "$tmp/long_$i.wav" "${long_text[$i]}"
    args+=("$tmp/long_$i.wav")
done

"$py" - "$out" "$tmp/clip.wav" "${args[@]}" <<'PY'
import json
import os
import sys
import wave

import numpy as np

RATE = 16000
PAUSE = 0.8  # seconds of silence between the sentences of long.wav


def read(path):
    with wave.open(path, "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2, path
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    return x, rate


def resample(x, src):
    """Band-limited resampling by truncating/zero-padding the spectrum."""
    if src == RATE:
        return x
    n_out = int(round(len(x) * RATE / src))
    spec = np.fft.rfft(x)
    keep = n_out // 2 + 1
    spec = spec[:keep] if keep <= len(spec) else np.pad(spec, (0, keep - len(spec)))
    return np.fft.irfft(spec, n_out) * (n_out / len(x))


def trim(x, threshold=64):
    loud = np.nonzero(np.abs(x) > threshold)[0]
    return x[loud[0]:loud[-1] + 1] if len(loud) else x


def write(path, x):
    pcm = np.clip(np.round(x), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return len(pcm) / RATE


out = sys.argv[1]
lead = np.zeros(int(0.3 * RATE))
x, rate = read(sys.argv[2])
clip = np.concatenate([lead, trim(resample(x, rate)), lead])
secs = write(os.path.join(out, "clip.wav"), clip)
print(f"make-speech-clip: clip.wav {secs:.2f} s")

pause = np.zeros(int(PAUSE * RATE))
parts = [lead]
for path in sys.argv[3:]:
    x, rate = read(path)
    parts += [trim(resample(x, rate)), pause]
long = np.concatenate(parts)
secs = write(os.path.join(out, "long.wav"), long)
size = os.path.getsize(os.path.join(out, "long.wav"))
print(f"make-speech-clip: long.wav {secs:.2f} s, {size} bytes")
if size >= 1_500_000:
    sys.exit("long.wav is too big (keep it under 1.5 MB)")
PY

# The texts as spoken, for the tests' messages and for a reader.
"$py" - "$out/text.json" "$voice" "$speed" "$clip_text" "${long_text[@]}" <<'PY'
import json
import sys

path, voice, speed, clip, *long = sys.argv[1:]
with open(path, "w") as f:
    json.dump({"voice": voice, "words_per_minute": int(speed), "engine": "espeak-ng 1.51",
               "clip.wav": clip, "long.wav": " ".join(long)}, f, indent=2)
    f.write("\n")
PY
