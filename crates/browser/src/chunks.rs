//! Weight bytes as content-addressed chunks the pages fetch from the bridge.
//!
//! Every weight buffer a page needs is cut into chunks of at most
//! [`CHUNK_BYTES`], each named by its CID (v1, raw codec, SHA-256). The
//! bridge serves them through the trustless-gateway routes
//! (`/ipfs/{cid}?format=raw`); a page checks each chunk's SHA-256 against its
//! CID before using it and keeps it in Cache Storage keyed by CID, so a
//! second load of the same model is served from the browser's own cache.

use cid::Cid;
use ipfs_accelerate_ipfs::block::RAW;
use ipfs_accelerate_ipfs::{cid_for, BlockSource, CidVersion};
use std::collections::HashMap;
use std::sync::RwLock;

/// Largest chunk: 1 MiB, the block size every IPFS implementation transfers.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Chunks by CID, shared by every page of a bridge.
#[derive(Debug, Default)]
pub struct ChunkStore {
    chunks: RwLock<HashMap<Cid, bytes::Bytes>>,
}

impl ChunkStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cuts `data` into chunks, keeps them, and returns their CIDs in order.
    pub fn add(&self, data: &[u8]) -> Vec<String> {
        let mut cids = Vec::with_capacity(data.len().div_ceil(CHUNK_BYTES));
        let mut chunks = self.chunks.write().unwrap_or_else(|p| p.into_inner());
        for chunk in data.chunks(CHUNK_BYTES) {
            let cid = cid_for(CidVersion::V1, RAW, chunk);
            chunks.entry(cid).or_insert_with(|| bytes::Bytes::copy_from_slice(chunk));
            cids.push(cid.to_string());
        }
        cids
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.chunks.read().unwrap_or_else(|p| p.into_inner()).values().map(|b| b.len()).sum()
    }
}

impl BlockSource for ChunkStore {
    fn get_block(&self, cid: &Cid) -> ipfs_accelerate_ipfs::Result<Vec<u8>> {
        let chunks = self.chunks.read().unwrap_or_else(|p| p.into_inner());
        // The CID was computed from these bytes when they were added; a v0/v1
        // spelling of the same multihash finds them too.
        let key = Cid::new_v1(cid.codec(), *cid.hash());
        chunks
            .get(&key)
            .map(|b| b.to_vec())
            .ok_or_else(|| ipfs_accelerate_ipfs::Error::BlockNotFound { cid: Box::new(*cid) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_content_addressed_and_deduplicated() {
        let store = ChunkStore::new();
        let data: Vec<u8> = (0..(CHUNK_BYTES * 2 + 5)).map(|i| (i % 251) as u8).collect();
        let cids = store.add(&data);
        assert_eq!(cids.len(), 3);
        assert_eq!(store.add(&data), cids);
        assert_eq!(store.bytes(), data.len());
        let first: Cid = cids[0].parse().unwrap();
        assert_eq!(store.get_block(&first).unwrap(), &data[..CHUNK_BYTES]);
        ipfs_accelerate_ipfs::verify(&first, &data[..CHUNK_BYTES]).unwrap();
    }
}
