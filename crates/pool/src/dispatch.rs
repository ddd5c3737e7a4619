//! Dispatchers: take a request from the queue, choose a worker, run it
//! there, and answer — or put it back for another worker.
//!
//! Choosing a worker: among those that are ready, can serve the model and
//! whose circuit breaker lets a request through, the one with the lowest
//! expected wait — its expected latency for this model (the measured moving
//! average for its kind and browser, else the config's prior; a worker with
//! neither is tried first, so new workers get measured) times one plus the
//! requests it is running — halved when the model is already loaded there,
//! plus the cold-start cost when it is not running yet. A failure counts
//! against the worker's breaker, wakes the health thread, and the request
//! goes back to the front of the queue for another worker, up to
//! [`crate::PoolConfig::max_attempts`] tries. While every capable worker is
//! unavailable the request waits (up to the request timeout); when no worker
//! can serve the model at all it fails at once, saying so.

use crate::circuit::Permit;
use crate::journal::{InferenceRecord, Outcome, RequestId};
use crate::pool::{Answer, Inner, PoolError, Slot, READY};
use crate::queue::Priority;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// The model type of every request the pool takes today (priors match it).
const MODEL_TYPE: &str = "text-embedding";

/// A request on its way through the pool.
pub(crate) struct Job {
    pub(crate) model: PathBuf,
    /// `model` as text: the key of the latency table and the journal.
    pub(crate) model_key: String,
    pub(crate) texts: Vec<String>,
    /// Pipeline stages, for a sharded request.
    pub(crate) shards: Option<usize>,
    reply: mpsc::Sender<Result<Answer, PoolError>>,
    pub(crate) request_id: Option<RequestId>,
    /// One per worker call, written with the answer.
    pub(crate) inferences: Vec<InferenceRecord>,
    pub(crate) failures: Vec<String>,
    pub(crate) tried: Vec<String>,
    pub(crate) accepted: Instant,
}

impl Job {
    pub(crate) fn new(
        model: PathBuf,
        model_key: String,
        texts: Vec<String>,
        shards: Option<usize>,
        reply: mpsc::Sender<Result<Answer, PoolError>>,
        request_id: Option<RequestId>,
    ) -> Job {
        Job {
            model,
            model_key,
            texts,
            shards,
            reply,
            request_id,
            inferences: Vec::new(),
            failures: Vec::new(),
            tried: Vec::new(),
            accepted: Instant::now(),
        }
    }

    /// Sends the one answer, and journals it with the job's inferences.
    pub(crate) fn answer(self, inner: &Inner, result: Result<Answer, PoolError>) {
        if let Some(id) = self.request_id {
            let (status, error) = match &result {
                Ok(_) => (Outcome::Ok, None),
                Err(e @ PoolError::Busy(_)) => (Outcome::Busy, Some(e.to_string())),
                Err(e) => (Outcome::Error, Some(e.to_string())),
            };
            inner.journal("an answer", |j| j.finish_request(id, status, error.as_deref(), &self.inferences));
        }
        let _ = self.reply.send(result);
    }
}

pub(crate) fn dispatch_loop(inner: &Inner) {
    loop {
        match inner.queue.pop(Duration::from_millis(200)) {
            Some(job) => handle(inner, job),
            // Closed and drained: every queued request has had its answer.
            None if inner.queue.is_closed() && inner.queue.is_empty() => return,
            None => {}
        }
    }
}

/// What the scheduler decided for one call.
pub(crate) enum Choice {
    Run(Arc<Slot>, Permit),
    /// Capable workers exist but none can take it now: why.
    Wait(String),
    /// No worker can run the model.
    Never(String),
}

fn handle(inner: &Inner, job: Job) {
    if job.shards.is_some() {
        return crate::shard::handle(inner, job);
    }
    match choose(inner, &job.model, &job.model_key, &job.tried, None) {
        Choice::Never(reason) => {
            let error = PoolError::NoWorker { model: job.model_key.clone(), reason };
            job.answer(inner, Err(error));
        }
        Choice::Wait(reason) => wait_or_time_out(inner, job, reason),
        Choice::Run(slot, permit) => run_on(inner, job, slot, permit),
    }
}

/// Puts a job back to wait for a worker, or answers it when it waited long enough.
pub(crate) fn wait_or_time_out(inner: &Inner, job: Job, reason: String) {
    let waited = job.accepted.elapsed();
    if waited >= inner.config.request_timeout || inner.queue.is_closed() {
        let error = PoolError::Timeout { model: job.model_key.clone(), waited, reason };
        job.answer(inner, Err(error));
        return;
    }
    std::thread::sleep(Duration::from_millis(10));
    requeue(inner, job);
}

