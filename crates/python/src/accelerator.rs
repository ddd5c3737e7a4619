//! `NativeAccelerator`: one journal, a CPU worker and browser workers made
//! on demand, each in a pool of its own so `platform` decides where a
//! request runs (a shared pool would route by measured latency instead).

use crate::errors::{Error, Result};
use crate::generate::{self, PromptArg, Request};
use crate::infer;
use crate::model;
use crate::platform::Target;
use crate::speech::{self, AudioArg};
use crate::vision::{self, ImageArg, SharedClassifier};
use ipfs_accelerate_browser::BrowserLaunch;
use ipfs_accelerate_models::llm::text::TextGenerator;
use ipfs_accelerate_models::whisper::Transcriber;
use ipfs_accelerate_pool::config::POOL_BRIDGE_PORT;
use ipfs_accelerate_pool::journal::{self, Journal};
use ipfs_accelerate_pool::{BrowserWorker, LocalWorker, Pool, PoolConfig, Worker};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Browser profile slots and bridge ports used here start this far above
/// the CLI pool's, so a CLI pool and a Python process can run at once.
const SLOT_OFFSET: usize = 16;

/// What an open accelerator holds.
struct State {
    journal: Arc<Journal>,
    data_dir: PathBuf,
    headless: bool,
    enable_ipfs: bool,
    max_connections: usize,
    /// One pool per target, created on first use.
    pools: Vec<(Target, Arc<Pool>)>,
    /// Text generators loaded so far, by the path they were loaded from.
    generators: HashMap<PathBuf, Arc<TextGenerator>>,
    /// Whisper models loaded so far, by the directory they were loaded from.
    transcribers: HashMap<PathBuf, Arc<Transcriber>>,
    /// Image classifiers loaded so far, by the directory they were loaded from.
    classifiers: HashMap<PathBuf, SharedClassifier>,
}

