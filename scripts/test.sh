#!/usr/bin/env bash
# The project's test command: fetches the test models (once, into a cache
# outside the repo), installs Helia for the IPFS interop tests (once, into
# scripts/helia/node_modules) and a Chromium with WebNN for the browser-webnn
# tests (once, into ~/.cache/ipfs-accelerate/webnn-chromium), then runs every test of the workspace in
# release mode (the tests run real models; unoptimized builds are far too
# slow for that).
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-test-models.sh
scripts/install-helia.sh
scripts/install-webnn-chromium.sh
cargo test --workspace --release "$@"