fn run_on(inner: &Inner, mut job: Job, slot: Arc<Slot>, permit: Permit) {
    let texts: Vec<&str> = job.texts.iter().map(String::as_str).collect();
    let (result, latency) = call(inner, &slot, || slot.worker.embed(&job.model, &texts));
    let result = match result {
        Ok(v) => match garbage(&v, job.texts.len()) {
            None => Ok(v),
            Some(what) => {
                // Not a failure to run but a wrong answer: do not trust the
                // worker until it is restarted (reconnected).
                slot.needs_recovery.store(true, Ordering::SeqCst);
                Err(format!("worker {} answered garbage ({what}); it will be restarted", slot.worker.id()))
            }
        },
        Err(e) => Err(e.to_string()),
    };
    record_inference(inner, &mut job, &slot, latency, result.as_ref().err());
    match result {
        Ok(embeddings) => {
            succeeded(inner, &slot, permit, &job.model_key, latency);
            note_placement(inner, &slot, &job.model);
            let answer = Answer {
                embeddings,
                worker: slot.worker.id().to_string(),
                kind: slot.worker.kind(),
                latency,
                attempts: job.tried.len() + 1,
                stages: Vec::new(),
            };
            job.answer(inner, Ok(answer));
        }
        Err(message) => {
            failed(inner, &slot, permit, &message);
            job.failures.push(message);
            job.tried.push(slot.worker.id().to_string());
            if job.tried.len() >= inner.config.max_attempts {
                let error = PoolError::Failed {
                    model: job.model_key.clone(),
                    attempts: job.tried.len(),
                    failures: std::mem::take(&mut job.failures),
                };
                job.answer(inner, Err(error));
            } else {
                requeue(inner, job);
            }
        }
    }
}

/// What is wrong with an embedding answer for `texts` texts, if anything:
/// the wrong number of vectors, vectors of different lengths, empty ones,
/// or values that are not finite.
pub(crate) fn garbage(vectors: &[Vec<f32>], texts: usize) -> Option<String> {
    if vectors.len() != texts {
        return Some(format!("{} vectors for {texts} texts", vectors.len()));
    }
    let dim = vectors.first().map_or(0, Vec::len);
    if dim == 0 || vectors.iter().any(|v| v.len() != dim) {
        return Some("vectors of different or zero lengths".into());
    }
    if vectors.iter().flatten().any(|x| !x.is_finite()) {
        return Some("values that are not finite numbers".into());
    }
    None
}

/// Runs `f` on `slot`, counting it in flight, and times it.
pub(crate) fn call<T>(inner: &Inner, slot: &Slot, f: impl FnOnce() -> T) -> (T, Duration) {
    slot.in_flight.fetch_add(1, Ordering::SeqCst);
    let start = Instant::now();
    let result = f();
    let latency = start.elapsed();
    slot.in_flight.fetch_sub(1, Ordering::SeqCst);
    // A browser this call started: its journal row and latency go under its
    // name, and the journal learns it (once: after that it is known).
    if slot.browser_unknown() && slot.refresh_identity().browser.is_some() {
        inner.register(slot);
    }
    (result, latency)
}

/// Books a success: the breaker, the counters, the latency table.
pub(crate) fn succeeded(inner: &Inner, slot: &Slot, permit: Permit, model_key: &str, latency: Duration) {
    permit.success();
    slot.answered.fetch_add(1, Ordering::Relaxed);
    let alpha = inner.config.latency_smoothing.clamp(0.01, 1.0);
    let ms = latency.as_secs_f64() * 1e3;
    let family = slot.identity().family;
    inner.latency.lock().unwrap_or_else(|p| p.into_inner()).record(model_key, slot.worker.kind(), &family, ms, alpha);
}

/// Journals a model newly loaded on the worker (the health thread catches
/// unloads).
pub(crate) fn note_placement(inner: &Inner, slot: &Slot, model: &std::path::Path) {
    if inner.journal.is_some() && !slot.placed.lock().unwrap_or_else(|p| p.into_inner()).contains(model) {
        crate::health::sync_placements(inner, slot);
    }
}