/// The native half of `ipfs_accelerate.Accelerator`.
#[pyclass(module = "ipfs_accelerate._native")]
pub struct NativeAccelerator {
    state: Mutex<Option<State>>,
    journal_path: PathBuf,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl NativeAccelerator {
    /// The pool for `target`, made (not started) on first use.
    fn pool(&self, target: &Target) -> Result<Arc<Pool>> {
        let mut guard = lock(&self.state);
        let state = guard.as_mut().ok_or_else(closed)?;
        if let Some((_, pool)) = state.pools.iter().find(|(t, _)| t == target) {
            return Ok(pool.clone());
        }
        let pid = std::process::id();
        let config = PoolConfig { max_attempts: 1, dispatchers: 2, ..PoolConfig::default() };
        let pool = Arc::new(Pool::with_journal(config, state.journal.clone()));
        let worker: Arc<dyn Worker> = match target {
            Target::Cpu => Arc::new(LocalWorker::cpu(format!("python-{pid}-cpu"))),
            Target::Browser { backend, browser } => {
                let browsers = state.pools.iter().filter(|(t, _)| matches!(t, Target::Browser { .. })).count();
                if browsers >= state.max_connections {
                    return Err(Error::BackendUnavailable(format!(
                        "this accelerator already has {browsers} browser connection(s), its max_connections; \
                         reuse a platform/browser already in use or make it with a larger max_connections"
                    )));
                }
                let slot = SLOT_OFFSET + browsers;
                let launch = BrowserLaunch {
                    browser: browser.clone(),
                    headless: state.headless,
                    data_dir: Some(state.data_dir.clone()),
                    profile_slot: slot,
                    bridge_addr: std::net::SocketAddr::from((
                        [127, 0, 0, 1],
                        POOL_BRIDGE_PORT.saturating_add(slot as u16),
                    )),
                    ..BrowserLaunch::new(*backend)
                };
                let id = format!("python-{pid}-{}-{browsers}", target.platform());
                Arc::new(BrowserWorker::new(id, *backend, launch))
            }
        };
        pool.add_worker(worker);
        state.pools.push((target.clone(), pool.clone()));
        Ok(pool)
    }

    fn enable_ipfs(&self) -> Result<bool> {
        Ok(lock(&self.state).as_ref().ok_or_else(closed)?.enable_ipfs)
    }

    /// The generator loaded from `path`, loaded (GIL released) and kept on
    /// first use.
    fn generator(&self, py: Python<'_>, path: &Path) -> PyResult<Arc<TextGenerator>> {
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if let Some(g) = lock(&self.state).as_ref().ok_or_else(closed)?.generators.get(&key) {
            return Ok(g.clone());
        }
        let loaded = generate::load(py, path)?;
        let mut guard = lock(&self.state);
        let state = guard.as_mut().ok_or_else(closed)?;
        // Another thread may have loaded it meanwhile: keep the first.
        Ok(state.generators.entry(key).or_insert(loaded).clone())
    }

    /// The model directory `name` resolves to (as `embed` resolves it).
    fn model_dir(&self, name: &str) -> Result<PathBuf> {
        let resolved = model::resolve(name, self.enable_ipfs()?)?;
        if !resolved.dir.join("config.json").is_file() {
            return Err(Error::ModelNotFound(format!(
                "{} has no config.json: not a model directory",
                resolved.dir.display()
            )));
        }
        Ok(resolved.dir)
    }

    /// The value `cache` (one of the state's maps) holds for `dir`, loaded
    /// with `load` (GIL released there) and kept on first use.
    fn cached<T: Clone>(
        &self,
        py: Python<'_>,
        dir: &Path,
        cache: fn(&mut State) -> &mut HashMap<PathBuf, T>,
        load: fn(Python<'_>, &Path) -> PyResult<T>,
    ) -> PyResult<T> {
        let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        if let Some(found) = lock(&self.state).as_mut().map(|s| cache(s).get(&key).cloned()).ok_or_else(closed)? {
            return Ok(found);
        }
        let loaded = load(py, dir)?;
        let mut guard = lock(&self.state);
        let state = guard.as_mut().ok_or_else(closed)?;
        // Another thread may have loaded it meanwhile: keep the first.
        Ok(cache(state).entry(key).or_insert(loaded).clone())
    }
}

/// An image argument: `bytes` are the file's content, anything else a path.
fn image_arg(item: &Bound<'_, PyAny>) -> PyResult<ImageArg> {
    if let Ok(bytes) = item.downcast::<PyBytes>() {
        return Ok(ImageArg::Bytes(bytes.as_bytes().to_vec()));
    }
    Ok(ImageArg::Path(item.extract::<PathBuf>()?))
}

fn closed() -> Error {
    Error::Closed("this accelerator is closed: make a new one with ipfs_accelerate.get_accelerator()".into())
}

#[pymethods]
impl NativeAccelerator {
    /// Opens the journal at `db_path` (default: the journal's default path);
    /// starts no worker yet.
    #[new]
    #[pyo3(signature = (db_path=None, max_connections=4, headless=true, enable_ipfs=true))]
    fn new(db_path: Option<PathBuf>, max_connections: usize, headless: bool, enable_ipfs: bool) -> PyResult<Self> {
        let path = match db_path {
            Some(p) => p,
            None => journal::default_path().map_err(|e| Error::InvalidInput(e.to_string()))?,
        };
        let journal =
            Journal::open(&path).map_err(|e| Error::InvalidInput(format!("cannot open the results database: {e}")))?;
        // Browser profiles live beside the journal, like the CLI's data dir.
        let data_dir = path.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        let state = State {
            journal: Arc::new(journal),
            data_dir,
            headless,
            enable_ipfs,
            max_connections,
            pools: Vec::new(),
            generators: HashMap::new(),
            transcribers: HashMap::new(),
            classifiers: HashMap::new(),
        };
        Ok(NativeAccelerator { state: Mutex::new(Some(state)), journal_path: path })
    }

    /// The SQLite journal's path.
    #[getter]
    fn db_path(&self) -> String {
        self.journal_path.display().to_string()
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        lock(&self.state).is_none()
    }

    /// Embeds `texts` with `model` on `platform` ("cpu", "auto", "webgpu",
    /// "webnn") and returns the measured figures (see `infer::to_dict`).
    #[pyo3(signature = (model, texts, platform="cpu", browser=None))]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        model: &str,
        texts: Vec<String>,
        platform: &str,
        browser: Option<&str>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let target = Target::parse(platform, browser)?;
        let enable_ipfs = self.enable_ipfs()?;
        let resolved = model::resolve(model, enable_ipfs)?;
        if !resolved.dir.join("config.json").is_file() {
            return Err(Error::ModelNotFound(format!(
                "{} has no config.json: not a model directory (expected config.json, tokenizer.json, model.safetensors)",
                resolved.dir.display()
            ))
            .into());
        }
        if let Some(reason) = ipfs_accelerate_pool::worker::model_support(&resolved.dir) {
            return Err(Error::UnsupportedModelType(reason).into());
        }
        let pool = self.pool(&target)?;
        let run = infer::embed(py, &pool, &resolved.dir, texts)?;
        let status = pool.status();
        let info = status.iter().find(|s| s.id == run.worker);
        let browser = info.and_then(|s| s.browser.clone());
        infer::to_dict(py, &run, &resolved, browser, "f32")
    }

    /// Generates text with the decoder at `model` (a `.gguf` file or a model
    /// directory, loaded once per accelerator) from `prompt` or, rendered with
    /// the model's chat template, `messages` ((role, content) pairs); calls
    /// `on_text` with each piece of text. Returns the figures of
    /// `generate::to_dict`.
    #[pyo3(signature = (
        model, prompt=None, messages=None, max_tokens=256, temperature=0.8, top_p=0.95, top_k=40,
        repetition_penalty=1.0, seed=None, stop=Vec::new(), on_text=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn generate<'py>(
        &self,
        py: Python<'py>,
        model: &str,
        prompt: Option<String>,
        messages: Option<Vec<(String, String)>>,
        max_tokens: usize,
        temperature: f32,
        top_p: f32,
        top_k: usize,
        repetition_penalty: f32,
        seed: Option<u64>,
        stop: Vec<String>,
        on_text: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let prompt = match (prompt, messages) {
            (Some(text), None) => PromptArg::Text(text),
            (None, Some(messages)) => PromptArg::Chat(messages),
            _ => return Err(Error::InvalidInput("pass either prompt or messages, not both or neither".into()).into()),
        };
        let path = generate::locate(model, self.enable_ipfs()?)?;
        let generator = self.generator(py, &path)?;
        let request = Request { prompt, max_tokens, temperature, top_k, top_p, repetition_penalty, seed, stop };
        let generation = generate::run(py, &generator, request, on_text)?;
        generate::to_dict(py, &generation)
    }

