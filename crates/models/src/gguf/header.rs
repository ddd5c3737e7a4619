//! The fixed GGUF header: magic, version and the two counts.

use super::reader::{invalid, Reader};
use crate::error::Result;

/// "GGUF" as the file stores it.
const MAGIC: [u8; 4] = *b"GGUF";

/// The smallest encoding of one metadata entry (empty key, type, one-byte
/// value); used to reject counts the file cannot possibly hold.
pub(crate) const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// The smallest encoding of one tensor info (empty name, no dims, type, offset).
pub(crate) const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;

/// The counts and version read from the start of a GGUF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format version: 2 or 3 (they share the little-endian layout).
    pub version: u32,
    /// How many tensor infos follow the metadata.
    pub tensor_count: u64,
    /// How many metadata key/value pairs follow the header.
    pub metadata_count: u64,
}

impl Header {
    /// Reads and checks the header, leaving `r` at the first metadata entry.
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Header> {
        let magic: [u8; 4] = r.array("magic")?;
        if magic != MAGIC {
            return Err(invalid(0, format!("bad magic {magic:02x?}: expected \"GGUF\" (47 47 55 46)")));
        }
        let at = r.pos();
        let version = r.u32("version")?;
        if version != 2 && version != 3 {
            // A big-endian file reads as a byte-swapped version; say so.
            let hint = if matches!(version.swap_bytes(), 2 | 3) {
                " (this looks like a big-endian GGUF, which is not supported)"
            } else if version == 1 {
                " (version 1 used 32-bit counts; convert the model again with a current llama.cpp)"
            } else {
                ""
            };
            return Err(invalid(at, format!("unsupported GGUF version {version}: only 2 and 3 are read{hint}")));
        }
        let at = r.pos();
        let tensor_count = r.u64("tensor count")?;
        let metadata_count = r.u64("metadata count")?;
        // Each entry takes at least a few bytes, so counts beyond what the
        // rest of the file could hold are rejected before anything is sized
        // by them.
        let needed = tensor_count
            .checked_mul(MIN_TENSOR_INFO_BYTES)
            .and_then(|t| metadata_count.checked_mul(MIN_KV_BYTES).and_then(|m| m.checked_add(t)));
        match needed {
            Some(n) if n <= r.remaining() as u64 => {}
            _ => {
                return Err(invalid(
                    at,
                    format!(
                        "{tensor_count} tensors and {metadata_count} metadata entries cannot fit in the {} bytes left",
                        r.remaining()
                    ),
                ))
            }
        }
        Ok(Header { version, tensor_count, metadata_count })
    }
}
