//! Waiting for work done on other threads without holding the GIL, while
//! still answering Ctrl-C.

use pyo3::prelude::*;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How often a wait wakes to let Python handle signals.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// Why a wait ended without a value.
pub enum WaitError {
    /// A Python exception (KeyboardInterrupt from Ctrl-C).
    Python(PyErr),
    /// `timeout` passed first.
    TimedOut,
    /// The thread doing the work went away without answering.
    Lost,
}

/// Runs `work` on a thread of its own and waits for its value with the GIL
/// released, checking for signals every 100 ms: Ctrl-C raises
/// KeyboardInterrupt at once (the work finishes in the background and its
/// answer is dropped).
pub fn run_interruptible<T: Send + 'static>(
    py: Python<'_>,
    timeout: Option<Duration>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, WaitError> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("ipfs-accelerate-call".into())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|_| WaitError::Lost)?;
    // A Receiver is not Sync; the mutex makes a reference to it sendable
    // into `allow_threads` (only this thread ever locks it).
    let rx = std::sync::Mutex::new(rx);
    let started = Instant::now();
    loop {
        let step = match timeout {
            Some(limit) => match limit.checked_sub(started.elapsed()) {
                Some(left) => left.min(SIGNAL_POLL),
                None => return Err(WaitError::TimedOut),
            },
            None => SIGNAL_POLL,
        };
        match py.allow_threads(|| rx.lock().unwrap_or_else(|p| p.into_inner()).recv_timeout(step)) {
            Ok(value) => return Ok(value),
            Err(mpsc::RecvTimeoutError::Timeout) => py.check_signals().map_err(WaitError::Python)?,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(WaitError::Lost),
        }
    }
}
