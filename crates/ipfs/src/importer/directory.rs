//! Directories as dag-pb UnixFS Directory nodes, as `ipfs add -r` builds
//! them, switching to a HAMT-sharded directory where Kubo does.

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

/// Builds a directory node from already-imported entries, sends it (and,
/// for a sharded directory, its sub-shards) to `sink` and returns the root.
/// Links are sorted by name bytes, as Kubo sorts them.
///
/// Like Kubo, a directory whose estimated size (sum of name length + CID
/// byte length) is above [`HAMT_SHARDING_SIZE`] becomes a HAMT shard.
/// Entry names must be unique.
pub fn build_directory(entries: Vec<DirEntry>, opts: &ImportOptions, sink: &mut dyn BlockSink) -> Result<Imported> {
    let estimated: usize = entries.iter().map(|e| e.name.len() + e.node.cid.encoded_len()).sum();
    if estimated > HAMT_SHARDING_SIZE {
        return super::hamt::build_hamt(entries, opts, sink);
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
/// Symlinks are stored as UnixFS Symlink nodes (not followed), as Kubo does;
/// sockets, pipes and devices are refused with an error.
pub fn import_path(path: &Path, opts: &ImportOptions, sink: &mut dyn BlockSink) -> Result<Imported> {
    import_path_reporting(path, opts, sink, &mut |_, _, _| {})
}

/// What [`import_path_reporting`] tells its callback about each entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory (reported after all of its entries).
    Directory,
    /// A symbolic link, stored as a UnixFS Symlink node.
    Symlink,
}

/// Stores a UnixFS Symlink node for `target` (Type 4, Data = target, no
/// filesize: boxo's `SymlinkData`) and returns it.
pub fn symlink_node(target: &str, opts: &ImportOptions, sink: &mut dyn BlockSink) -> Result<Imported> {
    let data = UnixFsData {
        node_type: crate::unixfs::NodeType::Symlink,
        data: Some(target.as_bytes().to_vec()),
        filesize: None,
        blocksizes: Vec::new(),
        hash_type: None,
        fanout: None,
    };
    let bytes = dagpb::encode(Vec::new(), Some(data.encode()));
    let cid = cid_for(opts.cid_version, DAG_PB, &bytes);
    sink.put_block(&cid, &bytes)?;
    Ok(Imported { cid, tsize: bytes.len() as u64, file_size: 0 })
}

/// Like [`import_path`], calling `report` with each imported entry's path
/// relative to `path` (empty for `path` itself), its kind and its root, in
/// import order: children before their directory.
pub fn import_path_reporting(
    path: &Path,
    opts: &ImportOptions,
    sink: &mut dyn BlockSink,
    report: &mut dyn FnMut(&Path, EntryKind, &Imported),
) -> Result<Imported> {
    opts.validate()?;
    import_rec(path, Path::new(""), opts, sink, report)
}

fn import_rec(
    path: &Path,
    rel: &Path,
    opts: &ImportOptions,
    sink: &mut dyn BlockSink,
    report: &mut dyn FnMut(&Path, EntryKind, &Imported),
) -> Result<Imported> {
    let meta = fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        let f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let node = import_file(std::io::BufReader::with_capacity(opts.chunk_size, f), opts, sink)?;
        report(rel, EntryKind::File, &node);
        return Ok(node);
    }
    if meta.file_type().is_symlink() {
        // Like Kubo, store the link itself (never follow it): a UnixFS
        // Symlink node whose Data is the target path.
        let target = fs::read_link(path).map_err(|e| Error::io(path, e))?;
        let target = target.into_os_string().into_string().map_err(|raw| {
            Error::InvalidOption(format!(
                "symlink {} points to {raw:?}, which is not valid UTF-8; UnixFS targets must be UTF-8",
                path.display()
            ))
        })?;
        let node = symlink_node(&target, opts, sink)?;
        report(rel, EntryKind::Symlink, &node);
        return Ok(node);
    }
    if !meta.is_dir() {
        return Err(Error::InvalidOption(format!(
            "{} is not a regular file, directory or symlink (sockets, pipes and devices cannot be added)",
            path.display()
        )));
    }
    let mut names = Vec::new();
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
        names.push(name);
    }
    // read_dir order is arbitrary; sort so blocks and reports come in the
    // same order every time (the encoder sorts links by these bytes too).
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut entries = Vec::with_capacity(names.len());
    for name in names {
        let node = import_rec(&path.join(&name), &rel.join(&name), opts, sink, report)?;
        entries.push(DirEntry { name, node });
    }
    let node = build_directory(entries, opts, sink)?;
    report(rel, EntryKind::Directory, &node);
    Ok(node)
}
