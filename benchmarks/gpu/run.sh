#!/usr/bin/env bash
# GPU benchmark for a Linux x86-64 machine with a real GPU: one prepared script
# that runs a prebuilt release binary and prints, section by section, each one
# timed:
#
#   1. system       kernel, CPU, GPU driver (nvidia-smi / vulkaninfo when present),
#                   whether the Vulkan loader (libvulkan.so.1) is there
#   2. devices      `ipfs-accelerate devices` and `devices --json`: every adapter with
#                   backend, device type, driver, shader-f16, key limits, and the one
#                   `--backend webgpu` picks
#   3. matmul       `bench matmul --backend both --precision both --sizes 1024,2048,4096`:
#                   GFLOP/s on webgpu (end-to-end and kernel-only) with f32 and with f16
#                   weights (B stored as float16, f32 arithmetic; "this adapter has no
#                   shader-f16" and f32 only where the adapter lacks it) beside the CPU
#                   backend, with the ratio and the max difference from the CPU product
#   4. embed webgpu `bench embed --backend webgpu --precision 32 --batch-sizes 1,32,256`
#                   on MiniLM; the header line names the adapter
#   5. embed webgpu `--precision 16`: the same with float16 weights ("f16 weights" in
#                   the header line; without shader-f16 it runs f32 and says so)
#   6. embed cpu    the same with `--backend cpu` (float32)
#   7. generate     SmolLM2-135M-Instruct Q4_1 GGUF, greedy, 128 new tokens after a
#                   ~100-token prompt, `--backend webgpu` (f32 activations, then f16
#                   activations and KV cache) then `--backend cpu`: one JSON line each
#                   with prefill/decode tokens/s and the token ids (equal ids = the GPU
#                   kernels agree with the CPU; f16 may part from them late)
#   8. transcribe   Whisper tiny.en on the committed 45 s clip, `--backend webgpu` then
#                   `--backend cpu`: one JSON line each with the transcript, the seconds
#                   taken and the real-time factor (equal text = the GPU agrees)
#
# Usage:
#   benchmarks/gpu/run.sh [BINARY] [MODEL_DIR]
#
#   BINARY     prebuilt release binary (default: target/release/ipfs-accelerate of
#              this checkout). Build it on any x86-64 Linux box with
#              `cargo build --release -p ipfs-accelerate` and copy it over; on the GPU
#              machine it needs only glibc and the Vulkan loader (Debian/Ubuntu
#              `libvulkan1`) plus the GPU's Vulkan driver (e.g. the NVIDIA driver).
#   LLM_MODEL  (environment) the SmolLM2 GGUF directory (default:
#              ~/.cache/ipfs-accelerate/test-models/smollm2-135m-instruct)
#   WHISPER_MODEL (environment) the Whisper tiny.en directory (default:
#              ~/.cache/ipfs-accelerate/test-models/whisper-tiny.en)
#   MODEL_DIR  all-MiniLM-L6-v2 directory (default:
#              ~/.cache/ipfs-accelerate/test-models/all-MiniLM-L6-v2, which
#              scripts/fetch-test-models.sh downloads; copy it over with the binary).
#
# Environment:
#   BENCH_SECONDS    seconds per measured configuration (default 3)
#   MATMUL_SIZES     default 1024,2048,4096
#   BATCH_SIZES      default 1,32,256
#   SECTION_TIMEOUT  seconds before a section is stopped (default 900; 0 = never)
#   BENCH_JSON=1     bench sections print JSON instead of tables
#   IPFS_ACCELERATE_ADAPTER=<index|name>  pick another adapter (see the devices section)
#
# Needs no network. A failing section (e.g. `embed --backend webgpu` in a build
# without it) prints its error and the script goes on; failures are listed at
# the end, and the exit status is 1 when any section failed, else 0.
set -u

repo="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${1:-$repo/target/release/ipfs-accelerate}"
model="${2:-$HOME/.cache/ipfs-accelerate/test-models/all-MiniLM-L6-v2}"
bench_seconds="${BENCH_SECONDS:-3}"
matmul_sizes="${MATMUL_SIZES:-1024,2048,4096}"
batch_sizes="${BATCH_SIZES:-1,32,256}"
section_timeout="${SECTION_TIMEOUT:-900}"
json_flag=()
if [ "${BENCH_JSON:-0}" = "1" ]; then
    json_flag=(--json)
fi
# Mesa and some drivers complain on stderr without it; harmless elsewhere.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

failed=()
script_start="$(date +%s.%N)"

header() {
    echo
    echo "================================================================"
    echo "== $*"
    echo "================================================================"
}

elapsed_since() {
    awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}

# section NAME COMMAND...: runs COMMAND under a header, times it, records failure.
section() {
    local name="$1"
    shift
    header "$name"
    echo "\$ $*"
    local start rc
    start="$(date +%s.%N)"
    if declare -F "$1" >/dev/null; then
        "$@" # a function of this script: timeout cannot run it
    elif [ "$section_timeout" != "0" ] && command -v timeout >/dev/null 2>&1; then
        timeout --kill-after=10 "$section_timeout" "$@"
    else
        "$@"
    fi
    rc=$?
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "!! $name: stopped after SECTION_TIMEOUT=${section_timeout}s"
    elif [ "$rc" -ne 0 ]; then
        echo "!! $name: failed (exit status $rc); going on"
    fi
    if [ "$rc" -ne 0 ]; then
        failed+=("$name (exit $rc)")
    fi
    echo "-- $name: $(elapsed_since "$start") s"
}

