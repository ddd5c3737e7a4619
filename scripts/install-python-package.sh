#!/usr/bin/env bash
# Builds the ipfs_accelerate Python package (crates/python, PyO3 + maturin)
# and installs it into a venv at ~/.cache/ipfs-accelerate/python-venv
# (IPFS_ACCELERATE_PYTHON_VENV overrides), with pytest for its tests, exactly
# at the versions pinned below. The build uses the workspace's cargo target
# dir ($CARGO_TARGET_DIR, else target/), so the dependencies `cargo test
# --release` compiled are reused instead of rebuilt in an isolated build.
# Prints the venv's python on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

# Bump these together with a run of crates/python/tests.
pins=(maturin==1.16.0 pytest==9.2.0 numpy==2.4.6)

venv="${IPFS_ACCELERATE_PYTHON_VENV:-$HOME/.cache/ipfs-accelerate/python-venv}"

ci=false
case "${CI:-}" in true|1) ci=true ;; esac

if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    if $ci; then
        echo "install-python-package: CI needs python3 with the venv module (Debian: python3-venv)" >&2
        exit 1
    fi
    echo "install-python-package: python3 -m venv is not available; the Python package is not built" >&2
    exit 1
fi

# The stamp records which pins the venv holds; other pins (a bump) or a
# half-finished install (no stamp) mean installing them again.
stamp="$venv/.ipfs-accelerate-pins"
want="${pins[*]}"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "install-python-package: creating $venv with ${pins[*]}"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}"
    echo "$want" > "$stamp"
fi

# maturin develop builds in release mode into the shared target dir and
# installs the package into the venv it runs in.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
(cd crates/python && VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" "$venv/bin/maturin" develop --release --quiet)
"$venv/bin/python" -c 'import ipfs_accelerate; print("install-python-package: ipfs_accelerate", ipfs_accelerate.__version__)'
echo "$venv/bin/python"
