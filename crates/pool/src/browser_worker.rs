//! A browser as a pool worker: one headless browser page that runs several
//! models, started on demand, restarted by [`Worker::recover`] after a crash,
//! and closed when idle.
//!
//! The worker moves between four states. *Cold*: no browser (never started,
//! or closed when idle); the next request launches one. *Up*: a page is
//! connected. *Down*: the page went away (crash, kill, closed socket) or a
//! launch failed; requests fail at once until `recover` runs, so a dead
//! browser costs the pool one fast error per request, never a hang, and two
//! threads never race to relaunch it. *Recovering*: `recover` is replacing
//! the browser; requests fail at once meanwhile.
//!
//! Launching, recovering and closing hold one lifecycle lock, so there is
//! never more than one browser per worker. Requests take that lock only to
//! start a cold browser; on any other path they read the state and go.

use crate::worker::{Worker, WorkerError, WorkerInfo, WorkerKind};
use ipfs_accelerate_browser::{BrowserBackend, BrowserEngine, BrowserLaunch};
use ipfs_accelerate_models::{Engine, LayerRange, StageOutput, TextEmbedder};
use ipfs_accelerate_tensor::Tensor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What `recover` embeds with each reloaded model, so the page has the
/// model's weights and graph before `recover` reports it ready.
const WARM_TEXT: &str = "warm-up";

/// A pool worker running models in a browser page over the bridge (see the
/// module documentation for its states).
pub struct BrowserWorker {
    id: String,
    kind: WorkerKind,
    launch: BrowserLaunch,
    /// When set, the only model directories this worker serves.
    only: Option<Vec<PathBuf>>,
    state: Mutex<State>,
    /// Held by launch, recover and close, so one browser runs at a time.
    lifecycle: Mutex<()>,
    /// Requests running now (an idle close waits for zero).
    in_flight: AtomicUsize,
    /// When the last request started or ended.
    last_used: Mutex<Instant>,
    restarts: AtomicU64,
    /// What the last browser reported, so `info` answers while cold.
    last_info: Mutex<Option<WorkerInfo>>,
    /// The long-lived thread that launches this worker's browsers.
    launcher: Mutex<Option<mpsc::Sender<LaunchJob>>>,
}

/// Where the worker stands (see the module documentation).
enum State {
    Cold,
    Up(Arc<Session>),
    Recovering,
    Down {
        /// Why, for the errors requests get meanwhile.
        why: String,
        /// The dead browser, stopped by `recover` (not on a request thread,
        /// where stopping could take seconds).
        old: Option<Arc<Session>>,
        /// The models to reload on recovery.
        models: Vec<PathBuf>,
    },
}

/// One running browser and the models loaded on its page.
struct Session {
    engine: Arc<BrowserEngine>,
    /// Loaded models by directory; the lock is held while a model loads, so
    /// two requests for a new model load it once.
    models: Mutex<Vec<(PathBuf, Arc<TextEmbedder>)>>,
}

/// A launch request for the launcher thread, with where to send the engine.
type LaunchJob = (BrowserLaunch, mpsc::Sender<Result<BrowserEngine, String>>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Session {
    fn alive(&self) -> bool {
        self.engine.is_alive()
    }

    fn dirs(&self) -> Vec<PathBuf> {
        lock(&self.models).iter().map(|(d, _)| d.clone()).collect()
    }

    fn has(&self, dir: &Path) -> bool {
        lock(&self.models).iter().any(|(d, _)| d == dir)
    }

    /// The model in `dir`, loaded onto this page under its own model
    /// number (so its graphs never collide with another model's).
    fn model(&self, dir: &Path) -> Result<Arc<TextEmbedder>, String> {
        let mut models = lock(&self.models);
        if let Some((_, m)) = models.iter().find(|(d, _)| d == dir) {
            return Ok(m.clone());
        }
        let runner = self.engine.model_runner();
        let embedder =
            TextEmbedder::load_on(dir, Engine::External(Box::new(runner)), None).map_err(|e| e.to_string())?;
        let embedder = Arc::new(embedder);
        models.push((dir.to_path_buf(), embedder.clone()));
        Ok(embedder)
    }

    /// Stops the browser now (requests still running on it fail at once);
    /// the engine itself goes when its last user lets go.
    fn shutdown(&self) {
        if let Some(process) = self.engine.process() {
            if let Err(e) = process.stop() {
                tracing::warn!("{e}");
            }
        }
    }

    fn info(&self) -> WorkerInfo {
        let caps = self.engine.worker().capabilities();
        let agent = caps["userAgent"].as_str().unwrap_or_default();
        let version = agent
            .split_whitespace()
            // `Chrome/…`, or `HeadlessChrome/…` when headless.
            .find_map(|p| p.split_once("Chrome/").or_else(|| p.split_once("Firefox/")).map(|(_, v)| v))
            .map(str::to_string);
        let name = self.engine.process().map(|p| p.kind().name().to_string());
        let browser = match (name, version) {
            (Some(n), Some(v)) => Some(format!("{n} {v}")),
            (Some(n), None) => Some(n),
            (None, Some(v)) => Some(format!("browser {v}")),
            (None, None) => (!agent.is_empty()).then(|| agent.to_string()),
        };
        WorkerInfo { browser, capabilities: caps.clone(), precision: "f32".into() }
    }
}

/// Counts a request in flight for as long as it lives.
struct InFlight<'a>(&'a BrowserWorker);

