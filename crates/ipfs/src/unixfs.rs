//! The UnixFS `Data` message carried in a dag-pb node's Data field.
//!
//! Hand-written protobuf (proto2) because byte-exactness with Kubo is the
//! point: fields are written in field-number order, `Type` always, `Data`
//! only when present, `filesize` for files, and `blocksizes` *unpacked* (one
//! tag per entry), which is what Go's proto2 marshaller emits for
//! `repeated uint64 blocksizes = 4` (see the UnixFS spec, "Data format").

use crate::varint;

/// UnixFS node types (the `Type` enum of the spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeType {
    /// Legacy raw data node.
    Raw,
    /// A directory: links are named entries.
    Directory,
    /// A file: data inline and/or in linked children.
    File,
    /// Legacy metadata node.
    Metadata,
    /// A symbolic link; Data holds the target.
    Symlink,
    /// A HAMT-sharded directory.
    HamtShard,
}

impl NodeType {
    fn code(self) -> u64 {
        match self {
            NodeType::Raw => 0,
            NodeType::Directory => 1,
            NodeType::File => 2,
            NodeType::Metadata => 3,
            NodeType::Symlink => 4,
            NodeType::HamtShard => 5,
        }
    }

    fn from_code(code: u64) -> Option<Self> {
        Some(match code {
            0 => NodeType::Raw,
            1 => NodeType::Directory,
            2 => NodeType::File,
            3 => NodeType::Metadata,
            4 => NodeType::Symlink,
            5 => NodeType::HamtShard,
            _ => return None,
        })
    }

    /// A short lowercase name for messages.
    pub fn name(self) -> &'static str {
        match self {
            NodeType::Raw => "raw node",
            NodeType::Directory => "directory",
            NodeType::File => "file",
            NodeType::Metadata => "metadata node",
            NodeType::Symlink => "symlink",
            NodeType::HamtShard => "HAMT-sharded directory",
        }
    }
}

/// A decoded (or to-be-encoded) UnixFS `Data` message.
///
/// `mode` and `mtime` are not produced by the importer (Kubo omits them by
/// default) and are skipped when decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixFsData {
    /// The node type.
    pub node_type: NodeType,
    /// Inline bytes (file data, or a symlink target).
    pub data: Option<Vec<u8>>,
    /// Total file size under this node.
    pub filesize: Option<u64>,
    /// File bytes under each child link, in link order.
    pub blocksizes: Vec<u64>,
    /// HAMT hash function (HAMT shards only).
    pub hash_type: Option<u64>,
    /// HAMT fanout (HAMT shards only).
    pub fanout: Option<u64>,
}

impl UnixFsData {
    /// A directory node's data: just the type, as Kubo writes it.
    pub fn directory() -> Self {
        UnixFsData {
            node_type: NodeType::Directory,
            data: None,
            filesize: None,
            blocksizes: Vec::new(),
            hash_type: None,
            fanout: None,
        }
    }

    /// A file node: optional inline data plus the sizes of its children.
    ///
    /// `filesize` is computed as Kubo does: inline length plus the sum of the
    /// children's sizes.
    pub fn file(data: Option<Vec<u8>>, blocksizes: Vec<u64>) -> Self {
        let inline = data.as_ref().map_or(0, |d| d.len() as u64);
        let filesize = inline + blocksizes.iter().sum::<u64>();
        UnixFsData {
            node_type: NodeType::File,
            data,
            filesize: Some(filesize),
            blocksizes,
            hash_type: None,
            fanout: None,
        }
    }

