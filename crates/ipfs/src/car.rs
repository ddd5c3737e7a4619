//! CAR v1 archives: a dag-cbor header `{roots, version: 1}` followed by
//! sections of `varint(len) ‖ CID ‖ block bytes`
//! (<https://ipld.io/specs/transport/car/carv1/>).
//!
//! The reader treats its input as hostile: every block's hash is checked,
//! every length is capped before anything is allocated, and truncation,
//! lying lengths, oversized varints and wrong versions are errors that give
//! the byte offset, never panics.

use crate::block::{verify, DAG_PB};
use crate::dagpb;
use crate::error::{Error, Result};
use crate::exporter::{get_verified, BlockSource};
use crate::importer::BlockSink;
use crate::varint::{self, VarintError};
use cid::Cid;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::{BufReader, ErrorKind, Read, Write};

/// Largest header accepted (about 27,000 roots).
pub const MAX_HEADER_SIZE: u64 = 1024 * 1024;
/// Largest block accepted. Kubo neither creates nor transfers blocks above
/// 2 MiB (the bitswap limit), so a larger section is refused.
pub const MAX_BLOCK_SIZE: u64 = 2 * 1024 * 1024;
/// Largest section: a block plus room for its CID.
pub const MAX_SECTION_SIZE: u64 = MAX_BLOCK_SIZE + 256;

/// The header as written; field order matters: dag-cbor sorts map keys by
/// length first, so `roots` precedes `version`.
#[derive(Serialize)]
struct HeaderOut<'a> {
    roots: &'a [Cid],
    version: u64,
}

#[derive(Deserialize)]
struct HeaderIn {
    version: u64,
    #[serde(default)]
    roots: Option<Vec<Cid>>,
}

/// Writes a CAR v1 stream.
pub struct CarWriter<W: Write> {
    out: W,
}

impl<W: Write> CarWriter<W> {
    /// Writes the header naming `roots`.
    pub fn new(mut out: W, roots: &[Cid]) -> Result<Self> {
        let header = serde_ipld_dagcbor::to_vec(&HeaderOut { roots, version: 1 })
            .map_err(|e| Error::InvalidOption(format!("cannot encode CAR header: {e}")))?;
        let mut prefix = Vec::with_capacity(10);
        varint::encode(header.len() as u64, &mut prefix);
        write_all(&mut out, &prefix)?;
        write_all(&mut out, &header)?;
        Ok(CarWriter { out })
    }

    /// Appends one block section.
    pub fn write_block(&mut self, cid: &Cid, data: &[u8]) -> Result<()> {
        let cid_bytes = cid.to_bytes();
        let mut prefix = Vec::with_capacity(10);
        varint::encode((cid_bytes.len() + data.len()) as u64, &mut prefix);
        write_all(&mut self.out, &prefix)?;
        write_all(&mut self.out, &cid_bytes)?;
        write_all(&mut self.out, data)
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(mut self) -> Result<W> {
        self.out.flush().map_err(|source| Error::Stream { context: "writing a CAR", source })?;
        Ok(self.out)
    }
}

fn write_all(out: &mut dyn Write, bytes: &[u8]) -> Result<()> {
    out.write_all(bytes).map_err(|source| Error::Stream { context: "writing a CAR", source })
}

impl<W: Write> BlockSink for CarWriter<W> {
    fn put_block(&mut self, cid: &Cid, data: &[u8]) -> Result<()> {
        self.write_block(cid, data)
    }
}

/// Reads a CAR v1 stream, verifying each block.
pub struct CarReader<R: Read> {
    input: BufReader<R>,
    roots: Vec<Cid>,
    offset: u64,
}

impl<R: Read> CarReader<R> {
    /// Reads and checks the header.
    pub fn new(input: R) -> Result<Self> {
        let mut reader = CarReader { input: BufReader::new(input), roots: Vec::new(), offset: 0 };
        let len = match reader.read_varint()? {
            Some(len) => len,
            None => return Err(reader.invalid("empty input: no CAR header")),
        };
        if len == 0 || len > MAX_HEADER_SIZE {
            return Err(reader.invalid(format!("header length {len} is outside 1..={MAX_HEADER_SIZE}")));
        }
        let bytes = reader.read_exact_capped(len, "header")?;
        let header: HeaderIn = serde_ipld_dagcbor::from_slice(&bytes)
            .map_err(|e| reader.invalid(format!("header is not a dag-cbor {{version, roots}} map: {e}")))?;
        match header.version {
            1 => {}
            2 => return Err(reader.invalid("this is a CAR v2 file; only CAR v1 is supported")),
            v => return Err(reader.invalid(format!("unsupported CAR version {v} (expected 1)"))),
        }
        reader.roots = header.roots.ok_or_else(|| reader.invalid("header has no `roots`"))?;
        Ok(reader)
    }

