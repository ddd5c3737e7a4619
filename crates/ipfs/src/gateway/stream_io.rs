//! Bridges between the crate's blocking `Read`/`Write` CAR code and async
//! HTTP bodies, so the one verified CAR reader and writer serve both sides
//! of the gateway without buffering a whole DAG in memory.

use bytes::Bytes;
use std::io::{self, Read, Write};
use tokio::sync::mpsc;

/// Bytes (or a failure) travelling between a blocking thread and async code.
pub(crate) type Chunk = io::Result<Bytes>;

/// How many bytes a writer collects before handing a chunk to the body;
/// large enough to keep per-chunk overhead small, small enough to start
/// streaming at once.
const CHUNK: usize = 64 * 1024;

/// A `Write` on a blocking thread that feeds an async response body.
pub(crate) struct ChannelWriter {
    tx: mpsc::Sender<Chunk>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    /// A writer sending to `tx`.
    pub(crate) fn new(tx: mpsc::Sender<Chunk>) -> Self {
        ChannelWriter { tx, buf: Vec::with_capacity(CHUNK) }
    }

    /// Sends what is buffered; fails once the body's reader has gone (the
    /// client hung up), which stops the export instead of reading on.
    fn send_buffered(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send_buffered()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffered()
    }
}

/// A `Read` on a blocking thread fed by async code receiving a body.
pub(crate) struct ChannelReader {
    rx: mpsc::Receiver<Chunk>,
    current: Bytes,
}

impl ChannelReader {
    /// A reader receiving from `rx`; the end of the channel is end of input.
    pub(crate) fn new(rx: mpsc::Receiver<Chunk>) -> Self {
        ChannelReader { rx, current: Bytes::new() }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
