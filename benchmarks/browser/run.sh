#!/usr/bin/env bash
# MiniLM embedding latency per backend: the native CPU backend against the
# same model in a browser worker, on WebGPU (Debian's chromium, SwiftShader
# adapter: a software GPU on the CPU) and on WebNN (the Chromium that
# scripts/install-webnn-chromium.sh unpacks).
#
#   benchmarks/browser/run.sh
#
# Runs `ipfs-accelerate bench embed --json` once per backend on the same texts
# (NUM_TEXTS short sentences from make_texts.py, 10-20 tokens, unless TEXTS_FILE
# says otherwise) and prints, per workload and batch size, sentences/s, mean ms per batch, and the ratio of that time to the
# CPU backend's (x cpu > 1: slower than the CPU backend). Tokenization is
# included on every side, as a user calling `embed` would see it. A backend
# whose browser is missing is left out with a notice.
#
# Environment knobs (defaults in brackets):
#   BIN             the binary [target/release/ipfs-accelerate, built if missing]
#   MODEL           model dir or name [~/.cache/ipfs-accelerate/test-models/all-MiniLM-L6-v2]
#   BATCH_SIZES     comma-separated [1,8]
#   SECONDS_EACH    seconds measured per configuration [3]
#   NUM_TEXTS       how many generated sentences [16]; each configuration embeds every
#                   one at least once, so keep it small: SwiftShader is slow
#   TEXTS_FILE      benchmark these texts (one per line) instead; `builtin` for bench
#                   embed's own 64 short and 64 long (128-token) texts (minutes on SwiftShader)
#   CHROMIUM        browser for browser-webgpu [/usr/bin/chromium]
#   WEBNN_CHROMIUM  browser for browser-webnn [~/.cache/ipfs-accelerate/webnn-chromium/chromium/chromium]
#   BACKENDS        which to run [cpu browser-webgpu browser-webnn]
#   JSON_OUT        also write the raw results, one JSON object per backend per line, here
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${HOME}/.cache/ipfs-accelerate
BIN=${BIN:-$root/target/release/ipfs-accelerate}
MODEL=${MODEL:-$cache/test-models/all-MiniLM-L6-v2}
BATCH_SIZES=${BATCH_SIZES:-1,8}
SECONDS_EACH=${SECONDS_EACH:-3}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
WEBNN_CHROMIUM=${WEBNN_CHROMIUM:-$cache/webnn-chromium/chromium/chromium}
BACKENDS=${BACKENDS:-cpu browser-webgpu browser-webnn}
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

if [[ ! -x $BIN ]]; then
  (cd "$root" && cargo build --release -p ipfs-accelerate)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Browser profiles (and their weight caches) go to a scratch data dir.
export IPFS_ACCELERATE_DATA_DIR=$work/data

extra=()
case ${TEXTS_FILE:-} in
  builtin) ;;
  '') python3 "$root/benchmarks/browser/make_texts.py" "${NUM_TEXTS:-16}" > "$work/texts.txt"
      extra+=(--texts-file "$work/texts.txt") ;;
  *) extra+=(--texts-file "$TEXTS_FILE") ;;
esac

for backend in $BACKENDS; do
  args=(bench embed --model "$MODEL" --backend "$backend" --batch-sizes "$BATCH_SIZES" --seconds "$SECONDS_EACH" --json)
  case $backend in
    browser-webgpu) browser=$CHROMIUM ;;
    browser-webnn) browser=$WEBNN_CHROMIUM ;;
    *) browser= ;;
  esac
  if [[ -n $browser ]]; then
    if [[ ! -x $browser ]]; then
      echo "skipping $backend: no browser at $browser" >&2
      continue
    fi
    args+=(--browser "$browser")
  fi
  echo "running $backend ..." >&2
  if ! "$BIN" "${args[@]}" "${extra[@]}" > "$work/$backend.json"; then
    echo "skipping $backend: the benchmark failed (above)" >&2
    rm -f "$work/$backend.json"
  fi
done

python3 - "$work" $BACKENDS <<'PY'
import json, os, sys
work, backends = sys.argv[1], sys.argv[2:]
runs = {}
for b in backends:
    path = os.path.join(work, b + ".json")
    if os.path.exists(path):
        runs[b] = json.load(open(path))
if not runs:
    sys.exit("no backend ran")
cpu = {(r["workload"], r["batch_size"]): r for r in runs.get("cpu", {}).get("results", [])}
first = next(iter(runs.values()))
print(f"model {first['model']}")
for b, run in runs.items():
    print(f"  {b:<15} {run['device']}")
print()
print(f"{'backend':<15} {'texts':<6} {'batch':>5} {'tokens':>6} {'sentences/s':>12} {'ms/batch':>10} {'x cpu':>7}")
for b, run in runs.items():
    for r in run["results"]:
        base = cpu.get((r["workload"], r["batch_size"]))
        ratio = f"{r['mean_batch_ms'] / base['mean_batch_ms']:.2f}" if base else "-"
        print(f"{b:<15} {r['workload']:<6} {r['batch_size']:>5} {r['mean_tokens']:>6.1f} "
              f"{r['sentences_per_sec']:>12.1f} {r['mean_batch_ms']:>10.2f} {ratio:>7}")
print()
print("x cpu: this backend's ms per batch / the CPU backend's (above 1: slower)")
out = os.environ.get("JSON_OUT")
if out:
    with open(out, "w") as f:
        for b, run in runs.items():
            f.write(json.dumps({"backend": b, **run}) + "\n")
PY
