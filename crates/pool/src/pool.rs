//! The pool: a bounded queue of embedding requests, dispatcher threads that
//! hand each one to the best worker ([`crate::dispatch`]), and a health
//! thread that pings workers, restarts dead ones and closes idle browsers
//! ([`crate::health`]) — so every request gets exactly one answer.
//!
//! With a [`Journal`] attached, the pool registers its workers, records each
//! request when accepted and, in one transaction when answered, its
//! inferences (one per worker tried) and its outcome; it keeps the model
//! placements and worker states current and saves the measured latencies,
//! which the next pool on the same journal starts from.

use crate::circuit::{CircuitBreaker, CircuitConfig, CircuitSnapshot, CircuitStateName, Clock, SystemClock};
use crate::dispatch::{self, Job};
use crate::journal::{Journal, Outcome, WorkerRecord};
use crate::latency::{browser_family, LatencyTable, Prior};
use crate::queue::{BoundedQueue, Busy, Priority};
use crate::worker::{Worker, WorkerInfo, WorkerKind};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// How the pool queues, dispatches, retries and looks after its workers.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Requests that may wait; more are refused with [`PoolError::Busy`].
    pub queue_capacity: usize,
    /// Threads handing requests to workers (requests in flight at once).
    pub dispatchers: usize,
    /// Workers tried per request before it fails.
    pub max_attempts: usize,
    /// How long a request may wait for a worker whose circuit is closed.
    pub request_timeout: Duration,
    /// Circuit breaker of each worker.
    pub circuit: CircuitConfig,
    /// Weight of the newest latency in the moving average (0–1].
    pub latency_smoothing: f64,
    /// Starting guesses of each worker kind's latency, until measured.
    pub priors: Vec<Prior>,
    /// How often the health thread pings every warm worker.
    pub health_interval: Duration,
    /// How long a ping may take before it counts as failed.
    pub health_timeout: Duration,
    /// Failed health checks in a row before a worker that is only slow
    /// (busy, not known dead) is restarted; a worker that knows it is dead
    /// is restarted at the first.
    pub health_failures: u32,
    /// Browser workers kept running even when idle.
    pub min_warm_browsers: usize,
    /// A browser idle this long is closed (down to `min_warm_browsers`);
    /// it starts again on demand.
    pub browser_idle_timeout: Duration,
    /// What the scheduler adds to a worker that is not running yet (a
    /// browser to launch), in ms, so warm workers are preferred.
    pub cold_start_ms: f64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            queue_capacity: 1024,
            dispatchers: 8,
            max_attempts: 3,
            request_timeout: Duration::from_secs(120),
            circuit: CircuitConfig::default(),
            latency_smoothing: 0.2,
            priors: Vec::new(),
            health_interval: Duration::from_secs(2),
            health_timeout: Duration::from_secs(5),
            health_failures: 3,
            min_warm_browsers: 1,
            browser_idle_timeout: Duration::from_secs(300),
            cold_start_ms: 3000.0,
        }
    }
}

/// Why a request got no embeddings.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PoolError {
    /// The queue is full.
    #[error("busy: {0} requests are already waiting (the queue's limit); retry later or add workers")]
    Busy(usize),
    /// No worker in the pool can run this model.
    #[error("no worker can run {model}: {reason}")]
    NoWorker {
        /// The model directory.
        model: String,
        /// Which capability is missing.
        reason: String,
    },
    /// Every try failed.
    #[error("{model} failed on {attempts} worker(s): {}", .failures.join("; "))]
    Failed {
        /// The model directory.
        model: String,
        /// Tries made.
        attempts: usize,
        /// What each try said.
        failures: Vec<String>,
    },
    /// No capable worker's circuit closed in time.
    #[error("no worker was available for {model} within {waited:?} ({reason})")]
    Timeout {
        /// The model directory.
        model: String,
        /// How long it waited.
        waited: Duration,
        /// Why the workers were unavailable.
        reason: String,
    },
    /// The request itself is unusable (no texts, a bad shard count).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The pool shut down before answering.
    #[error("the pool is shutting down")]
    Closed,
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// One vector per text.
    pub embeddings: Vec<Vec<f32>>,
    /// The worker that answered (the last stage's, for a sharded request).
    pub worker: String,
    /// Its kind.
    pub kind: WorkerKind,
    /// Time on that worker (all stages, for a sharded request).
    pub latency: Duration,
    /// Worker calls made (1 when the first answered; one per stage and
    /// retry for a sharded request).
    pub attempts: usize,
    /// The worker that ran each stage, for a sharded request.
    pub stages: Vec<String>,
}