system_info() {
    echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host:     $(uname -srm)"
    echo "cpu:      $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//') ($(nproc 2>/dev/null) threads)"
    echo "binary:   $bin ($("$bin" --version 2>&1), $(du -h "$bin" 2>/dev/null | cut -f1))"
    echo "model:    $model"
    if ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
        echo "vulkan:   loader found ($(ldconfig -p | grep -m1 'libvulkan\.so\.1' | sed 's/.*=> //'))"
    else
        echo "vulkan:   libvulkan.so.1 NOT found by ldconfig: install the Vulkan loader (Debian/Ubuntu: libvulkan1)"
    fi
    if [ -d /usr/share/vulkan/icd.d ] || [ -d /etc/vulkan/icd.d ]; then
        echo "ICDs:     $(ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>/dev/null | grep json | tr '\n' ' ')"
    fi
    if command -v nvidia-smi >/dev/null 2>&1; then
        nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
    fi
    if command -v vulkaninfo >/dev/null 2>&1; then
        vulkaninfo --summary 2>/dev/null | sed -n '/^Devices:/,$p'
    fi
    return 0
}

header "ipfs-accelerate GPU benchmark"
echo "binary $bin, model $model"
echo "BENCH_SECONDS=$bench_seconds MATMUL_SIZES=$matmul_sizes BATCH_SIZES=$batch_sizes SECTION_TIMEOUT=$section_timeout"
if [ ! -x "$bin" ]; then
    echo "error: $bin is not an executable; pass the prebuilt binary as the first argument" >&2
    echo "       (build it with: cargo build --release -p ipfs-accelerate)" >&2
    exit 2
fi

section "system" system_info
section "devices" "$bin" devices
section "devices --json" "$bin" devices --json
section "matmul f32 and f16 weights, webgpu vs cpu" \
    "$bin" bench matmul --backend both --precision both --sizes "$matmul_sizes" --seconds "$bench_seconds" ${json_flag[@]+"${json_flag[@]}"}

if [ -f "$model/config.json" ]; then
    section "embed MiniLM, webgpu, f32 weights" \
        "$bin" bench embed --model "$model" --backend webgpu --precision 32 --batch-sizes "$batch_sizes" --seconds "$bench_seconds" ${json_flag[@]+"${json_flag[@]}"}
    section "embed MiniLM, webgpu, f16 weights" \
        "$bin" bench embed --model "$model" --backend webgpu --precision 16 --batch-sizes "$batch_sizes" --seconds "$bench_seconds" ${json_flag[@]+"${json_flag[@]}"}
    section "embed MiniLM, cpu" \
        "$bin" bench embed --model "$model" --backend cpu --precision 32 --batch-sizes "$batch_sizes" --seconds "$bench_seconds" ${json_flag[@]+"${json_flag[@]}"}
else
    header "embed MiniLM"
    echo "!! skipped: no model at $model (config.json missing)."
    echo "   Fetch it where there is network (scripts/fetch-test-models.sh) and copy the"
    echo "   directory here, or pass its path as the second argument."
    failed+=("embed MiniLM (no model)")
fi

llm_model="${LLM_MODEL:-$HOME/.cache/ipfs-accelerate/test-models/smollm2-135m-instruct}"
llm_prompt="$(printf 'The history of the printing press %.0s' $(seq 1 16))"
if ls "$llm_model"/*.gguf >/dev/null 2>&1; then
    for run in "webgpu f32" "webgpu f16" "cpu f32"; do
        read -r backend activations <<<"$run"
        section "generate SmolLM2 Q4_1, $backend, $activations activations" \
            "$bin" generate --model "$llm_model" --backend "$backend" --activations "$activations" \
            --greedy --ignore-eos --max-tokens 128 --json "$llm_prompt"
    done
else
    header "generate SmolLM2"
    echo "!! skipped: no .gguf in $llm_model; fetch it with scripts/fetch-test-models.sh and copy it over"
    failed+=("generate SmolLM2 (no model)")
fi

whisper_model="${WHISPER_MODEL:-$HOME/.cache/ipfs-accelerate/test-models/whisper-tiny.en}"
speech_clip="$repo/crates/models/tests/goldens/speech/long.wav"
if [ -f "$whisper_model/model.safetensors" ] && [ -f "$speech_clip" ]; then
    for backend in webgpu cpu; do
        section "transcribe Whisper tiny.en, 45 s clip, $backend" \
            "$bin" transcribe --model "$whisper_model" --backend "$backend" --json "$speech_clip"
    done
else
    header "transcribe Whisper tiny.en"
    echo "!! skipped: no model at $whisper_model or no clip at $speech_clip; fetch it with"
    echo "   scripts/fetch-test-models.sh and copy it over (WHISPER_MODEL names another place)"
    failed+=("transcribe Whisper (no model)")
fi

header "summary"
echo "total: $(elapsed_since "$script_start") s"
if [ "${#failed[@]}" -eq 0 ]; then
    echo "every section ran"
    exit 0
fi
echo "failed sections:"
for f in "${failed[@]}"; do
    echo "  - $f"
done
exit 1
