//! One embedding call through a pool: batches, timing, memory, and the
//! measured figures handed to the Python layer.

use crate::errors::Error;
use crate::memory;
use crate::model::ResolvedModel;
use crate::wait::{run_interruptible, WaitError};
use ipfs_accelerate_pool::queue::Priority;
use ipfs_accelerate_pool::{Pool, PoolError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Texts per pool request; signals are checked at least between batches.
pub const BATCH: usize = 32;

/// What a finished call measured.
pub struct Measured {
    /// One vector per text.
    pub embeddings: Vec<Vec<f32>>,
    /// The worker that answered the last batch.
    pub worker: String,
    /// Its kind ("native-cpu", "browser-webgpu", …).
    pub worker_kind: String,
    /// Time on the workers, summed over batches.
    pub worker_time: Duration,
    /// Wall time of the whole call (queueing, tokenization, inference).
    pub wall: Duration,
    /// This process's resident memory before and after, and its peak.
    pub rss_before: Option<u64>,
    /// See `rss_before`.
    pub rss_after: Option<u64>,
    /// Peak resident memory of this process so far (VmHWM).
    pub peak_rss: Option<u64>,
}

/// Embeds `texts` with the model in `dir` on `pool`, batch by batch, with
/// the GIL released and Ctrl-C honoured between (and during) batches.
pub fn embed(py: Python<'_>, pool: &Arc<Pool>, dir: &Path, texts: Vec<String>) -> PyResult<Measured> {
    if texts.is_empty() {
        return Err(Error::InvalidInput("no inputs: pass at least one text".into()).into());
    }
    let before = memory::rss();
    let started = Instant::now();
    let mut embeddings = Vec::with_capacity(texts.len());
    let (mut worker, mut worker_kind, mut worker_time) = (String::new(), String::new(), Duration::ZERO);
    for batch in texts.chunks(BATCH) {
        let ticket = pool.submit(dir, batch.to_vec(), Priority::Normal).map_err(pool_error)?;
        let answer = match run_interruptible(py, None, move || ticket.wait()) {
            Ok(answer) => answer.map_err(pool_error)?,
            Err(WaitError::Python(e)) => return Err(e),
            Err(WaitError::TimedOut | WaitError::Lost) => {
                return Err(Error::Inference("the pool stopped before answering".into()).into())
            }
        };
        // A batch often answers within one signal poll of the wait, so
        // Ctrl-C is also checked here, between batches.
        py.check_signals()?;
        worker = answer.worker;
        worker_kind = answer.kind.as_str().to_string();
        worker_time += answer.latency;
        embeddings.extend(answer.embeddings);
    }
    let wall = started.elapsed();
    let after = memory::rss();
    Ok(Measured {
        embeddings,
        worker,
        worker_kind,
        worker_time,
        wall,
        rss_before: before.map(|m| m.0),
        rss_after: after.map(|m| m.0),
        peak_rss: after.map(|m| m.1),
    })
}

/// A pool error as the package's exception.
pub fn pool_error(e: PoolError) -> Error {
    match e {
        PoolError::NoWorker { .. } => Error::BackendUnavailable(e.to_string()),
        PoolError::BadRequest(_) => Error::InvalidInput(e.to_string()),
        _ => Error::Inference(e.to_string()),
    }
}

/// The figures as a dict for the Python layer (which shapes the public
/// result): `data` holds the embeddings as little-endian float32 bytes.
pub fn to_dict<'py>(
    py: Python<'py>,
    run: &Measured,
    model: &ResolvedModel,
    browser: Option<String>,
    precision: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let dim = run.embeddings.first().map_or(0, Vec::len);
    if run.embeddings.iter().any(|e| e.len() != dim) {
        return Err(Error::Inference("the worker answered vectors of different lengths".into()).into());
    }
    let mut data = Vec::with_capacity(run.embeddings.len() * dim * 4);
    for value in run.embeddings.iter().flatten() {
        data.extend_from_slice(&value.to_le_bytes());
    }
    let d = PyDict::new(py);
    d.set_item("data", PyBytes::new(py, &data))?;
    d.set_item("n", run.embeddings.len())?;
    d.set_item("dim", dim)?;
    d.set_item("worker", &run.worker)?;
    d.set_item("worker_kind", &run.worker_kind)?;
    d.set_item("browser", browser)?;
    d.set_item("precision", precision)?;
    d.set_item("worker_time_s", run.worker_time.as_secs_f64())?;
    d.set_item("wall_s", run.wall.as_secs_f64())?;
    d.set_item("rss_before", run.rss_before)?;
    d.set_item("rss_after", run.rss_after)?;
    d.set_item("peak_rss", run.peak_rss)?;
    d.set_item("model_dir", model.dir.display().to_string())?;
    d.set_item("cid", model.cid.clone())?;
    d.set_item("ipfs_cache_hit", model.cache_hit)?;
    Ok(d)
}