/// The answer to come for a submitted request.
pub struct Ticket {
    pub(crate) rx: mpsc::Receiver<Result<Answer, PoolError>>,
}

impl Ticket {
    /// Waits for the answer.
    pub fn wait(self) -> Result<Answer, PoolError> {
        self.rx.recv().unwrap_or(Err(PoolError::Closed))
    }
}

/// Where a worker stands, beyond its circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    /// Taking requests.
    Ready,
    /// Failed a health check; being restarted (not scheduled meanwhile).
    Recovering,
    /// Restarting failed; tried again with backoff.
    Down,
}

impl Health {
    fn from_u8(v: u8) -> Health {
        match v {
            1 => Health::Recovering,
            2 => Health::Down,
            _ => Health::Ready,
        }
    }
}

/// A worker in the pool, as `pool status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkerStatus {
    /// Its id.
    pub id: String,
    /// Its kind.
    pub kind: WorkerKind,
    /// Its browser, for browser workers.
    pub browser: Option<String>,
    /// Ready, recovering or down.
    pub health: Health,
    /// Whether it is running (a browser launched); cold workers start on demand.
    pub warm: bool,
    /// Requests running on it now.
    pub in_flight: usize,
    /// Requests it answered.
    pub answered: usize,
    /// Requests it failed.
    pub failed: usize,
    /// Times it was brought back after failing a health check.
    pub recoveries: usize,
    /// The models loaded on it.
    pub models: Vec<String>,
    /// Its circuit breaker.
    pub circuit: CircuitSnapshot,
}

impl WorkerStatus {
    /// One word for the journal and tables: `ready`, `idle` (not running),
    /// `recovering`, `down`, `circuit-open` or `circuit-half-open`.
    pub fn state(&self) -> &'static str {
        match (self.health, self.circuit.state, self.warm) {
            (Health::Recovering, _, _) => "recovering",
            (Health::Down, _, _) => "down",
            (_, CircuitStateName::Open, _) => "circuit-open",
            (_, CircuitStateName::HalfOpen, _) => "circuit-half-open",
            (_, _, false) => "idle",
            _ => "ready",
        }
    }
}

pub(crate) const READY: u8 = 0;
pub(crate) const RECOVERING: u8 = 1;
pub(crate) const DOWN: u8 = 2;

/// A worker with the pool's bookkeeping about it.
pub(crate) struct Slot {
    pub(crate) worker: Arc<dyn Worker>,
    pub(crate) breaker: CircuitBreaker,
    /// What `info()` last said of its browser and precision: read per
    /// request (latency table, journal rows) without asking the worker,
    /// whose `info()` clones a whole capability report.
    pub(crate) identity: RwLock<Identity>,
    pub(crate) health: AtomicU8,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) answered: AtomicUsize,
    pub(crate) failed: AtomicUsize,
    pub(crate) recoveries: AtomicUsize,
    /// Failed health checks in a row.
    pub(crate) health_failures: std::sync::atomic::AtomicU32,
    /// Set when it answered garbage: the health thread restarts it
    /// (reconnects) whatever its ping says.
    pub(crate) needs_recovery: AtomicBool,
    /// The placements the journal has for it.
    pub(crate) placed: Mutex<BTreeSet<PathBuf>>,
    /// The state last written to the journal.
    pub(crate) journal_state: Mutex<String>,
}

