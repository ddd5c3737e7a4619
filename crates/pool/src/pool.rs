//! The pool: a bounded queue of embedding requests, dispatcher threads that
//! hand each one to the best worker, and retries elsewhere when a worker
//! fails — so every request gets exactly one answer.
//!
//! Choosing a worker: among those that can serve the model and whose
//! circuit breaker lets a request through, the one with the lowest expected
//! wait — its measured latency for this model (a moving average per worker
//! kind and model; a worker without measurements is tried first) times one
//! plus the requests it is running — halved when the model is already
//! loaded there. A failure counts against the worker's breaker and the
//! request goes back to the front of the queue for another worker, up to
//! [`PoolConfig::max_attempts`] tries. While every capable worker's circuit
//! is open the request waits (up to [`PoolConfig::request_timeout`]); when
//! no worker can serve the model at all it fails at once, saying so.

use crate::circuit::{CircuitBreaker, CircuitConfig, CircuitSnapshot, Clock, SystemClock};
use crate::queue::{BoundedQueue, Busy, Priority};
use crate::worker::{Worker, WorkerKind};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the pool queues, dispatches and retries.
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
    /// The pool shut down before answering.
    #[error("the pool is shutting down")]
    Closed,
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// One vector per text.
    pub embeddings: Vec<Vec<f32>>,
    /// The worker that answered.
    pub worker: String,
    /// Its kind.
    pub kind: WorkerKind,
    /// Time on that worker.
    pub latency: Duration,
    /// Workers tried (1 when the first answered).
    pub attempts: usize,
}

/// The answer to come for a submitted request.
pub struct Ticket {
    rx: mpsc::Receiver<Result<Answer, PoolError>>,
}

impl Ticket {
    /// Waits for the answer.
    pub fn wait(self) -> Result<Answer, PoolError> {
        self.rx.recv().unwrap_or(Err(PoolError::Closed))
    }
}

/// A worker in the pool, as `pool status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkerStatus {
    /// Its id.
    pub id: String,
    /// Its kind.
    pub kind: WorkerKind,
    /// Requests running on it now.
    pub in_flight: usize,
    /// Requests it answered.
    pub answered: usize,
    /// Requests it failed.
    pub failed: usize,
    /// Its circuit breaker.
    pub circuit: CircuitSnapshot,
}

struct Slot {
    worker: Arc<dyn Worker>,
    breaker: CircuitBreaker,
    in_flight: AtomicUsize,
    answered: AtomicUsize,
    failed: AtomicUsize,
}

struct Job {
    model: PathBuf,
    texts: Vec<String>,
    reply: mpsc::Sender<Result<Answer, PoolError>>,
    failures: Vec<String>,
    tried: Vec<String>,
    accepted: Instant,
}

struct Inner {
    slots: RwLock<Vec<Arc<Slot>>>,
    queue: BoundedQueue<Job>,
    /// Moving average latency in ms, by model, then worker kind.
    latency: Mutex<HashMap<PathBuf, HashMap<WorkerKind, f64>>>,
    config: PoolConfig,
    clock: Arc<dyn Clock>,
}

