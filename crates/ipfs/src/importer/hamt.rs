//! HAMT-sharded directories, built as Kubo (boxo `ipld/unixfs/hamt`) builds
//! them once a directory outgrows one block.
//!
//! Each entry's name is hashed with murmur3-x64-128 (seed 0) and the first
//! 64-bit half (`h1`) is taken big-endian, which is what Go's
//! `murmur3.New64().Sum(nil)` yields. Level `d` of the trie uses byte `d` of
//! that hash as the slot index (fanout 256). A slot holding one entry links
//! it directly, named `XX<name>` (`XX` = slot index in two uppercase hex
//! digits); a slot holding several becomes a sub-shard linked as `XX`.
//! The node's Data is UnixFS `HAMTShard` with the occupied-slot bitfield
//! (big-endian, leading zero bytes dropped), `hashType` murmur3 and
//! `fanout` 256. Because the trie is determined by the set of names alone,
//! building it in one pass gives the same CIDs as Kubo's incremental inserts.

use super::{BlockSink, DirEntry, ImportOptions, Imported};
use crate::block::{cid_for, DAG_PB};
use crate::dagpb;
use crate::error::{Error, Result};
use crate::unixfs::{NodeType, UnixFsData};

/// Slots per shard node (Kubo's `DefaultShardWidth`).
pub const FANOUT: usize = 256;
/// Multihash code of murmur3-x64-64, recorded in each shard's `hashType`.
pub const MURMUR3_X64_64: u64 = 0x22;

/// The 8 hash bytes that pick a name's slot at each level.
pub fn name_hash(name: &str) -> [u8; 8] {
    let h = murmur3::murmur3_x64_128(&mut name.as_bytes(), 0).expect("reading from a slice cannot fail");
    // The crate returns h2 << 64 | h1.
    (h as u64).to_be_bytes()
}

/// Builds the shard tree for `entries` and returns its root.
pub fn build_hamt(entries: Vec<DirEntry>, opts: &ImportOptions, sink: &mut dyn BlockSink) -> Result<Imported> {
    let hashed = entries.into_iter().map(|e| (name_hash(&e.name), e)).collect();
    build_level(hashed, 0, opts, sink)
}

fn build_level(
    entries: Vec<([u8; 8], DirEntry)>,
    depth: usize,
    opts: &ImportOptions,
    sink: &mut dyn BlockSink,
) -> Result<Imported> {
    if depth >= 8 {
        // Kubo would rehash here; two distinct names agreeing on 64 hash
        // bits is too unlikely to be worth supporting.
        let names: Vec<String> = entries.into_iter().map(|(_, e)| e.name).collect();
        return Err(Error::InvalidOption(format!(
            "directory names {names:?} collide on all 64 bits of the HAMT hash; rename one of them"
        )));
    }
    let mut slots: Vec<Vec<([u8; 8], DirEntry)>> = (0..FANOUT).map(|_| Vec::new()).collect();
    for (hash, entry) in entries {
        slots[hash[depth] as usize].push((hash, entry));
    }
    let mut bitfield = [0u8; FANOUT / 8];
    let mut links = Vec::new();
    let mut children_tsize = 0u64;
    for (index, slot) in slots.into_iter().enumerate() {
        if slot.is_empty() {
            continue;
        }
        bitfield[FANOUT / 8 - 1 - index / 8] |= 1 << (index % 8);
        let (name, node) = if slot.len() == 1 {
            let (_, entry) = slot.into_iter().next().expect("one entry");
            (format!("{index:02X}{}", entry.name), entry.node)
        } else {
            (format!("{index:02X}"), build_level(slot, depth + 1, opts, sink)?)
        };
        children_tsize += node.tsize;
        links.push(dagpb::link(node.cid, &name, node.tsize));
    }
    let first_set = bitfield.iter().position(|&b| b != 0).unwrap_or(bitfield.len());
    let data = UnixFsData {
        node_type: NodeType::HamtShard,
        data: Some(bitfield[first_set..].to_vec()),
        filesize: None,
        blocksizes: Vec::new(),
        hash_type: Some(MURMUR3_X64_64),
        fanout: Some(FANOUT as u64),
    };
    let bytes = dagpb::encode(links, Some(data.encode()));
    let cid = cid_for(opts.cid_version, DAG_PB, &bytes);
    sink.put_block(&cid, &bytes)?;
    Ok(Imported { cid, tsize: bytes.len() as u64 + children_tsize, file_size: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_hash_is_murmur3_h1_big_endian() {
        // h1 of MurmurHash3_x64_128 (seed 0), as @multiformats/murmur3
        // returns it (its first 8 bytes); the JS importer reverses them and
        // then consumes from the end, which reads the same bytes in this order.
        assert_eq!(name_hash(""), [0; 8]);
        assert_eq!(name_hash("hello"), 0xcbd8a7b341bd9b02u64.to_be_bytes());
        assert_eq!(name_hash("entry-0-"), 0x2c75bd69a64ec7cau64.to_be_bytes());
        assert_eq!(name_hash("config.json"), 0xfe9c4d0e55c825dfu64.to_be_bytes());
        // Longer than one 16-byte block.
        let long = format!("{:x<200}", "entry-0-");
        assert_eq!(name_hash(&long), 0xf9605f58ea568db1u64.to_be_bytes());
    }
}
