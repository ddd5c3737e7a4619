//! Directories as dag-pb UnixFS Directory nodes, as `ipfs add -r` builds
//! them (without HAMT sharding, which Kubo switches to above 256 KiB).

use super::{import_file, BlockSink, ImportOptions, Imported};
use crate::block::{cid_for, DAG_PB};
use crate::dagpb;
use crate::error::{Error, Result};
use crate::unixfs::UnixFsData;
use std::fs;
use std::path::Path;

/// Kubo's `HAMTShardingSize`: a basic directory whose estimated size
/// (sum of entry name length + CID byte length) is *above* this becomes a
/// HAMT shard (boxo `ipld/unixfs/io/directory.go`, "links" estimation).
pub const HAMT_SHARDING_SIZE: usize = 256 * 1024;

/// One named entry of a directory being built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name (one path component).
    pub name: String,
    /// The imported child.
    pub node: Imported,
}

/// Builds a directory node from already-imported entries, sends it to
/// `sink` and returns it. Links are sorted by name bytes, as Kubo sorts them.
///
/// Fails with [`Error::NeedsSharding`] where Kubo would shard the directory
/// (`path` is only used in that message).
pub fn build_directory(
    entries: Vec<DirEntry>,
    opts: &ImportOptions,
    path: &Path,
    sink: &mut dyn BlockSink,
) -> Result<Imported> {
    let estimated: usize = entries.iter().map(|e| e.name.len() + e.node.cid.encoded_len()).sum();
    if estimated > HAMT_SHARDING_SIZE {
        return Err(Error::NeedsSharding { path: path.to_path_buf(), estimated, limit: HAMT_SHARDING_SIZE });
    }
    let children_tsize: u64 = entries.iter().map(|e| e.node.tsize).sum();
    let links = entries.iter().map(|e| dagpb::link(e.node.cid, &e.name, e.node.tsize)).collect();
    let bytes = dagpb::encode(links, Some(UnixFsData::directory().encode()));
    let cid = cid_for(opts.cid_version, DAG_PB, &bytes);
    sink.put_block(&cid, &bytes)?;
    Ok(Imported { cid, tsize: bytes.len() as u64 + children_tsize, file_size: 0 })
}

/// Imports a file or (recursively) a directory from disk.
///
/// Names starting with `.` are skipped unless `opts.hidden`, as in Kubo.
/// Symlinks and other special files are refused with an error rather than
/// silently followed or dropped.
pub fn import_path(path: &Path, opts: &ImportOptions, sink: &mut dyn BlockSink) -> Result<Imported> {
    opts.validate()?;
    let meta = fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        let f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
        return import_file(std::io::BufReader::with_capacity(opts.chunk_size, f), opts, sink);
    }
    if !meta.is_dir() {
        return Err(Error::InvalidOption(format!(
            "{} is neither a regular file nor a directory (symlinks are not imported yet)",
            path.display()
        )));
    }
    let mut entries = Vec::new();
    for item in fs::read_dir(path).map_err(|e| Error::io(path, e))? {
        let item = item.map_err(|e| Error::io(path, e))?;
        let name = item.file_name().into_string().map_err(|raw| {
            Error::InvalidOption(format!(
                "file name {raw:?} in {} is not valid UTF-8; UnixFS names must be UTF-8",
                path.display()
            ))
        })?;
        if !opts.hidden && name.starts_with('.') {
            continue;
        }
        let node = import_path(&item.path(), opts, sink)?;
        entries.push(DirEntry { name, node });
    }
    // read_dir order is arbitrary; sort now so the result never depends on it
    // (the encoder sorts too, but the sink sees children in this order).
    entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    build_directory(entries, opts, path, sink)
}