impl<'a> InFlight<'a> {
    fn enter(worker: &'a BrowserWorker) -> Self {
        // Counted before the state is read, so an idle close that sees zero
        // under the state lock cannot close a browser this request uses.
        worker.in_flight.fetch_add(1, Ordering::SeqCst);
        *lock(&worker.last_used) = Instant::now();
        InFlight(worker)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        *lock(&self.0.last_used) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl BrowserWorker {
    /// A worker that runs models in a browser started with `launch` on
    /// `backend` (which overrides `launch.backend`). Nothing starts until
    /// [`Worker::warm_up`] or the first request.
    pub fn new(id: impl Into<String>, backend: BrowserBackend, mut launch: BrowserLaunch) -> BrowserWorker {
        launch.backend = backend;
        let kind = match backend {
            BrowserBackend::WebGpu => WorkerKind::BrowserWebgpu,
            BrowserBackend::WebNn => WorkerKind::BrowserWebnn,
        };
        BrowserWorker {
            id: id.into(),
            kind,
            launch,
            only: None,
            state: Mutex::new(State::Cold),
            lifecycle: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            last_used: Mutex::new(Instant::now()),
            restarts: AtomicU64::new(0),
            last_info: Mutex::default(),
            launcher: Mutex::default(),
        }
    }

    /// Serves only the models in `dirs` ([`Worker::unsupported`] names the list for
    /// any other), e.g. to keep a small GPU to the models that fit it.
    pub fn with_models(mut self, dirs: Vec<PathBuf>) -> BrowserWorker {
        self.only = Some(dirs);
        self
    }

    /// How many times [`Worker::recover`] has started a new browser.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::SeqCst)
    }

    /// The process id of the browser (also its process group id), while
    /// one is running or a dead one awaits recovery.
    pub fn browser_pid(&self) -> Option<u32> {
        self.current().and_then(|s| s.engine.process().map(|p| p.pid()))
    }

    /// Kills the browser's whole process group with SIGKILL, as a crash
    /// would; the worker notices on its next request or health check. For
    /// fault-injection tests and `pool` chaos runs; does nothing when no
    /// browser runs.
    pub fn kill_browser(&self) {
        if let Some(session) = self.current() {
            session.engine.kill_browser();
        }
    }

    /// The session of the browser running (or dead and awaiting recovery).
    fn current(&self) -> Option<Arc<Session>> {
        match &*lock(&self.state) {
            State::Up(s) => Some(s.clone()),
            State::Down { old, .. } => old.clone(),
            State::Cold | State::Recovering => None,
        }
    }

    /// Whether `model_dir` is in the list given with [`BrowserWorker::with_models`] (if any).
    fn serves(&self, model_dir: &Path) -> bool {
        self.only.as_ref().is_none_or(|dirs| dirs.iter().any(|d| d == model_dir))
    }

    /// Checked before anything starts: bad input must not launch a browser.
    fn check_request(&self, model_dir: &Path, texts: &[&str]) -> Result<(), WorkerError> {
        if !self.serves(model_dir) {
            return Err(self.error(format!("does not serve {}", model_dir.display())));
        }
        if !model_dir.is_dir() {
            return Err(self.error(ipfs_accelerate_models::Error::ModelDirMissing(model_dir.to_path_buf()).to_string()));
        }
        if texts.is_empty() {
            return Err(self.error(ipfs_accelerate_models::Error::EmptyInput.to_string()));
        }
        Ok(())
    }

    fn error(&self, message: impl Into<String>) -> WorkerError {
        WorkerError { worker: self.id.clone(), message: message.into() }
    }

    fn down_error(&self, why: &str) -> WorkerError {
        self.error(format!("its browser is down ({why}); it serves again after recovery"))
    }

    /// Marks `session` dead (when it is still the current one) and returns
    /// the error to report.
    fn mark_down(&self, session: &Arc<Session>, why: String) -> WorkerError {
        let mut state = lock(&self.state);
        if matches!(&*state, State::Up(s) if Arc::ptr_eq(s, session)) {
            tracing::warn!(worker = %self.id, "browser worker down: {why}");
            *state = State::Down { why: why.clone(), old: Some(session.clone()), models: session.dirs() };
        }
        self.down_error(&why)
    }

    /// The error for a failed load or run on `session`: when the page has
    /// gone, the worker is marked down.
    fn failed(&self, session: &Arc<Session>, message: String) -> WorkerError {
        if session.alive() {
            self.error(message)
        } else {
            self.mark_down(session, format!("the browser page went away (crashed or killed): {message}"))
        }
    }

    /// The running session; starts a browser when cold, fails at once when
    /// down or recovering.
    fn session(&self) -> Result<Arc<Session>, WorkerError> {
        if let Some(s) = self.ready()? {
            return Ok(s);
        }
        let _life = lock(&self.lifecycle);
        // Another thread may have started (or lost) a browser meanwhile.
        if let Some(s) = self.ready()? {
            return Ok(s);
        }
        let session = match self.start(&[]) {
            Ok(s) => s,
            Err(e) => {
                let mut state = lock(&self.state);
                *state = State::Down { why: e.clone(), old: None, models: Vec::new() };
                return Err(self.down_error(&e));
            }
        };
        *lock(&self.state) = State::Up(session.clone());
        Ok(session)
    }

    /// `Some` when up and alive, `None` when cold, an error otherwise.
    fn ready(&self) -> Result<Option<Arc<Session>>, WorkerError> {
        let session = match &*lock(&self.state) {
            State::Cold => return Ok(None),
            State::Up(s) => s.clone(),
            State::Recovering => return Err(self.error("its browser is restarting; try another worker")),
            State::Down { why, .. } => return Err(self.down_error(why)),
        };
        if session.alive() {
            Ok(Some(session))
        } else {
            Err(self.mark_down(&session, "the browser page went away (crashed or killed)".into()))
        }
    }

    /// Launches a browser and loads `models` onto it, each warmed with one
    /// run. A model that no longer loads is left out; a dead page fails it.
    /// Called with the lifecycle lock held.
    fn start(&self, models: &[PathBuf]) -> Result<Arc<Session>, String> {
        let began = Instant::now();
        let engine = self.launch_engine()?;
        let session = Arc::new(Session { engine: Arc::new(engine), models: Mutex::default() });
        *lock(&self.last_info) = Some(session.info());
        tracing::info!(worker = %self.id, pid = ?session.engine.process().map(|p| p.pid()), elapsed = ?began.elapsed(), "browser worker started");
        for dir in models {
            let warmed = session.model(dir).and_then(|m| m.embed(&[WARM_TEXT], 1).map_err(|e| e.to_string()));
            if let Err(e) = warmed {
                if !session.alive() {
                    session.shutdown();
                    return Err(format!("the new browser went away while loading {}: {e}", dir.display()));
                }
                tracing::warn!(worker = %self.id, model = %dir.display(), "not reloaded after restart: {e}");
            }
        }
        Ok(session)
    }

    /// Launches the browser on this worker's launcher thread: the launcher
    /// ties a browser's life to the thread that started it (so a killed
    /// host leaves no orphans), and request threads come and go.
    fn launch_engine(&self) -> Result<BrowserEngine, String> {
        let mut launcher = lock(&self.launcher);
        if launcher.is_none() {
            let (tx, rx) = mpsc::channel::<LaunchJob>();
            let spawned = std::thread::Builder::new().name(format!("browser-launcher-{}", self.id)).spawn(move || {
                // Ends when the worker (holding the sender) is dropped.
                for (options, reply) in rx {
                    let _ = reply.send(BrowserEngine::launch(&options).map_err(|e| e.to_string()));
                }
            });
            match spawned {
                Ok(_) => *launcher = Some(tx),
                Err(e) => {
                    tracing::warn!(worker = %self.id, "no launcher thread ({e}); launching on the caller's thread");
                    return BrowserEngine::launch(&self.launch).map_err(|e| e.to_string());
                }
            }
        }
        let (reply, answer) = mpsc::channel();
        let sent = launcher.as_ref().is_some_and(|l| l.send((self.launch.clone(), reply)).is_ok());
        drop(launcher);
        if !sent {
            *lock(&self.launcher) = None;
            return Err("the browser launcher thread is gone; try again".into());
        }
        answer.recv().unwrap_or_else(|_| {
            *lock(&self.launcher) = None;
            Err("the browser launcher thread stopped while launching; try again".into())
        })
    }
}

impl Worker for BrowserWorker {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> WorkerKind {
        self.kind
    }