/// The pool; stops its dispatchers when dropped, answering what is queued.
pub struct Pool {
    inner: Arc<Inner>,
    dispatchers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// A pool with no workers yet.
    pub fn new(config: PoolConfig) -> Pool {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// A pool whose circuit breakers use `clock` (tests).
    pub fn with_clock(config: PoolConfig, clock: Arc<dyn Clock>) -> Pool {
        let inner = Arc::new(Inner {
            slots: RwLock::default(),
            queue: BoundedQueue::new(config.queue_capacity),
            latency: Mutex::default(),
            config,
            clock,
        });
        let dispatchers = (0..inner.config.dispatchers.max(1))
            .map(|i| {
                let inner = inner.clone();
                std::thread::Builder::new()
                    .name(format!("pool-dispatch-{i}"))
                    .spawn(move || dispatch_loop(&inner))
                    .expect("the OS starts a thread")
            })
            .collect();
        Pool { inner, dispatchers }
    }

    /// Adds a worker (replacing one with the same id).
    pub fn add_worker(&self, worker: Arc<dyn Worker>) {
        let slot = Arc::new(Slot {
            breaker: CircuitBreaker::new(self.inner.config.circuit.clone(), self.inner.clock.clone()),
            worker,
            in_flight: AtomicUsize::new(0),
            answered: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
        });
        let mut slots = self.inner.slots.write().unwrap_or_else(|p| p.into_inner());
        slots.retain(|s| s.worker.id() != slot.worker.id());
        slots.push(slot);
    }

    /// Removes a worker; requests running on it finish or are retried elsewhere.
    pub fn remove_worker(&self, id: &str) {
        self.inner.slots.write().unwrap_or_else(|p| p.into_inner()).retain(|s| s.worker.id() != id);
    }

    /// Queues a request; fails at once with [`PoolError::Busy`] when the queue is full.
    pub fn submit(&self, model: &Path, texts: Vec<String>, priority: Priority) -> Result<Ticket, PoolError> {
        let (reply, rx) = mpsc::channel();
        let job = Job {
            model: model.to_path_buf(),
            texts,
            reply,
            failures: Vec::new(),
            tried: Vec::new(),
            accepted: Instant::now(),
        };
        self.inner.queue.push(job, priority).map_err(|b: Busy<Job>| PoolError::Busy(b.capacity))?;
        Ok(Ticket { rx })
    }

    /// Embeds `texts` with `model` through the pool and waits for the answer.
    pub fn embed(&self, model: &Path, texts: &[&str]) -> Result<Answer, PoolError> {
        self.submit(model, texts.iter().map(|t| t.to_string()).collect(), Priority::Normal)?.wait()
    }

    /// Every worker's state.
    pub fn status(&self) -> Vec<WorkerStatus> {
        let slots = self.inner.slots.read().unwrap_or_else(|p| p.into_inner());
        slots
            .iter()
            .map(|s| WorkerStatus {
                id: s.worker.id().to_string(),
                kind: s.worker.kind(),
                in_flight: s.in_flight.load(Ordering::Relaxed),
                answered: s.answered.load(Ordering::Relaxed),
                failed: s.failed.load(Ordering::Relaxed),
                circuit: s.breaker.snapshot(),
            })
            .collect()
    }

    /// Requests waiting in the queue.
    pub fn queued(&self) -> usize {
        self.inner.queue.len()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.inner.queue.close();
        for d in self.dispatchers.drain(..) {
            let _ = d.join();
        }
    }
}

/// What the scheduler decided for one job.
enum Choice {
    Run(Arc<Slot>, crate::circuit::Permit),
    /// Capable workers exist but none can take it now: why.
    Wait(String),
    /// No worker can run the model.
    Never(String),
}

fn dispatch_loop(inner: &Inner) {
    loop {
        match inner.queue.pop(Duration::from_millis(200)) {
            Some(job) => handle(inner, job),
            // Closed and drained: every queued request has had its answer.
            None if inner.queue.is_closed() && inner.queue.is_empty() => return,
            None => {}
        }
    }
}

fn handle(inner: &Inner, mut job: Job) {
    match choose(inner, &job) {
        Choice::Never(reason) => {
            let _ = job.reply.send(Err(PoolError::NoWorker { model: job.model.display().to_string(), reason }));
        }
        Choice::Wait(reason) => {
            let waited = job.accepted.elapsed();
            if waited >= inner.config.request_timeout || inner.queue.is_closed() {
                let error = PoolError::Timeout { model: job.model.display().to_string(), waited, reason };
                let _ = job.reply.send(Err(error));
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
            requeue(inner, job);
        }
        Choice::Run(slot, permit) => {
            slot.in_flight.fetch_add(1, Ordering::SeqCst);
            let texts: Vec<&str> = job.texts.iter().map(String::as_str).collect();
            let start = Instant::now();
            let result = slot.worker.embed(&job.model, &texts);
            let latency = start.elapsed();
            slot.in_flight.fetch_sub(1, Ordering::SeqCst);
            match result {
                Ok(embeddings) if embeddings.len() == job.texts.len() => {
                    permit.success();
                    slot.answered.fetch_add(1, Ordering::Relaxed);
                    record_latency(inner, slot.worker.kind(), &job.model, latency);
                    let answer = Answer {
                        embeddings,
                        worker: slot.worker.id().to_string(),
                        kind: slot.worker.kind(),
                        latency,
                        attempts: job.tried.len() + 1,
                    };
                    let _ = job.reply.send(Ok(answer));
                }
                other => {
                    permit.failure();
                    slot.failed.fetch_add(1, Ordering::Relaxed);
                    let message = match other {
                        Err(e) => e.to_string(),
                        Ok(v) => format!(
                            "worker {} answered {} vectors for {} texts",
                            slot.worker.id(),
                            v.len(),
                            job.texts.len()
                        ),
                    };
                    tracing::info!(worker = slot.worker.id(), %message, "a worker failed; retrying elsewhere");
                    job.failures.push(message);
                    job.tried.push(slot.worker.id().to_string());
                    if job.tried.len() >= inner.config.max_attempts {
                        let error = PoolError::Failed {
                            model: job.model.display().to_string(),
                            attempts: job.tried.len(),
                            failures: std::mem::take(&mut job.failures),
                        };
                        let _ = job.reply.send(Err(error));
                    } else {
                        requeue(inner, job);
                    }
                }
            }
        }
    }
}

/// Puts a job back at the front; if even that fails (the queue is full or
/// closed) the job is answered rather than lost.
fn requeue(inner: &Inner, job: Job) {
    if let Err(busy) = inner.queue.push(job, Priority::High) {
        let job = busy.item;
        let error = if inner.queue.is_closed() { PoolError::Closed } else { PoolError::Busy(busy.capacity) };
        let _ = job.reply.send(Err(error));
    }
}

fn record_latency(inner: &Inner, kind: WorkerKind, model: &Path, latency: Duration) {
    let ms = latency.as_secs_f64() * 1e3;
    let alpha = inner.config.latency_smoothing.clamp(0.01, 1.0);
    let mut table = inner.latency.lock().unwrap_or_else(|p| p.into_inner());
    let by_kind = match table.get_mut(model) {
        Some(by_kind) => by_kind,
        None => table.entry(model.to_path_buf()).or_default(),
    };
    let entry = by_kind.entry(kind).or_insert(ms);
    *entry = alpha * ms + (1.0 - alpha) * *entry;
}

fn choose(inner: &Inner, job: &Job) -> Choice {
    let slots = inner.slots.read().unwrap_or_else(|p| p.into_inner()).clone();
    let capable: Vec<&Arc<Slot>> = slots.iter().filter(|s| s.worker.can_serve(&job.model)).collect();
    if capable.is_empty() {
        let reason = if slots.is_empty() {
            "the pool has no workers".to_string()
        } else {
            format!("none of its {} worker(s) serves this model", slots.len())
        };
        return Choice::Never(reason);
    }
    let latency = inner.latency.lock().unwrap_or_else(|p| p.into_inner());
    let by_kind = latency.get(job.model.as_path());
    // Prefer workers this request has not failed on yet.
    let mut ranked: Vec<(f64, &Arc<Slot>)> = capable
        .iter()
        .map(|s| {
            let measured = by_kind.and_then(|k| k.get(&s.worker.kind())).copied().unwrap_or(0.0);
            let load = (s.in_flight.load(Ordering::SeqCst) + 1) as f64;
            let affinity = if s.worker.has_loaded(&job.model) { 0.5 } else { 1.0 };
            let retry_penalty = if job.tried.iter().any(|t| t == s.worker.id()) { 1e9 } else { 0.0 };
            (measured.max(0.001) * load * affinity + retry_penalty, *s)
        })
        .collect();
    drop(latency);
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut reasons = Vec::new();
    for (_, slot) in ranked {
        match slot.breaker.try_acquire() {
            Ok(permit) => return Choice::Run(slot.clone(), permit),
            Err(rejected) => reasons.push(format!("{}: {rejected}", slot.worker.id())),
        }
    }
    Choice::Wait(reasons.join("; "))
}
