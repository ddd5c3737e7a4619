#!/usr/bin/env bash
# Benchmark only, not in CI: all-MiniLM-L6-v2 in transformers.js (npm
# @huggingface/transformers, pinned in package.json / package-lock.json; ONNX
# Runtime Web, WASM backend, fp32, threads through COOP/COEP) next to our
# backends, on the same texts, in the same Chromium builds.
#
#   benchmarks/browser/transformers_js/run.sh
#
# 1. npm ci --ignore-scripts (once; the scripts only fetch onnxruntime-node's
#    native binaries, which the browser does not use)
# 2. exports the local model to ONNX with export_onnx.py in the refenv python
#    (once, into models/; there is no HF hub access: the weights are the same
#    model.safetensors our backends load)
# 3. runs ../run.sh (cpu, browser-webgpu, browser-webnn) with TEXTS_FILE
# 4. runs transformers.js in each Chromium (serve.mjs) on the same texts
# 5. prints ms per batch and sentences/s side by side, the ratio to
#    transformers.js in the same Chromium, and the cosine of transformers.js's
#    embeddings of two texts to our CPU backend's (a check of the export)
#
# Knobs: the ones of ../run.sh (BIN, MODEL, BATCH_SIZES, SECONDS_EACH, CHROMIUM,
# WEBNN_CHROMIUM), plus PYTHON [~/.cache/ipfs-accelerate/refenv/bin/python],
# TJS_THREADS [0: navigator.hardwareConcurrency], TEXTS (a file, one text per line)
# [NUM_TEXTS=16 sentences from ../make_texts.py].
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
cache=${HOME}/.cache/ipfs-accelerate
MODEL=${MODEL:-$cache/test-models/all-MiniLM-L6-v2}
BIN=${BIN:-$root/target/release/ipfs-accelerate}
PYTHON=${PYTHON:-$cache/refenv/bin/python}
BATCH_SIZES=${BATCH_SIZES:-1,8}
SECONDS_EACH=${SECONDS_EACH:-3}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
WEBNN_CHROMIUM=${WEBNN_CHROMIUM:-$cache/webnn-chromium/chromium/chromium}
TJS_THREADS=${TJS_THREADS:-0}
export BIN MODEL BATCH_SIZES SECONDS_EACH CHROMIUM WEBNN_CHROMIUM
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

cd "$here"
[[ -d node_modules/@huggingface/transformers ]] || npm ci --ignore-scripts --no-audit --no-fund
name=$(basename "$MODEL")
if [[ ! -f models/$name/onnx/model.onnx ]]; then
  echo "exporting $MODEL to ONNX ..." >&2
  "$PYTHON" export_onnx.py "$MODEL" models >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
texts=${TEXTS:-$work/texts.txt}
if [[ -z ${TEXTS:-} ]]; then
  python3 "$here/../make_texts.py" "${NUM_TEXTS:-16}" > "$texts"
fi

TEXTS_FILE=$texts JSON_OUT=$work/ours.jsonl "$here/../run.sh" >&2

for b in "$CHROMIUM" "$WEBNN_CHROMIUM"; do
  [[ -x $b ]] || { echo "skipping transformers.js in $b: missing" >&2; continue; }
  echo "running transformers.js in $b ..." >&2
  tag=$(basename "$(dirname "$b")")-$(basename "$b")
  if node serve.mjs --browser "$b" --texts "$texts" --batch-sizes "$BATCH_SIZES" \
      --seconds "$SECONDS_EACH" --threads "$TJS_THREADS" --models "$here/models" > "$work/tjs-$tag.json"; then
    echo "$b" > "$work/tjs-$tag.browser"
  else
    echo "transformers.js in $b failed: $(cat "$work/tjs-$tag.json")" >&2
    rm -f "$work/tjs-$tag.json"
  fi
done

mapfile -t two < <(head -2 "$texts")
"$BIN" embed --model "$MODEL" --backend cpu --json "${two[@]}" > "$work/cpu-embed.json"

python3 - "$work" "$CHROMIUM" "$WEBNN_CHROMIUM" "$texts" <<'PY'
import glob, json, os, subprocess, sys
work, chromium, webnn_chromium, texts = sys.argv[1:5]
ours = [json.loads(l) for l in open(os.path.join(work, "ours.jsonl"))]
ref = json.load(open(os.path.join(work, "cpu-embed.json")))["embeddings"]
def version(path):
    try:
        return subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout.split()[1]
    except Exception:
        return "?"
tjs = {}
for path in sorted(glob.glob(os.path.join(work, "tjs-*.json"))):
    browser = open(path[:-5] + ".browser").read().strip()
    tjs[browser] = json.load(open(path))
# Which Chromium each of our backends ran in.
ran_in = {"browser-webgpu": chromium, "browser-webnn": webnn_chromium}
rows = []
for run in ours:
    for r in run["results"]:
        rows.append((run["backend"], ran_in.get(run["backend"]), r["batch_size"], r["mean_batch_ms"], r["sentences_per_sec"]))
for browser, run in tjs.items():
    for r in run["results"]:
        rows.append((f"transformers.js wasm ({version(browser)})", browser, r["batch_size"], r["mean_batch_ms"], r["sentences_per_sec"]))
def tjs_ms(browser, batch):
    run = tjs.get(browser)
    for r in (run or {}).get("results", []):
        if r["batch_size"] == batch:
            return r["mean_batch_ms"]
n = sum(1 for l in open(texts) if l.strip())
print(f"{n} texts ({texts}), tokenization included everywhere")
for browser, run in tjs.items():
    c = run["config"]
    cos = [sum(a * b for a, b in zip(x, y)) for x, y in zip(run["embeddings"], ref)]
    print(f"transformers.js in {browser}: {c['threads']} WASM threads (crossOriginIsolated={c['crossOriginIsolated']}), "
          f"load {c['loadMs']:.0f} ms, cosine to our cpu backend {min(cos):.6f}")
print()
print(f"{'backend':<38} {'batch':>5} {'ms/batch':>10} {'sentences/s':>12} {'x tjs':>7}")
for name, browser, batch, ms, sps in rows:
    t = tjs_ms(browser, batch) if browser else None
    if name == "cpu":
        t = tjs_ms(chromium, batch)
    ratio = f"{ms / t:.2f}" if t else "-"
    print(f"{name:<38} {batch:>5} {ms:>10.2f} {sps:>12.1f} {ratio:>7}")
print()
print("x tjs: ms per batch / transformers.js's in the same Chromium (cpu: vs transformers.js in "
      f"{chromium}); above 1: slower than transformers.js")
PY
