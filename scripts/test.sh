#!/usr/bin/env bash
# The project's test command: fetches the test models (once, into a cache
# outside the repo), installs Helia for the IPFS interop tests (once, into
# scripts/helia/node_modules), a Chromium with WebNN for the browser-webnn
# tests (once, into ~/.cache/ipfs-accelerate/webnn-chromium) and the Python
# HTTP clients for the server tests (once, into
# ~/.cache/ipfs-accelerate/client-venv), then runs every test of the workspace in
# release mode (the tests run real models; unoptimized builds are far too
# slow for that), then builds the Python package into
# ~/.cache/ipfs-accelerate/python-venv (reusing the same target dir) and runs
# its pytest suite and the Python example.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-test-models.sh
scripts/install-helia.sh
scripts/install-webnn-chromium.sh
scripts/install-client-venv.sh
cargo test --workspace --release "$@"
python="$(scripts/install-python-package.sh | tail -n 1)"
"$python" -m pytest -q crates/python/tests
models="${IPFS_ACCELERATE_TEST_MODELS:-$HOME/.cache/ipfs-accelerate/test-models}"
example_browser=()
command -v chromium >/dev/null && example_browser=(--browser chromium)
XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}" "$python" examples/python/embed.py "$models/all-MiniLM-L6-v2" "${example_browser[@]}"