/// A worker's browser and precision, cached in its slot.
#[derive(Debug, Clone, Default)]
pub(crate) struct Identity {
    /// The browser and its version, for browser workers that have started.
    pub(crate) browser: Option<String>,
    /// [`browser_family`] of `browser`: the latency table's key.
    pub(crate) family: String,
    /// The precision it runs at.
    pub(crate) precision: String,
}

impl Identity {
    fn of(info: &WorkerInfo) -> Identity {
        Identity {
            browser: info.browser.clone(),
            family: browser_family(info.browser.as_deref()),
            precision: info.precision.clone(),
        }
    }
}

impl Slot {
    pub(crate) fn identity(&self) -> Identity {
        self.identity.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Asks the worker what it is now (its browser may have started since).
    pub(crate) fn refresh_identity(&self) -> WorkerInfo {
        let info = self.worker.info();
        *self.identity.write().unwrap_or_else(|p| p.into_inner()) = Identity::of(&info);
        info
    }

    /// Whether a browser worker's browser is still unknown: it started
    /// lazily, after the slot last asked.
    pub(crate) fn browser_unknown(&self) -> bool {
        self.worker.kind().is_browser() && self.identity.read().unwrap_or_else(|p| p.into_inner()).browser.is_none()
    }

    pub(crate) fn health(&self) -> Health {
        Health::from_u8(self.health.load(Ordering::SeqCst))
    }

    pub(crate) fn status(&self) -> WorkerStatus {
        WorkerStatus {
            id: self.worker.id().to_string(),
            kind: self.worker.kind(),
            browser: self.identity().browser,
            health: self.health(),
            warm: self.worker.is_warm(),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            answered: self.answered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            recoveries: self.recoveries.load(Ordering::Relaxed),
            models: self.worker.loaded_models().iter().map(|m| m.display().to_string()).collect(),
            circuit: self.breaker.snapshot(),
        }
    }
}

/// State shared by the pool's threads.
pub(crate) struct Inner {
    pub(crate) slots: RwLock<Vec<Arc<Slot>>>,
    pub(crate) queue: BoundedQueue<Job>,
    pub(crate) latency: Mutex<LatencyTable>,
    pub(crate) config: PoolConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) journal: Option<Arc<Journal>>,
    /// Set when the pool is dropped: background threads stop.
    pub(crate) closing: AtomicBool,
    /// Wakes the health thread early (a worker just failed).
    pub(crate) wake_health: Mutex<Option<mpsc::Sender<()>>>,
    /// Recovery threads, joined when the pool drops.
    pub(crate) recoveries: Mutex<Vec<JoinHandle<()>>>,
    /// Which worker runs each stage of each sharded model: kept so a stage's
    /// layers load once, replaced when that worker fails.
    pub(crate) stage_placement: Mutex<std::collections::HashMap<(PathBuf, usize, usize), String>>,
}

impl Inner {
    pub(crate) fn slots(&self) -> Vec<Arc<Slot>> {
        self.slots.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs a journal write; a failing journal is logged, never fails a request.
    pub(crate) fn journal<T>(&self, what: &str, f: impl FnOnce(&Journal) -> crate::journal::Result<T>) -> Option<T> {
        let journal = self.journal.as_ref()?;
        match f(journal) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(error = %e, "journal: could not record {what}");
                None
            }
        }
    }

    pub(crate) fn wake_health(&self) {
        if let Some(tx) = self.wake_health.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = tx.send(());
        }
    }

    /// Registers (or re-registers) a worker in the journal with its state,
    /// refreshing what the slot knows of its browser and precision.
    pub(crate) fn register(&self, slot: &Slot) {
        let info = slot.refresh_identity();
        let status = slot.status();
        let record = WorkerRecord {
            id: status.id.clone(),
            kind: status.kind.as_str().to_string(),
            browser: info.browser,
            capabilities: info.capabilities,
            state: status.state().to_string(),
        };
        self.journal("a worker", |j| j.register_worker(&record));
        *slot.journal_state.lock().unwrap_or_else(|p| p.into_inner()) = record.state;
    }
}

