//! Files as balanced UnixFS DAGs, node for node what boxo's `balanced`
//! layout builds for `ipfs add`.
//!
//! Layout: the first chunk becomes the root. While data remains, the root
//! becomes the first child of a new root one level deeper, which is then
//! filled with up to `max_links` children, each a full subtree of the level
//! below (filled left to right). A single-chunk file is therefore its leaf
//! alone, and an empty file is one empty leaf.

use super::{BlockSink, Chunker, ImportOptions, Imported};
use crate::block::{cid_for, DAG_PB, RAW};
use crate::dagpb;
use crate::error::Result;
use crate::unixfs::UnixFsData;
use std::io::Read;

/// Imports one file from a stream; blocks go to `sink` as they are made, so
/// memory use is one chunk plus one pending node per level.
pub fn import_file<R: Read>(reader: R, opts: &ImportOptions, sink: &mut dyn BlockSink) -> Result<Imported> {
    opts.validate()?;
    let mut b = Builder { chunker: Chunker::new(reader, opts.chunk_size), opts, sink };
    if b.chunker.done()? {
        return b.leaf(Vec::new());
    }
    let first = b.chunker.next_chunk()?.unwrap_or_default();
    let mut root = b.leaf(first)?;
    let mut depth = 1;
    while !b.chunker.done()? {
        let mut children = vec![root];
        b.fill(&mut children, depth)?;
        root = b.internal(&children)?;
        depth += 1;
    }
    Ok(root)
}

struct Builder<'a, R> {
    chunker: Chunker<R>,
    opts: &'a ImportOptions,
    sink: &'a mut dyn BlockSink,
}

impl<R: Read> Builder<'_, R> {
    /// Adds children to a node at `depth` (1 = parent of leaves) until it is
    /// full or the data ends.
    fn fill(&mut self, children: &mut Vec<Imported>, depth: usize) -> Result<()> {
        while children.len() < self.opts.max_links && !self.chunker.done()? {
            let child = if depth == 1 {
                let chunk = self.chunker.next_chunk()?.unwrap_or_default();
                self.leaf(chunk)?
            } else {
                let mut grandchildren = Vec::with_capacity(self.opts.max_links);
                self.fill(&mut grandchildren, depth - 1)?;
                self.internal(&grandchildren)?
            };
            children.push(child);
        }
        Ok(())
    }

    fn leaf(&mut self, chunk: Vec<u8>) -> Result<Imported> {
        let file_size = chunk.len() as u64;
        if self.opts.raw_leaves {
            let cid = cid_for(self.opts.cid_version, RAW, &chunk);
            self.sink.put_block(&cid, &chunk)?;
            return Ok(Imported { cid, tsize: file_size, file_size });
        }
        // Kubo leaves the Data field out entirely for the empty file (nil
        // slice), but writes it for every real chunk.
        let inline = if chunk.is_empty() { None } else { Some(chunk) };
        let data = UnixFsData::file(inline, Vec::new()).encode();
        let bytes = dagpb::encode(Vec::new(), Some(data));
        let cid = cid_for(self.opts.cid_version, DAG_PB, &bytes);
        self.sink.put_block(&cid, &bytes)?;
        Ok(Imported { cid, tsize: bytes.len() as u64, file_size })
    }

    fn internal(&mut self, children: &[Imported]) -> Result<Imported> {
        let links = children.iter().map(|c| dagpb::link(c.cid, "", c.tsize)).collect();
        let blocksizes: Vec<u64> = children.iter().map(|c| c.file_size).collect();
        let file_size = blocksizes.iter().sum();
        let data = UnixFsData::file(None, blocksizes).encode();
        let bytes = dagpb::encode(links, Some(data));
        let cid = cid_for(self.opts.cid_version, DAG_PB, &bytes);
        self.sink.put_block(&cid, &bytes)?;
        let tsize = bytes.len() as u64 + children.iter().map(|c| c.tsize).sum::<u64>();
        Ok(Imported { cid, tsize, file_size })
    }
}
