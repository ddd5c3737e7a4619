#!/usr/bin/env bash
# Installs the real HTTP clients the server tests drive (issue 7: the
# official `openai` package and `huggingface_hub`'s InferenceClient) into a
# venv at ~/.cache/ipfs-accelerate/client-venv, exactly at the versions
# pinned below, for crates/cli/tests/serve_clients.rs. Idempotent: pip runs
# only when the venv is missing or was installed with other pins. pip's
# download cache stays in ~/.cache/pip, so a reinstall needs no network.
set -euo pipefail

# Bump these together with a run of the serve_clients tests.
# numpy: huggingface_hub's feature_extraction returns numpy arrays.
pins=(openai==3.57.0 huggingface_hub==2.4.0 numpy==2.4.6)

venv="${IPFS_ACCELERATE_CLIENT_VENV:-$HOME/.cache/ipfs-accelerate/client-venv}"

ci=false
case "${CI:-}" in true|1) ci=true ;; esac

if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    # Outside CI the client tests skip themselves with a note; under CI they
    # must run, so a missing python3-venv is an error here, not a skip later.
    if $ci; then
        echo "install-client-venv: CI needs python3 with the venv module (Debian: python3-venv)" >&2
        exit 1
    fi
    echo "install-client-venv: python3 -m venv is not available; the HTTP client tests will be skipped"
    exit 0
fi

# The stamp records which pins the venv holds; other pins (a bump) or a
# half-finished install (no stamp) mean installing again.
stamp="$venv/.ipfs-accelerate-pins"
want="${pins[*]}"
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "install-client-venv: present in $venv"
    exit 0
fi

echo "install-client-venv: creating $venv with ${pins[*]}"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}"
"$venv/bin/python" -c 'import openai, huggingface_hub, numpy; print("install-client-venv: openai", openai.__version__, "huggingface_hub", huggingface_hub.__version__, "numpy", numpy.__version__)'
echo "$want" > "$stamp"
