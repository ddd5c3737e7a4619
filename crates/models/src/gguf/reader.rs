//! A bounds-checked little-endian cursor over untrusted GGUF bytes.
//!
//! Every read checks the remaining length first, so a hostile length field
//! becomes an error naming the offset instead of a panic or an allocation.

use crate::error::{Error, Result};
use std::path::PathBuf;

/// Builds the crate error for a malformed GGUF at `offset`; the path is filled
/// in by [`super::GgufFile::open`] when the bytes came from a file.
pub(crate) fn invalid(offset: usize, message: impl Into<String>) -> Error {
    Error::Gguf { path: PathBuf::from("<memory>"), offset: offset as u64, message: message.into() }
}

/// A read position in a byte slice.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// The current offset from the start of the file.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left after the current offset.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// The next `n` bytes; `n` is a u64 because it often comes straight from
    /// the file, and it is compared before any conversion can truncate it.
    pub(crate) fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() as u64 {
            return Err(invalid(
                self.pos,
                format!("truncated: {what} needs {n} bytes but only {} remain", self.remaining()),
            ));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    /// A fixed-size array of the next `N` bytes.
    pub(crate) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64, what)?);
        Ok(out)
    }

    /// One byte.
    pub(crate) fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    /// A little-endian u16.
    pub(crate) fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    /// A little-endian u32.
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// A little-endian u64.
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A GGUF string: a u64 byte length then UTF-8 bytes (no terminator).
    /// The length is checked against the remaining bytes before copying.
    pub(crate) fn string(&mut self, what: &str) -> Result<String> {
        let at = self.pos;
        let len = self.u64(what)?;
        let raw = self.take(len, what)?;
        String::from_utf8(raw.to_vec()).map_err(|e| invalid(at, format!("{what} is not valid UTF-8: {e}")))
    }
}
