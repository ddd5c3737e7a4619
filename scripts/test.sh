#!/usr/bin/env bash
# The project's test command: fetches the test models (once, into a cache
# outside the repo), installs Helia for the IPFS interop tests (once, into
# scripts/helia/node_modules), a Chromium with WebNN for the browser-webnn
# tests (once, into ~/.cache/ipfs-accelerate/webnn-chromium) and the Python
# HTTP clients for the server tests (once, into
# ~/.cache/ipfs-accelerate/client-venv), then runs every test of the workspace in
# release mode (the tests run real models; unoptimized builds are far too
# slow for that).
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-test-models.sh
scripts/install-helia.sh
scripts/install-webnn-chromium.sh
scripts/install-client-venv.sh
cargo test --workspace --release "$@"