    /// The roots named in the header.
    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    /// The next verified block, or `None` at a clean end of input.
    pub fn next_block(&mut self) -> Result<Option<(Cid, Vec<u8>)>> {
        let start = self.offset;
        let Some(len) = self.read_varint()? else { return Ok(None) };
        if len == 0 || len > MAX_SECTION_SIZE {
            return Err(Error::InvalidCar {
                offset: start,
                reason: format!("section length {len} is outside 1..={MAX_SECTION_SIZE}"),
            });
        }
        let section = self.read_exact_capped(len, "block section")?;
        let mut cursor = &section[..];
        let cid = Cid::read_bytes(&mut cursor)
            .map_err(|e| Error::InvalidCar { offset: start, reason: format!("bad CID in section: {e}") })?;
        let data = cursor.to_vec();
        verify(&cid, &data)?;
        Ok(Some((cid, data)))
    }

    fn invalid(&self, reason: impl Into<String>) -> Error {
        Error::InvalidCar { offset: self.offset, reason: reason.into() }
    }

    /// Reads a varint; `None` only when the input ends before its first byte.
    fn read_varint(&mut self) -> Result<Option<u64>> {
        let mut buf = Vec::with_capacity(10);
        loop {
            let mut byte = [0u8; 1];
            match self.input.read(&mut byte) {
                Ok(0) if buf.is_empty() => return Ok(None),
                Ok(0) => return Err(self.invalid("input ends inside a length varint (truncated)")),
                Ok(_) => {
                    self.offset += 1;
                    buf.push(byte[0]);
                    if byte[0] & 0x80 == 0 || buf.len() == 10 {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => return Err(Error::Stream { context: "reading a CAR", source }),
            }
        }
        match varint::decode(&buf) {
            Ok((v, _)) => Ok(Some(v)),
            Err(VarintError::Truncated | VarintError::Overflow) => {
                Err(self.invalid("length varint is longer than 64 bits"))
            }
            Err(VarintError::NotMinimal) => Err(self.invalid("length varint is not minimally encoded")),
        }
    }

    /// Reads exactly `len` bytes (already capped by the caller); memory grows
    /// with the bytes actually received, not with what the length claims.
    fn read_exact_capped(&mut self, len: u64, what: &str) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(len.min(64 * 1024) as usize);
        let got = (&mut self.input)
            .take(len)
            .read_to_end(&mut out)
            .map_err(|source| Error::Stream { context: "reading a CAR", source })?;
        self.offset += got as u64;
        if (got as u64) < len {
            return Err(self.invalid(format!("{what} says {len} bytes but the input ends after {got} (truncated)")));
        }
        Ok(out)
    }
}

impl<R: Read> Iterator for CarReader<R> {
    type Item = Result<(Cid, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_block().transpose()
    }
}

/// Writes the DAG under `root` as a CAR (root first, depth-first, each block
/// once), reading and verifying every block from `source`.
pub fn export_car<W: Write>(source: &dyn BlockSource, root: &Cid, out: W) -> Result<W> {
    let mut car = CarWriter::new(out, std::slice::from_ref(root))?;
    let mut seen = HashSet::new();
    let mut stack = vec![*root];
    while let Some(cid) = stack.pop() {
        if !seen.insert(cid) {
            continue;
        }
        let data = get_verified(source, &cid)?;
        if cid.codec() == DAG_PB {
            let node = dagpb::decode(&cid, &data)?;
            // Reverse so the first link is written first.
            stack.extend(node.links.iter().rev().map(|l| l.cid));
        }
        car.write_block(&cid, &data)?;
    }
    car.finish()
}

/// Reads a whole CAR into `sink`, returning its roots. Each block is
/// verified before it reaches the sink; an error stops the import (blocks
/// already stored stay unpinned, so garbage collection can remove them).
pub fn import_car<R: Read>(input: R, sink: &mut dyn BlockSink) -> Result<Vec<Cid>> {
    let mut reader = CarReader::new(input)?;
    while let Some((cid, data)) = reader.next_block()? {
        sink.put_block(&cid, &data)?;
    }
    Ok(reader.roots)
}