    /// Serializes the message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.data.as_ref().map_or(0, Vec::len));
        out.push(0x08); // field 1, varint
        varint::encode(self.node_type.code(), &mut out);
        if let Some(data) = &self.data {
            out.push(0x12); // field 2, length-delimited
            varint::encode(data.len() as u64, &mut out);
            out.extend_from_slice(data);
        }
        if let Some(size) = self.filesize {
            out.push(0x18); // field 3, varint
            varint::encode(size, &mut out);
        }
        for &bs in &self.blocksizes {
            out.push(0x20); // field 4, varint, unpacked
            varint::encode(bs, &mut out);
        }
        if let Some(h) = self.hash_type {
            out.push(0x28);
            varint::encode(h, &mut out);
        }
        if let Some(f) = self.fanout {
            out.push(0x30);
            varint::encode(f, &mut out);
        }
        out
    }

    /// Parses the message; the error string says what is malformed.
    pub fn decode(buf: &[u8]) -> Result<Self, String> {
        let mut node_type = None;
        let mut msg = UnixFsData::directory();
        let mut pos = 0usize;
        let read_varint = |pos: &mut usize| -> Result<u64, String> {
            let (v, n) = varint::decode(&buf[*pos..]).map_err(|e| format!("{e} at byte {pos}"))?;
            *pos += n;
            Ok(v)
        };
        while pos < buf.len() {
            let key = read_varint(&mut pos)?;
            let field = key >> 3;
            let wire = key & 7;
            match (field, wire) {
                (1, 0) => {
                    let code = read_varint(&mut pos)?;
                    node_type = Some(NodeType::from_code(code).ok_or_else(|| format!("unknown node type {code}"))?);
                }
                (2, 2) => {
                    let bytes = read_bytes(buf, &mut pos)?;
                    msg.data = Some(bytes.to_vec());
                }
                (3, 0) => msg.filesize = Some(read_varint(&mut pos)?),
                (4, 0) => {
                    let v = read_varint(&mut pos)?;
                    msg.blocksizes.push(v);
                }
                (4, 2) => {
                    // Packed encoding: accepted when reading, never written.
                    let packed = read_bytes(buf, &mut pos)?;
                    let mut p = 0;
                    while p < packed.len() {
                        let (v, n) = varint::decode(&packed[p..]).map_err(|e| format!("blocksizes: {e}"))?;
                        msg.blocksizes.push(v);
                        p += n;
                    }
                }
                (5, 0) => msg.hash_type = Some(read_varint(&mut pos)?),
                (6, 0) => msg.fanout = Some(read_varint(&mut pos)?),
                // Unknown or ignored fields (mode = 7, mtime = 8, future ones).
                (_, 0) => {
                    read_varint(&mut pos)?;
                }
                (_, 2) => {
                    read_bytes(buf, &mut pos)?;
                }
                (_, 1) => skip(buf, &mut pos, 8)?,
                (_, 5) => skip(buf, &mut pos, 4)?,
                (f, w) => return Err(format!("unsupported wire type {w} for field {f}")),
            }
        }
        msg.node_type = node_type.ok_or("missing required Type field")?;
        Ok(msg)
    }
}

fn read_bytes<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8], String> {
    let (len, n) = varint::decode(&buf[*pos..]).map_err(|e| format!("{e} at byte {pos}"))?;
    *pos += n;
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| pos.checked_add(l))
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| format!("field length {len} runs past the end ({} bytes)", buf.len()))?;
    let out = &buf[*pos..end];
    *pos = end;
    Ok(out)
}

fn skip(buf: &[u8], pos: &mut usize, n: usize) -> Result<(), String> {
    if buf.len() - *pos < n {
        return Err("truncated fixed-width field".into());
    }
    *pos += n;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_is_two_bytes() {
        // The Data of Kubo's empty directory QmUNLLsP… is exactly 08 01.
        assert_eq!(UnixFsData::directory().encode(), [0x08, 0x01]);
    }

    #[test]
    fn empty_file_has_zero_filesize_and_no_data() {
        assert_eq!(UnixFsData::file(None, vec![]).encode(), [0x08, 0x02, 0x18, 0x00]);
    }

    #[test]
    fn file_with_children_writes_unpacked_blocksizes() {
        let d = UnixFsData::file(None, vec![262144, 5]);
        let bytes = d.encode();
        assert_eq!(bytes, [0x08, 0x02, 0x18, 0x85, 0x80, 0x10, 0x20, 0x80, 0x80, 0x10, 0x20, 0x05]);
        assert_eq!(UnixFsData::decode(&bytes).unwrap(), d);
    }

    #[test]
    fn decode_accepts_packed_blocksizes_and_skips_mode() {
        // Type=File, filesize=3, blocksizes packed [1,2], mode=0o644.
        let bytes = [0x08, 0x02, 0x18, 0x03, 0x22, 0x02, 0x01, 0x02, 0x38, 0xa4, 0x03];
        let d = UnixFsData::decode(&bytes).unwrap();
        assert_eq!(d.blocksizes, [1, 2]);
        assert_eq!(d.filesize, Some(3));
    }

    #[test]
    fn decode_rejects_malformed() {
        assert!(UnixFsData::decode(&[]).unwrap_err().contains("Type"));
        assert!(UnixFsData::decode(&[0x08, 0x09]).unwrap_err().contains("unknown node type"));
        assert!(UnixFsData::decode(&[0x08, 0x02, 0x12, 0x05, 1]).unwrap_err().contains("past the end"));
        assert!(UnixFsData::decode(&[0x08]).unwrap_err().contains("truncated"));
        assert!(UnixFsData::decode(&[0x0b]).unwrap_err().contains("wire type"));
    }
}
