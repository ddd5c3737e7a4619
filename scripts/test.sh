#!/usr/bin/env bash
# The project's test command: fetches the test models (once, into a cache
# outside the repo), then runs every test of the workspace in release mode
# (the tests run real models; unoptimized builds are far too slow for that).
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-test-models.sh
cargo test --workspace --release "$@"