/// The pool; stops its threads when dropped, answering what is queued and
/// saving the measured latencies.
pub struct Pool {
    inner: Arc<Inner>,
    dispatchers: Vec<JoinHandle<()>>,
    health: Option<JoinHandle<()>>,
}

impl Pool {
    /// A pool with no workers yet and no journal.
    pub fn new(config: PoolConfig) -> Pool {
        Self::build(config, Arc::new(SystemClock), None)
    }

    /// A pool whose circuit breakers use `clock` (tests).
    pub fn with_clock(config: PoolConfig, clock: Arc<dyn Clock>) -> Pool {
        Self::build(config, clock, None)
    }

    /// A pool that records everything in `journal` and starts from the
    /// latencies saved there.
    pub fn with_journal(config: PoolConfig, journal: Arc<Journal>) -> Pool {
        Self::build(config, Arc::new(SystemClock), Some(journal))
    }

    fn build(config: PoolConfig, clock: Arc<dyn Clock>, journal: Option<Arc<Journal>>) -> Pool {
        let saved = match &journal {
            Some(j) => j.latencies().unwrap_or_else(|e| {
                tracing::warn!(error = %e, "journal: could not read the saved latencies; starting from the priors");
                Vec::new()
            }),
            None => Vec::new(),
        };
        let (wake_tx, wake_rx) = mpsc::channel();
        let inner = Arc::new(Inner {
            slots: RwLock::default(),
            queue: BoundedQueue::new(config.queue_capacity),
            latency: Mutex::new(LatencyTable::new(config.priors.clone(), saved)),
            config,
            clock,
            journal,
            closing: AtomicBool::new(false),
            wake_health: Mutex::new(Some(wake_tx)),
            recoveries: Mutex::default(),
            stage_placement: Mutex::default(),
        });
        let dispatchers = (0..inner.config.dispatchers.max(1))
            .map(|i| {
                let inner = inner.clone();
                std::thread::Builder::new()
                    .name(format!("pool-dispatch-{i}"))
                    .spawn(move || dispatch::dispatch_loop(&inner))
                    .expect("the OS starts a thread")
            })
            .collect();
        let health = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("pool-health".into())
                .spawn(move || crate::health::health_loop(&inner, wake_rx))
                .expect("the OS starts a thread")
        };
        Pool { inner, dispatchers, health: Some(health) }
    }

    /// Adds a worker (replacing one with the same id) and registers it in
    /// the journal.
    pub fn add_worker(&self, worker: Arc<dyn Worker>) {
        let slot = Arc::new(Slot {
            breaker: CircuitBreaker::new(self.inner.config.circuit.clone(), self.inner.clock.clone()),
            identity: RwLock::default(),
            worker,
            health: AtomicU8::new(READY),
            in_flight: AtomicUsize::new(0),
            answered: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            recoveries: AtomicUsize::new(0),
            health_failures: std::sync::atomic::AtomicU32::new(0),
            needs_recovery: AtomicBool::new(false),
            placed: Mutex::default(),
            journal_state: Mutex::default(),
        });
        self.inner.register(&slot);
        let mut slots = self.inner.slots.write().unwrap_or_else(|p| p.into_inner());
        slots.retain(|s| s.worker.id() != slot.worker.id());
        slots.push(slot);
    }

    /// Removes a worker; requests running on it finish or are retried elsewhere.
    pub fn remove_worker(&self, id: &str) {
        self.inner.slots.write().unwrap_or_else(|p| p.into_inner()).retain(|s| s.worker.id() != id);
        self.inner.journal("a worker's removal", |j| j.set_worker_state(id, "removed"));
    }

    /// Starts the first `min_warm_browsers` browser workers (and every
    /// other worker) now rather than on their first request, in parallel;
    /// returns the workers that failed to start, with why.
    pub fn warm_up(&self) -> Vec<(String, String)> {
        let mut browsers = 0;
        let mut starting = Vec::new();
        for slot in self.inner.slots() {
            if slot.worker.kind().is_browser() {
                if browsers >= self.inner.config.min_warm_browsers {
                    continue;
                }
                browsers += 1;
            }
            let inner = self.inner.clone();
            starting.push(std::thread::spawn(move || {
                let result = slot.worker.warm_up();
                inner.register(&slot);
                result.err().map(|e| (slot.worker.id().to_string(), e.message))
            }));
        }
        starting.into_iter().filter_map(|t| t.join().ok().flatten()).collect()
    }

    /// Queues a request; fails at once with [`PoolError::Busy`] when the queue is full.
    pub fn submit(&self, model: &Path, texts: Vec<String>, priority: Priority) -> Result<Ticket, PoolError> {
        self.submit_job(model, texts, None, priority)
    }

    /// Queues a request to run as a pipeline of `shards` stages, each on a
    /// worker of its own where the pool has enough (a worker may run two
    /// stages when it has fewer). When a stage's worker fails, that stage
    /// moves to another worker and the request goes on from there.
    pub fn submit_sharded(
        &self,
        model: &Path,
        texts: Vec<String>,
        shards: usize,
        priority: Priority,
    ) -> Result<Ticket, PoolError> {
        if shards == 0 {
            return Err(PoolError::BadRequest("--shards must be at least 1".into()));
        }
        self.submit_job(model, texts, Some(shards), priority)
    }

    fn submit_job(
        &self,
        model: &Path,
        texts: Vec<String>,
        shards: Option<usize>,
        priority: Priority,
    ) -> Result<Ticket, PoolError> {
        if texts.is_empty() {
            return Err(PoolError::BadRequest("no texts to embed".into()));
        }
        let (reply, rx) = mpsc::channel();
        let model_key = model.display().to_string();
        let request_id = self.inner.journal("an accepted request", |j| j.accept_request(&model_key));
        let job = Job::new(model.to_path_buf(), model_key, texts, shards, reply, request_id);
        match self.inner.queue.push(job, priority) {
            Ok(()) => Ok(Ticket { rx }),
            Err(Busy { item, capacity }) => {
                let error = PoolError::Busy(capacity);
                if let Some(id) = item.request_id {
                    let message = error.to_string();
                    self.inner
                        .journal("a refused request", |j| j.finish_request(id, Outcome::Busy, Some(&message), &[]));
                }
                Err(error)
            }
        }
    }

    /// Embeds `texts` with `model` through the pool and waits for the answer.
    pub fn embed(&self, model: &Path, texts: &[&str]) -> Result<Answer, PoolError> {
        self.submit(model, texts.iter().map(|t| t.to_string()).collect(), Priority::Normal)?.wait()
    }

    /// Every worker's state.
    pub fn status(&self) -> Vec<WorkerStatus> {
        self.inner.slots().iter().map(|s| s.status()).collect()
    }

    /// Requests waiting in the queue.
    pub fn queued(&self) -> usize {
        self.inner.queue.len()
    }

    /// The measured moving averages (and how many inferences each holds).
    pub fn latencies(&self) -> Vec<crate::journal::LatencyRow> {
        self.inner.latency.lock().unwrap_or_else(|p| p.into_inner()).rows()
    }

    /// Saves the measured latencies to the journal now (the health thread
    /// also does, every few seconds, and the pool when dropped).
    pub fn save_latencies(&self) {
        crate::health::save_latencies(&self.inner);
    }

    /// The journal, when one is attached.
    pub fn journal(&self) -> Option<&Arc<Journal>> {
        self.inner.journal.as_ref()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.inner.queue.close();
        for d in self.dispatchers.drain(..) {
            let _ = d.join();
        }
        self.inner.closing.store(true, Ordering::SeqCst);
        // Dropping the sender wakes the health thread, which then returns.
        self.inner.wake_health.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = self.health.take() {
            let _ = h.join();
        }
        let recoveries = std::mem::take(&mut *self.inner.recoveries.lock().unwrap_or_else(|p| p.into_inner()));
        for r in recoveries {
            let _ = r.join();
        }
        crate::health::save_latencies(&self.inner);
        crate::health::sync_journal(&self.inner);
    }
}