    /// Transcribes speech with the Whisper model at `model` (loaded once per
    /// accelerator, on the CPU). The audio is exactly one of `path` (a file),
    /// `data` (a file's bytes) or `samples` (float32 little-endian bytes of
    /// 16 kHz mono samples). Returns the dict of `speech::to_dict`.
    #[pyo3(signature = (model, path=None, data=None, samples=None, timestamps=false, language=None, translate=false))]
    #[allow(clippy::too_many_arguments)]
    fn transcribe<'py>(
        &self,
        py: Python<'py>,
        model: &str,
        path: Option<PathBuf>,
        data: Option<Bound<'py, PyBytes>>,
        samples: Option<Bound<'py, PyBytes>>,
        timestamps: bool,
        language: Option<String>,
        translate: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let audio =
            AudioArg::from_parts(path, data.map(|b| b.as_bytes().to_vec()), samples.map(|b| b.as_bytes().to_vec()))?;
        let dir = self.model_dir(model)?;
        let transcriber = self.cached(py, &dir, |s| &mut s.transcribers, speech::load)?;
        let backend = transcriber.backend_name();
        let transcript = speech::run(py, transcriber, audio, timestamps, language, translate)?;
        speech::to_dict(py, &transcript, &backend)
    }

    /// Classifies `images` (each `bytes` of an image file, or a path) with
    /// the image classifier at `model` (loaded once per accelerator, on the
    /// CPU): the model's own labels (ViT, EfficientNet-Lite), or `labels`
    /// zero-shot (CLIP, prompts from `template`). Returns, per image, the
    /// `top_k` most probable `{"label", "score"}` dicts.
    #[pyo3(signature = (model, images, labels=None, top_k=5, template=None))]
    fn classify<'py>(
        &self,
        py: Python<'py>,
        model: &str,
        images: Vec<Bound<'py, PyAny>>,
        labels: Option<Vec<String>>,
        top_k: usize,
        template: Option<String>,
    ) -> PyResult<Bound<'py, PyList>> {
        let images = images.iter().map(image_arg).collect::<PyResult<Vec<_>>>()?;
        let dir = self.model_dir(model)?;
        let classifier = self.cached(py, &dir, |s| &mut s.classifiers, vision::load)?;
        let request = vision::Request { images, labels, top_k, template };
        let results = vision::run(py, classifier, request)?;
        vision::to_list(py, &results)
    }

    /// Decodes token ids with the model's tokenizer (special tokens dropped).
    fn decode(&self, model: &str, ids: Vec<Vec<u32>>) -> PyResult<Vec<String>> {
        let resolved = model::resolve(model, self.enable_ipfs()?)?;
        let path = resolved.dir.join("tokenizer.json");
        let tokenizer = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| Error::ModelNotFound(format!("cannot load {}: {e}", path.display())))?;
        ids.iter()
            .map(|seq| {
                tokenizer
                    .decode(seq, true)
                    .map_err(|e| Error::InvalidInput(format!("cannot decode token ids: {e}")).into())
            })
            .collect()
    }

    /// Stops every worker (browsers quit) and closes the journal; later
    /// calls raise AcceleratorClosedError. Closing twice is harmless.
    fn close(&self, py: Python<'_>) {
        let state = lock(&self.state).take();
        // Dropping pools joins their threads and stops browsers: seconds, so
        // without the GIL.
        py.allow_threads(move || drop(state));
    }
}
