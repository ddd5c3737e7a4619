// Weights by CID: each weight buffer arrives as chunks named by CIDv1 (raw
// codec, SHA-256). Every chunk is checked against its CID with SubtleCrypto
// before use, and kept in Cache Storage under its URL (/ipfs/CID?format=raw),
// so loading the same model again in this browser profile reads no byte from
// the network.

const CACHE_NAME = 'ipfs-accelerate-weights-v1';
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** @param {string} text base32 (RFC 4648, lower case, no padding) */
function base32Decode(text) {
  const out = new Uint8Array(Math.floor(text.length * 5 / 8));
  let bits = 0, value = 0, i = 0;
  for (const ch of text) {
    const v = BASE32.indexOf(ch);
    if (v < 0) throw new Error(`invalid base32 character ${JSON.stringify(ch)}`);
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out[i++] = (value >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
  }
  return out;
}

/**
 * The SHA-256 digest a raw-leaf CIDv1 ("b…", base32) names.
 * @param {string} cid
 * @returns {Uint8Array}
 */
export function sha256OfCid(cid) {
  if (!cid.startsWith('b')) throw new Error(`CID ${cid} is not base32 CIDv1`);
  let bytes;
  try {
    bytes = base32Decode(cid.slice(1));
  } catch (e) {
    throw new Error(`CID ${cid} is not base32 CIDv1 (${e.message})`);
  }
  // version 1, codec raw (0x55), multihash sha2-256 (0x12) of 32 bytes (0x20)
  if (bytes.length !== 36 || bytes[0] !== 1 || bytes[1] !== 0x55 || bytes[2] !== 0x12 || bytes[3] !== 0x20) {
    throw new Error(`CID ${cid} is not a raw-leaf SHA-256 CIDv1`);
  }
  return bytes.slice(4);
}

async function verified(cid, buffer) {
  const want = sha256OfCid(cid);
  const got = new Uint8Array(await crypto.subtle.digest('SHA-256', buffer));
  if (got.length !== want.length || got.some((b, i) => b !== want[i])) {
    throw new Error(`chunk ${cid} does not hash to its CID: refused`);
  }
  return buffer;
}

let cachePromise = null;
function openCache() {
  if (!cachePromise) {
    cachePromise = ('caches' in globalThis ? caches.open(CACHE_NAME) : Promise.resolve(null)).catch(() => null);
  }
  return cachePromise;
}

/** Stores a chunk; on a quota error, evicts the oldest entries and retries. */
async function remember(cache, url, buffer) {
  for (let attempt = 0; attempt < 8; attempt++) {
    try {
      await cache.put(url, new Response(buffer));
      return;
    } catch (e) {
      if (!(e && e.name === 'QuotaExceededError')) return;
      const keys = await cache.keys();
      // Insertion order approximates least recently used.
      for (const k of keys.slice(0, Math.max(1, keys.length >> 2))) await cache.delete(k);
    }
  }
}

/**
 * Fetches one weight buffer: all its chunks, verified, concatenated.
 * @param {{key: string, bytes: number, chunks: string[]}} ref
 * @param {{hits: number, misses: number}} stats counters to update
 * @returns {Promise<ArrayBuffer>}
 */
export async function loadWeight(ref, stats) {
  // Every CID must name a raw SHA-256 block before anything is requested:
  // a CID also becomes part of a URL.
  for (const cid of ref.chunks) sha256OfCid(cid);
  if (!Number.isSafeInteger(ref.bytes) || ref.bytes < 0) throw new Error(`weight ${ref.key}: invalid size ${ref.bytes}`);
  const cache = await openCache();
  const out = new Uint8Array(ref.bytes);
  let offset = 0;
  for (const cid of ref.chunks) {
    const url = `/ipfs/${cid}?format=raw`;
    let buffer = null;
    const hit = cache && await cache.match(url);
    if (hit) {
      try {
        buffer = await verified(cid, await hit.arrayBuffer());
        stats.hits++;
      } catch {
        buffer = null; // a damaged cache entry: fetch it again
      }
    }
    if (!buffer) {
      const response = await fetch(url, { headers: { Accept: 'application/vnd.ipld.raw' } });
      if (!response.ok) throw new Error(`fetching chunk ${cid} failed: HTTP ${response.status}`);
      buffer = await verified(cid, await response.arrayBuffer());
      stats.misses++;
      if (cache) await remember(cache, url, buffer);
    }
    if (offset + buffer.byteLength > out.length) throw new Error(`weight ${ref.key}: chunks exceed ${ref.bytes} bytes`);
    out.set(new Uint8Array(buffer), offset);
    offset += buffer.byteLength;
  }
  if (offset !== ref.bytes) throw new Error(`weight ${ref.key}: chunks hold ${offset} bytes, expected ${ref.bytes}`);
  return out.buffer;
}
