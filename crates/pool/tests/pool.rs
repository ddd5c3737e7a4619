//! The pool with real CPU workers (all-MiniLM-L6-v2) and injected faults:
//! every request gets exactly one answer equal to the direct CPU result, a
//! dying worker's requests are retried elsewhere and its circuit opens, a
//! full queue answers "busy", and a model no worker serves fails at once.

#[path = "../../models/tests/common/mod.rs"]
mod common;

use ipfs_accelerate_pool::circuit::CircuitConfig;
use ipfs_accelerate_pool::queue::Priority;
use ipfs_accelerate_pool::{LocalWorker, Pool, PoolConfig, PoolError, Worker, WorkerError, WorkerKind};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

/// A real worker that can be made to fail (as a killed browser would) or to
/// hold requests until released.
struct Faulty {
    id: String,
    inner: LocalWorker,
    dead: AtomicBool,
    calls: AtomicUsize,
    gate: Mutex<Option<Arc<Barrier>>>,
}

impl Faulty {
    fn new(id: &str) -> Arc<Faulty> {
        Arc::new(Faulty {
            id: id.into(),
            inner: LocalWorker::cpu(id),
            dead: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
            gate: Mutex::default(),
        })
    }
}

impl Worker for Faulty {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> WorkerKind {
        WorkerKind::NativeCpu
    }
    fn embed(&self, model: &Path, texts: &[&str]) -> Result<Vec<Vec<f32>>, WorkerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        // Clone first: the lock must not be held while waiting.
        let gate = self.gate.lock().unwrap().clone();
        if let Some(gate) = gate {
            gate.wait();
        }
        if self.dead.load(Ordering::SeqCst) {
            return Err(WorkerError { worker: self.id.clone(), message: "the browser disconnected".into() });
        }
        self.inner.embed(model, texts)
    }
    fn has_loaded(&self, model: &Path) -> bool {
        self.inner.has_loaded(model)
    }
    fn health(&self, timeout: Duration) -> Result<(), WorkerError> {
        self.inner.health(timeout)
    }
}

#[test]
fn every_request_is_answered_once_and_equal_to_the_cpu_while_a_worker_dies() {
    let Some(model) = common::test_model("all-MiniLM-L6-v2") else { return };
    let direct = LocalWorker::cpu("direct");
    let pool = Arc::new(Pool::new(PoolConfig { dispatchers: 4, ..PoolConfig::default() }));
    let (a, b, c) = (Faulty::new("a"), Faulty::new("b"), Faulty::new("c"));
    for w in [&a, &b, &c] {
        pool.add_worker(w.clone());
    }
    let texts: Vec<String> = (0..48).map(|i| format!("request number {i} about content addressing")).collect();
    let want: Vec<Vec<f32>> = texts.iter().map(|t| direct.embed(&model, &[t.as_str()]).unwrap().remove(0)).collect();
    let callers: Vec<_> = texts
        .chunks(12)
        .map(|chunk| {
            let (pool, model, chunk) = (pool.clone(), model.clone(), chunk.to_vec());
            std::thread::spawn(move || {
                chunk
                    .iter()
                    .map(|t| pool.embed(&model, &[t.as_str()]).map(|a| a.embeddings[0].clone()))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    // Kill one worker while the callers run.
    std::thread::sleep(Duration::from_millis(30));
    b.dead.store(true, Ordering::SeqCst);
    let got: Vec<_> = callers.into_iter().flat_map(|c| c.join().unwrap()).collect();
    assert_eq!(got.len(), texts.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let g = g.as_ref().unwrap_or_else(|e| panic!("request {i}: {e}"));
        let max = g.iter().zip(w).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(max < 1e-5, "request {i} differs by {max}");
    }
    let status = pool.status();
    let answered: usize = status.iter().map(|s| s.answered).sum();
    assert_eq!(answered, texts.len(), "exactly one answer per request: {status:?}");
    let dead = status.iter().find(|s| s.id == "b").unwrap();
    assert_eq!(dead.answered + dead.failed, b.calls.load(Ordering::SeqCst));
}

#[test]
fn a_dead_worker_opens_its_circuit_and_stops_getting_requests() {
    let Some(model) = common::test_model("all-MiniLM-L6-v2") else { return };
    let circuit =
        CircuitConfig { failure_threshold: 1, open_for: Duration::from_secs(600), ..CircuitConfig::default() };
    let pool = Pool::new(PoolConfig { dispatchers: 1, circuit, ..PoolConfig::default() });
    let (dead, alive) = (Faulty::new("dead"), Faulty::new("alive"));
    dead.dead.store(true, Ordering::SeqCst);
    pool.add_worker(dead.clone());
    pool.add_worker(alive.clone());
    for i in 0..10 {
        let answer = pool.embed(&model, &[&format!("text {i}")]).unwrap();
        assert_eq!(answer.worker, "alive");
    }
    assert_eq!(dead.calls.load(Ordering::SeqCst), 1, "the open circuit kept requests away");
    let status = pool.status();
    let dead_status = status.iter().find(|s| s.id == "dead").unwrap();
    assert_eq!(
        dead_status.circuit.state.to_string(),
        "open",
        "{dead_status:?} calls {}",
        dead.calls.load(Ordering::SeqCst)
    );
}

#[test]
fn all_workers_failing_is_one_clear_error_per_request() {
    let Some(model) = common::test_model("all-MiniLM-L6-v2") else { return };
    let pool = Pool::new(PoolConfig { dispatchers: 1, max_attempts: 2, ..PoolConfig::default() });
    let (x, y) = (Faulty::new("x"), Faulty::new("y"));
    x.dead.store(true, Ordering::SeqCst);
    y.dead.store(true, Ordering::SeqCst);
    pool.add_worker(x);
    pool.add_worker(y);
    match pool.embed(&model, &["hello"]) {
        Err(PoolError::Failed { attempts: 2, failures, .. }) => assert_eq!(failures.len(), 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_full_queue_answers_busy_and_a_model_nobody_serves_fails_at_once() {
    let Some(model) = common::test_model("all-MiniLM-L6-v2") else { return };
    let pool = Pool::new(PoolConfig { dispatchers: 1, queue_capacity: 3, ..PoolConfig::default() });
    let held = Faulty::new("held");
    let gate = Arc::new(Barrier::new(2));
    *held.gate.lock().unwrap() = Some(gate.clone());
    pool.add_worker(held.clone());
    // One request occupies the only dispatcher; three more fill the queue.
    let first = pool.submit(&model, vec!["first".into()], Priority::Normal).unwrap();
    while held.calls.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let queued: Vec<_> =
        (0..3).map(|i| pool.submit(&model, vec![format!("queued {i}")], Priority::Normal).unwrap()).collect();
    let busy = pool.submit(&model, vec!["one too many".into()], Priority::High).err().unwrap();
    assert_eq!(busy, PoolError::Busy(3));
    assert!(busy.to_string().starts_with("busy:"));
    *held.gate.lock().unwrap() = None;
    gate.wait();
    assert!(first.wait().is_ok());
    for t in queued {
        assert!(t.wait().is_ok());
    }

    let empty = Pool::new(PoolConfig::default());
    match empty.embed(&model, &["x"]) {
        Err(PoolError::NoWorker { reason, .. }) => assert!(reason.contains("no workers"), "{reason}"),
        other => panic!("{other:?}"),
    }
}