    fn info(&self) -> WorkerInfo {
        if let Some(s) = self.current() {
            return s.info();
        }
        lock(&self.last_info).clone().unwrap_or_else(|| WorkerInfo {
            browser: None,
            capabilities: serde_json::json!({}),
            precision: "f32".into(),
        })
    }

    fn embed(&self, model_dir: &Path, texts: &[&str]) -> Result<Vec<Vec<f32>>, WorkerError> {
        self.check_request(model_dir, texts)?;
        let _busy = InFlight::enter(self);
        let session = self.session()?;
        let model = session.model(model_dir).map_err(|e| self.failed(&session, e))?;
        model.embed(texts, texts.len().max(1)).map_err(|e| self.failed(&session, e.to_string()))
    }

    fn embed_stage(
        &self,
        model_dir: &Path,
        texts: &[&str],
        range: LayerRange,
        hidden: Option<&Tensor>,
    ) -> Result<StageOutput, WorkerError> {
        self.check_request(model_dir, texts)?;
        let _busy = InFlight::enter(self);
        let session = self.session()?;
        let model = session.model(model_dir).map_err(|e| self.failed(&session, e))?;
        // Only this stage's layers are uploaded to the page (the stage graph's constants).
        model.embed_stage(texts, range, hidden).map_err(|e| self.failed(&session, e.to_string()))
    }

