//! Reading UnixFS DAGs back: `cat` a file, or write a directory tree to disk.
//!
//! Every block is hash-checked as it is read, whatever the source promises,
//! and every size field is checked against what the children really hold,
//! so a lying or corrupt DAG produces an error, never wrong bytes.

use crate::block::{verify, DAG_PB, RAW};
use crate::dagpb;
use crate::error::{Error, Result};
use crate::unixfs::NodeType;
use cid::Cid;
use std::fs;
use std::io::Write;
use std::path::{Component, Path};

/// How deep a DAG may nest before the exporter refuses it. A balanced file
/// of 174-link nodes reaches only 6 levels at 2^64 bytes, so this only stops
/// hostile input.
pub const MAX_DEPTH: usize = 64;

/// Anything that can hand out blocks by CID (a blockstore, a CAR, a gateway).
pub trait BlockSource {
    /// Returns the block's bytes, or [`Error::BlockNotFound`].
    fn get_block(&self, cid: &Cid) -> Result<Vec<u8>>;
}

impl<S: BlockSource + ?Sized> BlockSource for &S {
    fn get_block(&self, cid: &Cid) -> Result<Vec<u8>> {
        (**self).get_block(cid)
    }
}

/// Fetches a block and checks its hash.
pub fn get_verified(source: &dyn BlockSource, cid: &Cid) -> Result<Vec<u8>> {
    let data = source.get_block(cid)?;
    verify(cid, &data)?;
    Ok(data)
}

/// Writes the content of the file `cid` to `out` and returns its length.
pub fn cat(source: &dyn BlockSource, cid: &Cid, out: &mut dyn Write) -> Result<u64> {
    let mut writer = FileWriter { source, root: *cid, out };
    writer.write_node(cid, None, 0)
}

/// Reads a whole file into memory (for small files).
pub fn cat_to_vec(source: &dyn BlockSource, cid: &Cid) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    cat(source, cid, &mut out)?;
    Ok(out)
}

struct FileWriter<'a> {
    source: &'a dyn BlockSource,
    root: Cid,
    out: &'a mut dyn Write,
}

impl FileWriter<'_> {
    /// Writes one node's bytes; `expected` is the size the parent recorded,
    /// checked *before* writing so a lying DAG cannot make us emit more than
    /// the root claims.
    fn write_node(&mut self, cid: &Cid, expected: Option<u64>, depth: usize) -> Result<u64> {
        if depth > MAX_DEPTH {
            return Err(Error::TooDeep { cid: Box::new(self.root), limit: MAX_DEPTH });
        }
        let data = get_verified(self.source, cid)?;
        let inconsistent = |reason: String| Error::InconsistentFile { cid: Box::new(*cid), reason };
        match cid.codec() {
            RAW => {
                if let Some(want) = expected {
                    if want != data.len() as u64 {
                        return Err(inconsistent(format!("parent records {want} bytes, block has {}", data.len())));
                    }
                }
                self.emit(&data)?;
                Ok(data.len() as u64)
            }
            DAG_PB => {
                let (links, fs) = dagpb::decode_unixfs(cid, &data)?;
                if !matches!(fs.node_type, NodeType::File | NodeType::Raw) {
                    return Err(Error::WrongNodeType {
                        cid: Box::new(*cid),
                        found: fs.node_type.name(),
                        expected: "a file",
                    });
                }
                if !links.is_empty() && links.len() != fs.blocksizes.len() {
                    return Err(inconsistent(format!("{} links but {} blocksizes", links.len(), fs.blocksizes.len())));
                }
                let inline = fs.data.as_deref().unwrap_or(&[]);
                let total = fs
                    .blocksizes
                    .iter()
                    .try_fold(inline.len() as u64, |acc, &b| acc.checked_add(b))
                    .ok_or_else(|| inconsistent("block sizes overflow".into()))?;
                if let Some(filesize) = fs.filesize {
                    if filesize != total {
                        return Err(inconsistent(format!("filesize {filesize} but content sums to {total}")));
                    }
                }
                if let Some(want) = expected {
                    if want != total {
                        return Err(inconsistent(format!("parent records {want} bytes, node holds {total}")));
                    }
                }
                self.emit(inline)?;
                for (link, &size) in links.iter().zip(&fs.blocksizes) {
                    self.write_node(&link.cid, Some(size), depth + 1)?;
                }
                Ok(total)
            }
            codec => {
                Err(Error::UnsupportedCodec { cid: Box::new(*cid), codec, expected: "raw (0x55) or dag-pb (0x70)" })
            }
        }
    }

    fn emit(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(|source| Error::Stream { context: "writing file content", source })
    }
}

/// Checks that a directory entry name is a single, ordinary path component.
///
/// Refuses empty names, `.`, `..`, names containing `/`, `\` or NUL, and
/// anything the platform would read as more than one plain component (a
/// drive prefix, a root).
pub fn check_entry_name(parent: &Cid, name: &str) -> Result<()> {
    let refuse = |reason| Err(Error::UnsafeEntryName { parent: Box::new(*parent), name: name.to_string(), reason });
    if name.is_empty() {
        return refuse("empty names are not allowed");
    }
    if name == "." || name == ".." {
        return refuse("`.` and `..` would leave the entry's directory");
    }
    if name.contains('/') || name.contains('\\') {
        return refuse("path separators would create or escape into other directories");
    }
    if name.contains('\0') {
        return refuse("NUL bytes are not allowed in file names");
    }
    let mut components = Path::new(name).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(c)), None) if c == name => Ok(()),
        _ => refuse("not a single plain path component on this platform"),
    }
}

