//! Fixed-size chunking of a byte stream, with one chunk of look-ahead.

use crate::error::{Error, Result};
use std::io::{ErrorKind, Read};

/// Splits a reader into chunks of exactly `size` bytes (the last may be
/// shorter; an empty stream yields no chunks), like boxo's size splitter.
///
/// It keeps the next chunk buffered so [`Chunker::done`] can answer "is
/// there more data?" — the balanced layout asks that before each leaf.
pub struct Chunker<R> {
    reader: R,
    size: usize,
    next: Option<Vec<u8>>,
    eof: bool,
}

impl<R: Read> Chunker<R> {
    /// Wraps `reader`; `size` must be non-zero.
    pub fn new(reader: R, size: usize) -> Self {
        assert!(size > 0, "chunk size must be non-zero");
        Chunker { reader, size, next: None, eof: false }
    }

    fn fill(&mut self) -> Result<()> {
        if self.next.is_some() || self.eof {
            return Ok(());
        }
        let mut buf = vec![0u8; self.size];
        let mut filled = 0;
        // A reader may return short reads; keep reading until the chunk is
        // full or the stream ends, so chunk boundaries never depend on how
        // the source happens to deliver bytes.
        while filled < self.size {
            match self.reader.read(&mut buf[filled..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Stream { context: "reading the file to import", source: e }),
            }
        }
        if filled > 0 {
            buf.truncate(filled);
            self.next = Some(buf);
        }
        Ok(())
    }

    /// True when no data is left.
    pub fn done(&mut self) -> Result<bool> {
        self.fill()?;
        Ok(self.next.is_none())
    }

    /// The next chunk, or `None` at the end.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        self.fill()?;
        Ok(self.next.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most 3 bytes per call.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(3).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn chunks(data: &[u8], size: usize) -> Vec<Vec<u8>> {
        let mut c = Chunker::new(Trickle(data), size);
        let mut out = vec![];
        while let Some(chunk) = c.next_chunk().unwrap() {
            out.push(chunk);
        }
        out
    }

    #[test]
    fn short_reads_do_not_change_boundaries() {
        let data: Vec<u8> = (0..25).collect();
        let got = chunks(&data, 10);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (0..10).collect::<Vec<u8>>());
        assert_eq!(got[2], (20..25).collect::<Vec<u8>>());
    }

    #[test]
    fn exact_multiple_has_no_empty_tail_and_empty_has_none() {
        assert_eq!(chunks(&[1; 20], 10).len(), 2);
        assert!(chunks(&[], 10).is_empty());
        let mut c = Chunker::new(&[][..], 4);
        assert!(c.done().unwrap());
    }
}
