//! Workers: anything that can embed texts with a model — the native CPU or
//! WebGPU backend, a browser page, later a remote server.
//!
//! A worker is deliberately small: it embeds, it answers a health check,
//! and it says what it is. Everything about choosing, retrying and
//! measuring lives in the [`crate::pool::Pool`].

use ipfs_accelerate_models::{BackendChoice, Engine, LayerRange, Precision, StageOutput, TextEmbedder};
use ipfs_accelerate_tensor::Tensor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The kinds of worker the pool schedules between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkerKind {
    /// The native CPU backend (`cpu` in config files).
    #[serde(alias = "cpu")]
    NativeCpu,
    /// The native WebGPU backend, wgpu (`webgpu` in config files).
    #[serde(alias = "webgpu")]
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

    /// The kind [`WorkerKind::as_str`] names; `None` for anything else.
    pub fn parse(name: &str) -> Option<WorkerKind> {
        [
            WorkerKind::NativeCpu,
            WorkerKind::NativeWgpu,
            WorkerKind::BrowserWebgpu,
            WorkerKind::BrowserWebnn,
            WorkerKind::Remote,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }

    /// Whether it is a browser page (counted against the warm-browser limits).
    pub fn is_browser(self) -> bool {
        matches!(self, WorkerKind::BrowserWebgpu | WorkerKind::BrowserWebnn)
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

/// What a worker says about itself when it registers: the journal and
/// `pool status` show it, and the latency table is kept per browser.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct WorkerInfo {
    /// The browser (`chromium 148.0…`), for browser workers.
    pub browser: Option<String>,
    /// Features, limits and ops, as JSON (a browser page's capability report).
    pub capabilities: serde_json::Value,
    /// The precision it runs at (`f32`, `f16`).
    pub precision: String,
}

/// A worker the pool can send embedding requests to.
///
/// Only `id`, `kind`, `embed`, `has_loaded` and `health` are required; the
/// rest have defaults that fit a worker which is always ready and never
/// restarts (the native CPU backend).
pub trait Worker: Send + Sync {
    /// A stable id, unique in the pool.
    fn id(&self) -> &str;
    /// What kind of worker it is.
    fn kind(&self) -> WorkerKind;
    /// Browser, capabilities and precision, for the journal and `pool status`.
    fn info(&self) -> WorkerInfo {
        WorkerInfo { precision: "f32".into(), capabilities: serde_json::json!({}), browser: None }
    }
    /// Embeds `texts` with the model in `model_dir` (loading it first if
    /// needed), one vector per text.
    fn embed(&self, model_dir: &Path, texts: &[&str]) -> Result<Vec<Vec<f32>>, WorkerError>;
    /// Runs one pipeline stage of a sharded model: the encoder layers in
    /// `range` on `hidden`, the previous stage's packed activations (`None`
    /// for the first stage). The stage ending at the last layer returns the
    /// embeddings.
    fn embed_stage(
        &self,
        _model_dir: &Path,
        _texts: &[&str],
        _range: LayerRange,
        _hidden: Option<&Tensor>,
    ) -> Result<StageOutput, WorkerError> {
        Err(WorkerError { worker: self.id().to_string(), message: "this worker cannot run pipeline stages".into() })
    }
    /// Whether the model is loaded already (the scheduler prefers such workers).
    fn has_loaded(&self, model_dir: &Path) -> bool;
    /// Why it cannot run this model at all — the capability it lacks (an
    /// architecture it does not implement, an API its browser lacks, a
    /// model outside the list it was given) — or `None` when it can. The
    /// pool sends it no such request, and when no worker can, answers with
    /// every worker's reason.
    fn unsupported(&self, model_dir: &Path) -> Option<String> {
        model_support(model_dir)
    }
    /// The models loaded now, for `pool status` and the journal's placements.
    fn loaded_models(&self) -> Vec<PathBuf> {
        Vec::new()
    }
    /// A cheap liveness check (a browser page answers a ping).
    fn health(&self, timeout: Duration) -> Result<(), WorkerError>;
    /// Whether it knows it is dead (its browser crashed or was killed), as
    /// opposed to slow: the pool then recovers it at the first failed
    /// health check instead of waiting for several.
    fn is_down(&self) -> bool {
        false
    }
    /// Brings the worker back after a failed health check or a run of
    /// failures: reconnect, or restart its browser. `Ok` means it is ready
    /// again; the pool calls it off the request path, and again later when
    /// it fails.
    fn recover(&self) -> Result<(), WorkerError> {
        Ok(())
    }
    /// Whether it holds resources now (a browser is running); a worker that
    /// is not warm starts on its first request.
    fn is_warm(&self) -> bool {
        true
    }
    /// Starts it ahead of the first request (launches its browser).
    fn warm_up(&self) -> Result<(), WorkerError> {
        Ok(())
    }
    /// Releases its resources (closes its browser) when it has had no
    /// request for `idle`; true when it did. It starts again on demand.
    fn close_if_idle(&self, _idle: Duration) -> bool {
        false
    }
}

/// Why no text-embedding worker can run the model in `dir` (its directory
/// or `config.json` is missing, or its architecture is not implemented),
/// or `None` when it looks runnable. Reads only `config.json`.
pub fn model_support(dir: &Path) -> Option<String> {
    // Loading the config detects the architecture; today every one it
    // accepts is a text-embedding encoder.
    ipfs_accelerate_models::ModelConfig::load(dir).err().map(|e| e.to_string())
}

/// A worker running models in this process on an engine it makes per model
/// (the CPU backend, or native WebGPU). With a memory budget it unloads the
/// least recently used models to make room for a new one.
pub struct LocalWorker {
    id: String,
    kind: WorkerKind,
    backend: BackendChoice,
    precision: Precision,
    memory_budget: Option<u64>,
    /// Least recently used first.
    models: Mutex<Vec<LoadedModel>>,
}

struct LoadedModel {
    dir: PathBuf,
    embedder: Arc<TextEmbedder>,
    bytes: u64,
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
        LocalWorker { id: id.into(), kind, backend, precision, memory_budget: None, models: Mutex::default() }
    }

    /// Keeps the weights of loaded models under `bytes` (their
    /// `model.safetensors` sizes), unloading the least recently used first.
    pub fn with_memory_budget(mut self, bytes: u64) -> Self {
        self.memory_budget = Some(bytes);
        self
    }

    fn model(&self, dir: &Path) -> Result<Arc<TextEmbedder>, WorkerError> {
        // Held while loading: two requests for a new model load it once.
        let mut models = self.models.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = models.iter().position(|m| m.dir == dir) {
            let hit = models.remove(i);
            let embedder = hit.embedder.clone();
            models.push(hit);
            return Ok(embedder);
        }
        let bytes = std::fs::metadata(dir.join("model.safetensors")).map(|m| m.len()).unwrap_or(0);
        if let Some(budget) = self.memory_budget {
            if bytes > budget {
                return Err(self.error(format!(
                    "{} needs {} MiB of weights, more than this worker's memory budget of {} MiB",
                    dir.display(),
                    bytes >> 20,
                    budget >> 20
                )));
            }
            // A model still running elsewhere is freed when that run ends.
            while models.iter().map(|m| m.bytes).sum::<u64>() + bytes > budget {
                let evicted = models.remove(0);
                tracing::info!(worker = %self.id, model = %evicted.dir.display(), "unloaded the least recently used model to stay under the memory budget");
            }
        }
        let embedder = TextEmbedder::load_with(dir, self.backend, self.precision).map_err(|e| self.error(e))?;
        let embedder = Arc::new(embedder);
        models.push(LoadedModel { dir: dir.to_path_buf(), embedder: embedder.clone(), bytes });
        Ok(embedder)
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

    fn info(&self) -> WorkerInfo {
        let precision = match self.precision {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        };
        WorkerInfo { browser: None, capabilities: serde_json::json!({}), precision: precision.into() }
    }

    fn embed(&self, model_dir: &Path, texts: &[&str]) -> Result<Vec<Vec<f32>>, WorkerError> {
        let model = self.model(model_dir)?;
        model.embed(texts, texts.len().max(1)).map_err(|e| self.error(e))
    }

    fn embed_stage(
        &self,
        model_dir: &Path,
        texts: &[&str],
        range: LayerRange,
        hidden: Option<&Tensor>,
    ) -> Result<StageOutput, WorkerError> {
        let model = self.model(model_dir)?;
        model.embed_stage(texts, range, hidden).map_err(|e| self.error(e))
    }

    fn has_loaded(&self, model_dir: &Path) -> bool {
        self.models.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|m| m.dir == model_dir)
    }

    fn loaded_models(&self) -> Vec<PathBuf> {
        self.models.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|m| m.dir.clone()).collect()
    }

    fn unsupported(&self, model_dir: &Path) -> Option<String> {
        if self.has_loaded(model_dir) {
            return None;
        }
        model_support(model_dir)
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

    fn embed_stage(
        &self,
        model_dir: &Path,
        texts: &[&str],
        range: LayerRange,
        hidden: Option<&Tensor>,
    ) -> Result<StageOutput, WorkerError> {
        let error = |message: String| WorkerError { worker: self.id.clone(), message };
        if model_dir != self.model_dir {
            return Err(error(format!("serves only {}", self.model_dir.display())));
        }
        self.embedder.embed_stage(texts, range, hidden).map_err(|e| error(e.to_string()))
    }

    fn has_loaded(&self, model_dir: &Path) -> bool {
        model_dir == self.model_dir
    }

    fn unsupported(&self, model_dir: &Path) -> Option<String> {
        (model_dir != self.model_dir).then(|| format!("it serves only {}", self.model_dir.display()))
    }

    fn loaded_models(&self) -> Vec<PathBuf> {
        vec![self.model_dir.clone()]
    }

    fn health(&self, _timeout: Duration) -> Result<(), WorkerError> {
        Ok(())
    }
}