    fn has_loaded(&self, model_dir: &Path) -> bool {
        matches!(&*lock(&self.state), State::Up(s) if s.has(model_dir))
    }

    fn unsupported(&self, model_dir: &Path) -> Option<String> {
        if !self.serves(model_dir) {
            return Some("it serves only the models in its list".into());
        }
        if self.has_loaded(model_dir) {
            return None;
        }
        // The page said what it has when it joined; a browser without the
        // API is no use however long one waits.
        if let Some(caps) = lock(&self.last_info).as_ref().map(|i| i.capabilities.clone()) {
            let api = match self.kind {
                WorkerKind::BrowserWebnn => "webnn",
                _ => "webgpu",
            };
            if caps[api]["available"].as_bool() == Some(false) {
                return Some(format!("its browser has no usable {api}"));
            }
        }
        crate::worker::model_support(model_dir)
    }

    fn loaded_models(&self) -> Vec<PathBuf> {
        match &*lock(&self.state) {
            State::Up(s) => s.dirs(),
            _ => Vec::new(),
        }
    }

    fn health(&self, timeout: Duration) -> Result<(), WorkerError> {
        let session = match self.ready()? {
            // Closed on purpose (or never started): it starts on demand.
            None => return Ok(()),
            Some(s) => s,
        };
        match session.engine.worker().ping(timeout) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.failed(&session, format!("the page did not answer a ping: {e}"))),
        }
    }

    fn recover(&self) -> Result<(), WorkerError> {
        let _life = lock(&self.lifecycle);
        let (old, models) = {
            let mut state = lock(&self.state);
            match std::mem::replace(&mut *state, State::Recovering) {
                State::Cold => {
                    // Nothing runs, nothing to restart: it starts on demand.
                    *state = State::Cold;
                    return Ok(());
                }
                State::Up(s) => {
                    let models = s.dirs();
                    (Some(s), models)
                }
                State::Down { old, models, .. } => (old, models),
                // Unreachable with the lifecycle lock held; start afresh.
                State::Recovering => (None, Vec::new()),
            }
        };
        if let Some(old) = old {
            old.shutdown();
        }
        let began = Instant::now();
        match self.start(&models) {
            Ok(session) => {
                self.restarts.fetch_add(1, Ordering::SeqCst);
                *lock(&self.last_used) = Instant::now();
                *lock(&self.state) = State::Up(session);
                tracing::info!(worker = %self.id, elapsed = ?began.elapsed(), models = models.len(), "browser worker recovered");
                Ok(())
            }
            Err(e) => {
                *lock(&self.state) = State::Down { why: e.clone(), old: None, models };
                Err(self.error(format!("could not restart its browser: {e}")))
            }
        }
    }

    fn is_down(&self) -> bool {
        matches!(&*lock(&self.state), State::Down { .. })
    }

    fn is_warm(&self) -> bool {
        !matches!(&*lock(&self.state), State::Cold)
    }

    fn warm_up(&self) -> Result<(), WorkerError> {
        self.session().map(|_| ())
    }

    fn close_if_idle(&self, idle: Duration) -> bool {
        // A launch or recovery in progress is not idle.
        let _life = match self.lifecycle.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return false,
        };
        let session = {
            let mut state = lock(&self.state);
            if !matches!(&*state, State::Up(_))
                || self.in_flight.load(Ordering::SeqCst) > 0
                || lock(&self.last_used).elapsed() < idle
            {
                return false;
            }
            match std::mem::replace(&mut *state, State::Cold) {
                State::Up(s) => s,
                _ => return false,
            }
        };
        tracing::info!(worker = %self.id, "closing the idle browser");
        session.shutdown();
        true
    }
}

impl Drop for BrowserWorker {
    fn drop(&mut self) {
        let state = std::mem::replace(&mut *lock(&self.state), State::Cold);
        match state {
            State::Up(s) | State::Down { old: Some(s), .. } => s.shutdown(),
            _ => {}
        }
    }
}
