//! `NativeBridge`: one browser page over the bridge, used directly (no
//! pool): its capability report and inference requests with a timeout.

use crate::errors::{Error, Result};
use crate::model;
use crate::platform::browser_spec;
use crate::wait::{run_interruptible, WaitError};
use ipfs_accelerate_browser::{BrowserBackend, BrowserLaunch};
use ipfs_accelerate_pool::{BrowserWorker, Worker};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The native half of `ipfs_accelerate.BrowserBridge`.
#[pyclass(module = "ipfs_accelerate._native")]
pub struct NativeBridge {
    worker: Mutex<Option<Arc<BrowserWorker>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl NativeBridge {
    fn worker(&self) -> Result<Arc<BrowserWorker>> {
        lock(&self.worker).clone().ok_or_else(|| {
            Error::Closed("this browser bridge was stopped: make a new one with create_browser_bridge()".into())
        })
    }
}

/// Waits for `work` (a browser call) with signals checked, or `timeout`.
fn wait<T: Send + 'static>(
    py: Python<'_>,
    timeout: Option<Duration>,
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> PyResult<T> {
    match run_interruptible(py, timeout, work) {
        Ok(value) => Ok(value),
        Err(WaitError::Python(e)) => Err(e),
        Err(WaitError::TimedOut) => Err(Error::Inference(format!(
            "{what} took longer than the timeout of {:.1} s",
            timeout.unwrap_or_default().as_secs_f64()
        ))
        .into()),
        Err(WaitError::Lost) => {
            Err(Error::Inference(format!("{what}: the browser call ended without an answer")).into())
        }
    }
}

#[pymethods]
impl NativeBridge {
    /// Launches `browser_name` on a fresh profile with a WebGPU worker page
    /// and waits until the page has joined (and reported its capabilities).
    #[new]
    #[pyo3(signature = (browser_name="chrome", headless=true))]
    fn new(py: Python<'_>, browser_name: &str, headless: bool) -> PyResult<Self> {
        let browser = browser_spec(Some(browser_name))?;
        let launch = BrowserLaunch {
            browser,
            headless,
            data_dir: None,
            // Any free port: bridges made from Python never fight over one.
            bridge_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            ..BrowserLaunch::new(BrowserBackend::WebGpu)
        };
        let worker = Arc::new(BrowserWorker::new(
            format!("python-{}-bridge", std::process::id()),
            BrowserBackend::WebGpu,
            launch,
        ));
        let starting = worker.clone();
        wait(py, None, "starting the browser", move || starting.warm_up())?
            .map_err(|e| Error::BackendUnavailable(e.message))?;
        Ok(NativeBridge { worker: Mutex::new(Some(worker)) })
    }

    /// The page's capability report as JSON text, and the browser's name.
    fn capabilities(&self) -> PyResult<(String, Option<String>)> {
        let info = self.worker()?.info();
        Ok((info.capabilities.to_string(), info.browser))
    }

    /// Embeds `texts` with `model` on the page; returns the raw figures
    /// (`data` as little-endian float32 bytes, `n`, `dim`, `wall_s`).
    #[pyo3(signature = (model, texts, timeout=None))]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        model: &str,
        texts: Vec<String>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let timeout = match timeout {
            Some(t) if !(t.is_finite() && t > 0.0) => {
                return Err(Error::InvalidInput(format!("timeout must be a positive number of seconds, not {t}")).into())
            }
            t => t.map(Duration::from_secs_f64),
        };
        if texts.is_empty() {
            return Err(Error::InvalidInput("no inputs: pass at least one text".into()).into());
        }
        let resolved = model::resolve(model, true)?;
        let worker = self.worker()?;
        let dir = resolved.dir.clone();
        let started = Instant::now();
        let vectors = wait(py, timeout, "the browser inference", move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            worker.embed(&dir, &refs)
        })?
        .map_err(|e| Error::Inference(e.message))?;
        let wall = started.elapsed();
        let dim = vectors.first().map_or(0, Vec::len);
        let data: Vec<u8> = vectors.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
        let d = PyDict::new(py);
        d.set_item("data", PyBytes::new(py, &data))?;
        d.set_item("n", vectors.len())?;
        d.set_item("dim", dim)?;
        d.set_item("wall_s", wall.as_secs_f64())?;
        d.set_item("model_dir", resolved.dir.display().to_string())?;
        d.set_item("cid", resolved.cid)?;
        d.set_item("ipfs_cache_hit", resolved.cache_hit)?;
        Ok(d)
    }

    /// Stops the browser; later calls raise. Stopping twice is harmless.
    fn stop(&self, py: Python<'_>) {
        let worker = lock(&self.worker).take();
        py.allow_threads(move || drop(worker));
    }
}
