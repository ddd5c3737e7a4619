//! Workers: anything that can embed texts with a model — the native CPU or
//! WebGPU backend, a browser page, later a remote server.
//!
//! A worker is deliberately small: it embeds, it answers a health check,
//! and it says what it is. Everything about choosing, retrying and
//! measuring lives in the [`crate::pool::Pool`].

use ipfs_accelerate_models::{BackendChoice, Engine, Precision, TextEmbedder};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The kinds of worker the pool schedules between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkerKind {
    /// The native CPU backend.
    NativeCpu,
    /// The native WebGPU backend (wgpu).
    NativeWgpu,
    /// WebGPU in a browser page.
    BrowserWebgpu,
    /// WebNN in a browser page.
    BrowserWebnn,
    /// Another server (the serving issue adds its client).
    Remote,
}

impl WorkerKind {
    /// The name shown in `pool status`, the journal and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerKind::NativeCpu => "native-cpu",
            WorkerKind::NativeWgpu => "native-wgpu",
            WorkerKind::BrowserWebgpu => "browser-webgpu",
            WorkerKind::BrowserWebnn => "browser-webnn",
            WorkerKind::Remote => "remote",
        }
    }
}

/// Why a worker could not answer. Every such error makes the pool try
/// another worker (and counts against this one's circuit breaker).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("worker {worker}: {message}")]
pub struct WorkerError {
    /// The worker's id.
    pub worker: String,
    /// What went wrong.
    pub message: String,
}

/// A worker the pool can send embedding requests to.
pub trait Worker: Send + Sync {
    /// A stable id, unique in the pool.
    fn id(&self) -> &str;
    /// What kind of worker it is.
    fn kind(&self) -> WorkerKind;
    /// Embeds `texts` with the model in `model_dir` (loading it first if
    /// needed), one vector per text.
    fn embed(&self, model_dir: &Path, texts: &[&str]) -> Result<Vec<Vec<f32>>, WorkerError>;
    /// Whether the model is loaded already (the scheduler prefers such workers).
    fn has_loaded(&self, model_dir: &Path) -> bool;
    /// Whether it can run this model at all (a browser worker serves the one
    /// model it was given).
    fn can_serve(&self, _model_dir: &Path) -> bool {
        true
    }
    /// A cheap liveness check.
    fn health(&self, timeout: Duration) -> Result<(), WorkerError>;
}

/// A worker running models in this process on an engine it makes per model
/// (the CPU backend, or native WebGPU).
pub struct LocalWorker {
    id: String,
    kind: WorkerKind,
    backend: BackendChoice,
    precision: Precision,
    models: Mutex<HashMap<PathBuf, Arc<TextEmbedder>>>,
}

impl LocalWorker {
    /// A CPU worker.
    pub fn cpu(id: impl Into<String>) -> Self {
        Self::new(id, WorkerKind::NativeCpu, BackendChoice::Cpu, Precision::F32)
    }

    /// A native WebGPU worker (the adapter `IPFS_ACCELERATE_ADAPTER` selects).
    pub fn wgpu(id: impl Into<String>, precision: Precision) -> Self {
        Self::new(id, WorkerKind::NativeWgpu, BackendChoice::WebGpu, precision)
    }

    fn new(id: impl Into<String>, kind: WorkerKind, backend: BackendChoice, precision: Precision) -> Self {
        LocalWorker { id: id.into(), kind, backend, precision, models: Mutex::default() }
    }

    fn model(&self, dir: &Path) -> Result<Arc<TextEmbedder>, WorkerError> {
        let mut models = self.models.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = models.get(dir) {
            return Ok(m.clone());
        }
        let model = TextEmbedder::load_with(dir, self.backend, self.precision).map_err(|e| self.error(e))?;
        let model = Arc::new(model);
        models.insert(dir.to_path_buf(), model.clone());
        Ok(model)
    }

    fn error(&self, e: impl std::fmt::Display) -> WorkerError {
        WorkerError { worker: self.id.clone(), message: e.to_string() }
    }
}

impl Worker for LocalWorker {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> WorkerKind {
        self.kind
    }

    fn embed(&self, model_dir: &Path, texts: &[&str]) -> Result<Vec<Vec<f32>>, WorkerError> {
        let model = self.model(model_dir)?;
        model.embed(texts, texts.len().max(1)).map_err(|e| self.error(e))
    }

    fn has_loaded(&self, model_dir: &Path) -> bool {
        self.models.lock().unwrap_or_else(|p| p.into_inner()).contains_key(model_dir)
    }

    fn health(&self, _timeout: Duration) -> Result<(), WorkerError> {
        Ok(())
    }
}

/// A worker whose engine was made elsewhere (a browser page's
/// `BrowserEngine`), serving the one model it was given.
pub struct EngineWorker {
    id: String,
    kind: WorkerKind,
    model_dir: PathBuf,
    embedder: TextEmbedder,
}

impl EngineWorker {
    /// Loads `model_dir` onto `engine`.
    pub fn new(id: impl Into<String>, kind: WorkerKind, model_dir: &Path, engine: Engine) -> Result<Self, WorkerError> {
        let id = id.into();
        let embedder = TextEmbedder::load_on(model_dir, engine, None)
            .map_err(|e| WorkerError { worker: id.clone(), message: e.to_string() })?;
        Ok(EngineWorker { id, kind, model_dir: model_dir.to_path_buf(), embedder })
    }
}

impl Worker for EngineWorker {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> WorkerKind {
        self.kind
    }

    fn embed(&self, model_dir: &Path, texts: &[&str]) -> Result<Vec<Vec<f32>>, WorkerError> {
        if model_dir != self.model_dir {
            return Err(WorkerError {
                worker: self.id.clone(),
                message: format!("serves only {}", self.model_dir.display()),
            });
        }
        self.embedder
            .embed(texts, texts.len().max(1))
            .map_err(|e| WorkerError { worker: self.id.clone(), message: e.to_string() })
    }

    fn has_loaded(&self, model_dir: &Path) -> bool {
        model_dir == self.model_dir
    }

    fn can_serve(&self, model_dir: &Path) -> bool {
        model_dir == self.model_dir
    }

    fn health(&self, _timeout: Duration) -> Result<(), WorkerError> {
        Ok(())
    }
}
