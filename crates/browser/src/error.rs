//! Errors of the browser crate.

use std::time::Duration;

/// What can go wrong with the bridge and its workers.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The server could not start (port in use, no runtime).
    #[error("browser bridge: {0}")]
    Io(String),
    /// No page joined in time.
    #[error("no browser worker joined within {0:?} (did the browser start? is WebGPU/WebNN enabled?)")]
    NoWorker(Duration),
    /// The page went away (closed, crashed, killed) before answering.
    #[error("browser worker {0} disconnected (the browser closed or crashed)")]
    Disconnected(u32),
    /// The page did not answer in time.
    #[error("browser worker {worker} did not answer within {after:?}")]
    Timeout {
        /// The worker.
        worker: u32,
        /// The limit that passed.
        after: Duration,
    },
    /// The page reported an error.
    #[error("browser worker {worker}: {message}")]
    Page {
        /// The worker.
        worker: u32,
        /// The page's message.
        message: String,
    },
    /// A message broke the protocol.
    #[error("bridge protocol: {0}")]
    Protocol(String),
}

/// `Result` with [`BridgeError`].
pub type Result<T, E = BridgeError> = std::result::Result<T, E>;