/// Writes the file or directory `cid` to `dest`, which must not exist yet.
///
/// Directories are created fresh and files with `create_new`, so nothing
/// already on disk (such as a planted symlink) is followed or overwritten.
/// Entry names are checked with [`check_entry_name`]; duplicate names and
/// symlinks are refused. HAMT-sharded directories are read like plain ones.
pub fn export_to(source: &dyn BlockSource, cid: &Cid, dest: &Path) -> Result<()> {
    export_node(source, cid, dest, 0)
}

fn export_node(source: &dyn BlockSource, cid: &Cid, dest: &Path, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep { cid: Box::new(*cid), limit: MAX_DEPTH });
    }
    let data = get_verified(source, cid)?;
    let node = if cid.codec() == DAG_PB { Some(dagpb::decode_unixfs(cid, &data)?) } else { None };
    match node {
        Some((links, fs)) if matches!(fs.node_type, NodeType::Directory | NodeType::HamtShard) => {
            let mut entries = Vec::with_capacity(links.len());
            if fs.node_type == NodeType::HamtShard {
                hamt_entries(source, cid, links, &fs, depth, &mut entries)?;
            } else {
                entries.extend(links.into_iter().map(|l| (l.name.unwrap_or_default(), l.cid)));
            }
            // Every name is checked before anything is created, so a bad
            // entry anywhere in this directory leaves no trace on disk.
            let mut names = std::collections::HashSet::new();
            for (name, _) in &entries {
                check_entry_name(cid, name)?;
                if !names.insert(name.as_str()) {
                    return Err(Error::UnsafeEntryName {
                        parent: Box::new(*cid),
                        name: name.clone(),
                        reason: "the name appears twice in the directory",
                    });
                }
            }
            fs::create_dir(dest).map_err(|e| Error::io(dest, e))?;
            for (name, child) in &entries {
                export_node(source, child, &dest.join(name), depth + 1)?;
            }
            Ok(())
        }
        Some((_, fs)) if !matches!(fs.node_type, NodeType::File | NodeType::Raw) => Err(Error::WrongNodeType {
            cid: Box::new(*cid),
            found: fs.node_type.name(),
            expected: "a file or directory (symlinks are not written, so an export never points outside itself)",
        }),
        _ => {
            let file =
                fs::OpenOptions::new().write(true).create_new(true).open(dest).map_err(|e| Error::io(dest, e))?;
            let mut out = std::io::BufWriter::new(file);
            cat(source, cid, &mut out)?;
            let file = out.into_inner().map_err(|e| Error::io(dest, e.into_error()))?;
            file.sync_all().map_err(|e| Error::io(dest, e))?;
            Ok(())
        }
    }
}

/// Collects the `(name, cid)` entries of a HAMT-sharded directory,
/// following its sub-shards. Link names are the slot index in uppercase hex
/// (as many digits as `fanout - 1` needs) followed by the entry name; a link
/// that is only the index is a sub-shard.
fn hamt_entries(
    source: &dyn BlockSource,
    cid: &Cid,
    links: Vec<dagpb::PbLink>,
    fs: &crate::unixfs::UnixFsData,
    depth: usize,
    out: &mut Vec<(String, Cid)>,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep { cid: Box::new(*cid), limit: MAX_DEPTH });
    }
    let bad = |reason: String| Error::InvalidUnixFs { cid: Box::new(*cid), reason };
    let fanout = fs.fanout.ok_or_else(|| bad("HAMT shard without a fanout".into()))?;
    if !fanout.is_power_of_two() || !(8..=1 << 16).contains(&fanout) {
        return Err(bad(format!("HAMT fanout {fanout} is not a power of two between 8 and 65536")));
    }
    let prefix_len = format!("{:X}", fanout - 1).len();
    for link in links {
        let name = link.name.unwrap_or_default();
        let is_slot = |p: &str| p.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
        if !name.get(..prefix_len).is_some_and(is_slot) {
            return Err(bad(format!("HAMT link {name:?} does not start with a {prefix_len}-digit slot index")));
        }
        if name.len() == prefix_len {
            if link.cid.codec() != DAG_PB {
                return Err(bad(format!("HAMT sub-shard {} is not a dag-pb node", link.cid)));
            }
            let data = get_verified(source, &link.cid)?;
            let (sub_links, sub_fs) = dagpb::decode_unixfs(&link.cid, &data)?;
            if sub_fs.node_type != NodeType::HamtShard {
                return Err(bad(format!("HAMT sub-shard {} is a {}", link.cid, sub_fs.node_type.name())));
            }
            hamt_entries(source, &link.cid, sub_links, &sub_fs, depth + 1, out)?;
        } else {
            out.push((name[prefix_len..].to_string(), link.cid));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{cid_for, CidVersion};

    fn parent() -> Cid {
        cid_for(CidVersion::V1, DAG_PB, b"parent")
    }

    #[test]
    fn entry_names_that_escape_are_refused() {
        for bad in ["", ".", "..", "a/b", "/etc", "..\\x", "a\\b", "nul\0byte"] {
            let err = check_entry_name(&parent(), bad).unwrap_err();
            assert!(matches!(err, Error::UnsafeEntryName { .. }), "{bad:?}: {err}");
        }
        for good in ["a", "config.json", "..a", "a..", ".hidden", "naïve"] {
            check_entry_name(&parent(), good).unwrap();
        }
    }
}
