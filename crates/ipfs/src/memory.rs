//! An in-memory block map: a [`BlockSink`] and a [`BlockSource`] for tests,
//! dry runs and small transfers.

use crate::error::{Error, Result};
use crate::exporter::BlockSource;
use crate::importer::BlockSink;
use cid::Cid;
use std::collections::HashMap;

/// Blocks kept in a `HashMap`, keyed by CID.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    blocks: HashMap<Cid, Vec<u8>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of distinct blocks held.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// True when no block is held.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Replaces a block's bytes without checking them (tests use it to
    /// simulate corruption).
    pub fn insert_unchecked(&mut self, cid: Cid, data: Vec<u8>) {
        self.blocks.insert(cid, data);
    }

    /// Iterates over all blocks.
    pub fn iter(&self) -> impl Iterator<Item = (&Cid, &Vec<u8>)> {
        self.blocks.iter()
    }
}

impl BlockSink for MemoryStore {
    fn put_block(&mut self, cid: &Cid, data: &[u8]) -> Result<()> {
        self.blocks.entry(*cid).or_insert_with(|| data.to_vec());
        Ok(())
    }
}

impl BlockSource for MemoryStore {
    fn get_block(&self, cid: &Cid) -> Result<Vec<u8>> {
        self.blocks.get(cid).cloned().ok_or_else(|| Error::BlockNotFound { cid: Box::new(*cid) })
    }
}