/// Books a failure and asks the health thread to look at the worker now.
pub(crate) fn failed(inner: &Inner, slot: &Slot, permit: Permit, message: &str) {
    permit.failure();
    slot.failed.fetch_add(1, Ordering::Relaxed);
    tracing::info!(worker = slot.worker.id(), %message, "a worker failed; retrying elsewhere");
    inner.wake_health();
}

/// Keeps the journal row of one worker call, to be written with the
/// answer; nothing is kept when the pool has no journal.
pub(crate) fn record_inference(inner: &Inner, job: &mut Job, slot: &Slot, latency: Duration, error: Option<&String>) {
    if inner.journal.is_some() {
        let record = inference(job, slot, latency, error);
        job.inferences.push(record);
    }
}

/// The journal row of one worker call.
fn inference(job: &Job, slot: &Slot, latency: Duration, error: Option<&String>) -> InferenceRecord {
    let identity = slot.identity();
    InferenceRecord {
        worker_id: Some(slot.worker.id().to_string()),
        browser: identity.browser,
        precision: identity.precision,
        latency_ms: latency.as_secs_f64() * 1e3,
        items: job.texts.len() as u64,
        status: if error.is_some() { Outcome::Error } else { Outcome::Ok },
        error: error.cloned(),
        ..InferenceRecord::new(job.model_key.clone(), slot.worker.kind().as_str())
    }
}

/// Puts a job back at the front; if even that fails (the queue is full or
/// closed) the job is answered rather than lost.
pub(crate) fn requeue(inner: &Inner, job: Job) {
    if let Err(busy) = inner.queue.push(job, Priority::High) {
        let error = if inner.queue.is_closed() { PoolError::Closed } else { PoolError::Busy(busy.capacity) };
        busy.item.answer(inner, Err(error));
    }
}

/// Picks the worker for one call on `model`, avoiding those in `tried`;
/// `prefer` (a stage's placed worker) wins when it is available.
pub(crate) fn choose(
    inner: &Inner,
    model: &std::path::Path,
    model_key: &str,
    tried: &[String],
    prefer: Option<&str>,
) -> Choice {
    let slots = inner.slots.read().unwrap_or_else(|p| p.into_inner());
    let mut missing = Vec::new();
    let capable: Vec<&Arc<Slot>> = slots
        .iter()
        .filter(|s| match s.worker.unsupported(model) {
            None => true,
            Some(why) => {
                missing.push(format!("{}: {why}", s.worker.id()));
                false
            }
        })
        .collect();
    if capable.is_empty() {
        let reason = if slots.is_empty() { "the pool has no workers".to_string() } else { missing.join("; ") };
        return Choice::Never(reason);
    }
    let mut reasons = Vec::new();
    let latency = inner.latency.lock().unwrap_or_else(|p| p.into_inner());
    let mut ranked: Vec<(f64, &Arc<Slot>)> = Vec::with_capacity(capable.len());
    for s in capable {
        if s.health.load(Ordering::SeqCst) != READY {
            reasons.push(format!("{}: {}", s.worker.id(), s.status().state()));
            continue;
        }
        let in_flight = s.in_flight.load(Ordering::SeqCst);
        let family = &s.identity.read().unwrap_or_else(|p| p.into_inner()).family;
        let expected = match latency.expected(model_key, MODEL_TYPE, s.worker.kind(), family) {
            Some(ms) => ms,
            // Unmeasured: tried first, but one request at a time until its
            // first answer says what it costs (a browser's first request
            // loads the model, which may take seconds).
            None if in_flight == 0 => 0.0,
            None => inner.config.cold_start_ms,
        };
        let load = (in_flight + 1) as f64;
        let affinity = if s.worker.has_loaded(model) { 0.5 } else { 1.0 };
        let cold = if s.worker.is_warm() { 0.0 } else { inner.config.cold_start_ms };
        // Workers this request already failed on go last; a stage's own worker first.
        let retry_penalty = if tried.iter().any(|t| t == s.worker.id()) { 1e12 } else { 0.0 };
        let preferred = if prefer == Some(s.worker.id()) { -1e12 } else { 0.0 };
        ranked.push((expected.max(0.001) * load * affinity + cold + retry_penalty + preferred, s));
    }
    drop(latency);
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (_, slot) in ranked {
        match slot.breaker.try_acquire() {
            Ok(permit) => return Choice::Run(slot.clone(), permit),
            Err(rejected) => reasons.push(format!("{}: {rejected}", slot.worker.id())),
        }
    }
    Choice::Wait(reasons.join("; "))
}
