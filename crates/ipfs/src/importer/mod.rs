//! Importing bytes and directory trees into UnixFS DAGs exactly as Kubo's
//! `ipfs add` does.

mod chunker;
mod directory;
mod file;
pub mod hamt;
mod options;

pub use chunker::Chunker;
pub use directory::{
    build_directory, import_path, import_path_reporting, symlink_node, DirEntry, EntryKind, HAMT_SHARDING_SIZE,
};
pub use file::import_file;
pub use options::ImportOptions;

use crate::error::Result;
use cid::Cid;

/// Where the importer puts each block it produces, in dependency order
/// (children before parents).
pub trait BlockSink {
    /// Receives one block; an error aborts the import.
    fn put_block(&mut self, cid: &Cid, data: &[u8]) -> Result<()>;
}

impl<F: FnMut(&Cid, &[u8]) -> Result<()>> BlockSink for F {
    fn put_block(&mut self, cid: &Cid, data: &[u8]) -> Result<()> {
        self(cid, data)
    }
}

/// The root of an imported file or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// The root CID.
    pub cid: Cid,
    /// Cumulative size of every block under (and including) the root: the
    /// `Tsize` a parent link records, and what `ipfs add` reports as size.
    pub tsize: u64,
    /// Bytes of file content (0 for directories).
    pub file_size: u64,
}
