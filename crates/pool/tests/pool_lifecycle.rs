//! The pool's life around requests, with real CPU workers (all-MiniLM-L6-v2):
//! the journal it keeps, health checks that recover a dead worker, measured
//! latencies that outlive the pool, priors that only start the table,
//! sharded pipelines equal to the whole model (and surviving a dead stage
//! worker), and a memory budget that unloads the least recently used model.

#[path = "../../models/tests/common/mod.rs"]
mod common;

use ipfs_accelerate_models::{LayerRange, StageOutput};
use ipfs_accelerate_pool::journal::{Journal, Outcome, StatsFilter};
use ipfs_accelerate_pool::queue::Priority;
use ipfs_accelerate_pool::{Health, LocalWorker, Pool, PoolConfig, PoolError, Prior, Worker, WorkerError, WorkerKind};
use ipfs_accelerate_tensor::Tensor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A real CPU worker that can be "killed": it then fails requests and
/// health checks until `recover` brings it back (as a restarted browser).
struct Crashable {
    id: String,
    kind: WorkerKind,
    inner: LocalWorker,
    dead: AtomicBool,
    /// `recover` fails this many more times before it works.
    recover_failures: AtomicUsize,
    recovered: AtomicUsize,
    calls: AtomicUsize,
    /// Answers NaN vectors (a confused or hostile worker) until recovered.
    garbage: AtomicBool,
}

impl Crashable {
    fn new(id: &str, kind: WorkerKind) -> Arc<Crashable> {
        Arc::new(Crashable {
            id: id.into(),
            kind,
            inner: LocalWorker::cpu(id),
            dead: AtomicBool::new(false),
            recover_failures: AtomicUsize::new(0),
            recovered: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
            garbage: AtomicBool::new(false),
        })
    }

    fn check(&self) -> Result<(), WorkerError> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(WorkerError { worker: self.id.clone(), message: "the page went away".into() });
        }
        Ok(())
    }
}

impl Worker for Crashable {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> WorkerKind {
        self.kind
    }
    fn embed(&self, model: &Path, texts: &[&str]) -> Result<Vec<Vec<f32>>, WorkerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        if self.garbage.load(Ordering::SeqCst) {
            return Ok(texts.iter().map(|_| vec![f32::NAN; 384]).collect());
        }
        self.inner.embed(model, texts)
    }
    fn embed_stage(
        &self,
        model: &Path,
        texts: &[&str],
        range: LayerRange,
        hidden: Option<&Tensor>,
    ) -> Result<StageOutput, WorkerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.embed_stage(model, texts, range, hidden)
    }
    fn has_loaded(&self, model: &Path) -> bool {
        self.inner.has_loaded(model)
    }
    fn loaded_models(&self) -> Vec<PathBuf> {
        self.inner.loaded_models()
    }
    fn health(&self, _timeout: Duration) -> Result<(), WorkerError> {
        self.check()
    }
    fn recover(&self) -> Result<(), WorkerError> {
        if self.recover_failures.load(Ordering::SeqCst) > 0 {
            self.recover_failures.fetch_sub(1, Ordering::SeqCst);
            return Err(WorkerError { worker: self.id.clone(), message: "the browser did not start".into() });
        }
        self.dead.store(false, Ordering::SeqCst);
        self.garbage.store(false, Ordering::SeqCst);
        self.recovered.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn fast_health() -> PoolConfig {
    PoolConfig { dispatchers: 2, health_interval: Duration::from_millis(50), ..PoolConfig::default() }
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn the_journal_holds_every_request_once_with_its_inferences_and_placements() {
    let Some(model) = common::test_model("all-MiniLM-L6-v2") else { return };
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(Journal::open(dir.path().join("journal.sqlite3")).unwrap());
    let (a, b) = (Crashable::new("a", WorkerKind::NativeCpu), Crashable::new("b", WorkerKind::NativeCpu));
    {
        let pool = Pool::with_journal(PoolConfig { dispatchers: 2, ..fast_health() }, journal.clone());
        pool.add_worker(a.clone());
        pool.add_worker(b.clone());
        let tickets: Vec<_> =
            (0..20).map(|i| pool.submit(&model, vec![format!("text {i}")], Priority::Normal).unwrap()).collect();
        // Worker a dies halfway: its requests are retried on b.
        a.dead.store(true, Ordering::SeqCst);
        for t in tickets {
            t.wait().unwrap();
        }
        let bad = pool.submit(&model, Vec::new(), Priority::Normal).err().unwrap();
        assert!(matches!(bad, PoolError::BadRequest(_)), "{bad:?}");
    }
    let model_key = model.display().to_string();
    let rows = journal.inferences(&StatsFilter::default()).unwrap();
    let ok = rows.iter().filter(|r| r.record.status == Outcome::Ok).count();
    assert_eq!(ok, 20, "one successful inference per request");
    let calls = a.calls.load(Ordering::SeqCst) + b.calls.load(Ordering::SeqCst);
    assert_eq!(rows.len(), calls, "one row per worker call, failed ones included");
    assert!(rows.iter().all(|r| r.record.request_id.is_some() && r.record.model == model_key));
    assert!(journal.pending_requests().unwrap().is_empty(), "every accepted request was completed");
    let mut ids: Vec<_> = rows.iter().filter(|r| r.record.status == Outcome::Ok).map(|r| r.record.request_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20, "no request answered twice");
    let placements = journal.placements().unwrap();
    assert!(placements.iter().any(|p| p.worker_id == "b" && p.model == model_key), "{placements:?}");
    let workers = journal.workers().unwrap();
    assert_eq!(workers.len(), 2);
    assert_eq!(workers[0].worker.kind, "native-cpu");
}

#[test]
fn a_worker_failing_its_health_check_is_recovered_and_serves_again() {
    let Some(model) = common::test_model("all-MiniLM-L6-v2") else { return };
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(Journal::open(dir.path().join("journal.sqlite3")).unwrap());
    let pool = Pool::with_journal(fast_health(), journal.clone());
    let (flaky, steady) =
        (Crashable::new("flaky", WorkerKind::BrowserWebgpu), Crashable::new("steady", WorkerKind::NativeCpu));
    flaky.recover_failures.store(2, Ordering::SeqCst);
    pool.add_worker(flaky.clone());
    pool.add_worker(steady.clone());
    pool.embed(&model, &["warm both up"]).unwrap();
    flaky.dead.store(true, Ordering::SeqCst);
    // Requests keep being answered while it is down.
    for i in 0..5 {
        pool.embed(&model, &[&format!("while down {i}")]).unwrap();
    }
    wait_until("the recovery", Duration::from_secs(20), || flaky.recovered.load(Ordering::SeqCst) == 1);
    wait_until("the ready state", Duration::from_secs(5), || {
        pool.status().iter().any(|s| s.id == "flaky" && s.health == Health::Ready && s.recoveries == 1)
    });
    let status = pool.status();
    let flaky_status = status.iter().find(|s| s.id == "flaky").unwrap();
    assert_eq!(flaky_status.circuit.state.to_string(), "closed", "recovery resets the circuit");
    // It takes requests again: make it the only worker.
    pool.remove_worker("steady");
    assert_eq!(pool.embed(&model, &["after recovery"]).unwrap().worker, "flaky");
    drop(pool);
    let states: Vec<_> = journal.workers().unwrap().into_iter().map(|w| (w.worker.id, w.worker.state)).collect();
    assert!(states.contains(&("flaky".into(), "ready".into())), "{states:?}");
    assert!(states.contains(&("steady".into(), "removed".into())), "{states:?}");
}

#[test]
fn measured_latencies_outlive_the_pool_and_override_priors() {
    let Some(model) = common::test_model("all-MiniLM-L6-v2") else { return };
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(Journal::open(dir.path().join("journal.sqlite3")).unwrap());
    // The prior says the (really CPU) "webnn" worker is far faster: it is tried first.
    let priors = vec![
        Prior {
            model_type: Some("text-embedding".into()),
            kind: WorkerKind::BrowserWebnn,
            browser: None,
            latency_ms: 0.01,
        },
        Prior { model_type: None, kind: WorkerKind::NativeCpu, browser: None, latency_ms: 1e6 },
    ];
    let config = PoolConfig { dispatchers: 1, priors, ..fast_health() };
    {
        let pool = Pool::with_journal(config.clone(), journal.clone());
        let (webnn, cpu) =
            (Crashable::new("webnn", WorkerKind::BrowserWebnn), Crashable::new("cpu", WorkerKind::NativeCpu));
        pool.add_worker(cpu.clone());
        pool.add_worker(webnn.clone());
        assert_eq!(pool.embed(&model, &["first"]).unwrap().worker, "webnn", "the prior picks the first worker");
        let rows = pool.latencies();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].worker_kind, "browser-webnn");
        assert!(rows[0].ms > 0.01, "the measurement replaced the prior: {rows:?}");
    }
    let saved = journal.latencies().unwrap();
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert_eq!(saved[0].model, model.display().to_string());
    assert_eq!(saved[0].samples, 1);
    let pool = Pool::with_journal(config, journal);
    assert_eq!(
        pool.latencies(),
        saved
            .iter()
            .map(|r| ipfs_accelerate_pool::journal::LatencyRow { updated_at: 0, ..r.clone() })
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_sharded_pipeline_equals_the_whole_model_and_survives_a_dead_stage_worker() {
    let Some(model) = common::test_model("all-MiniLM-L6-v2") else { return };
    let direct = LocalWorker::cpu("direct");
    let texts: Vec<String> = ["a short one", "a somewhat longer sentence about content addressed weights", "third"]
        .map(String::from)
        .to_vec();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let want = direct.embed(&model, &refs).unwrap();
    let pool = Pool::new(PoolConfig { dispatchers: 1, ..fast_health() });
    let workers: Vec<_> = ["s0", "s1", "s2"].iter().map(|id| Crashable::new(id, WorkerKind::NativeCpu)).collect();
    for w in &workers {
        pool.add_worker(w.clone());
    }
    let answer = pool.submit_sharded(&model, texts.clone(), 2, Priority::Normal).unwrap().wait().unwrap();
    assert_eq!(answer.stages.len(), 2);
    assert_ne!(answer.stages[0], answer.stages[1], "each stage on a worker of its own");
    for (g, w) in answer.embeddings.iter().zip(&want) {
        assert!(max_diff(g, w) < 1e-5);
    }
    // The second stage's worker dies: that stage moves, the request completes.
    let second = workers.iter().find(|w| w.id == answer.stages[1]).unwrap();
    second.dead.store(true, Ordering::SeqCst);
    let again = pool.submit_sharded(&model, texts.clone(), 2, Priority::Normal).unwrap().wait().unwrap();
    assert_eq!(again.stages[0], answer.stages[0], "the first stage stays where its layers are");
    assert_ne!(again.stages[1], answer.stages[1]);
    for (g, w) in again.embeddings.iter().zip(&want) {
        assert!(max_diff(g, w) < 1e-5);
    }
    let bad = pool.submit_sharded(&model, texts.clone(), 0, Priority::Normal).err().unwrap();
    assert!(bad.to_string().contains("at least 1"), "{bad}");
    match pool.submit_sharded(&model, texts, 7, Priority::Normal).unwrap().wait() {
        Err(PoolError::BadRequest(m)) => assert!(m.contains("7"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_memory_budget_unloads_the_least_recently_used_model() {
    let Some(model) = common::test_model("all-MiniLM-L6-v2") else { return };
    let dir = tempfile::tempdir().unwrap();
    // A second model: the same files (linked) under another directory.
    let copy = dir.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(&model).unwrap() {
        let entry = entry.unwrap();
        std::os::unix::fs::symlink(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    let weights = std::fs::metadata(model.join("model.safetensors")).unwrap().len();
    let worker = LocalWorker::cpu("budget").with_memory_budget(weights + weights / 2);
    let first = worker.embed(&model, &["one"]).unwrap();
    assert_eq!(worker.loaded_models(), vec![model.clone()]);
    let second = worker.embed(&copy, &["one"]).unwrap();
    assert_eq!(worker.loaded_models(), vec![copy.clone()], "the first model made room");
    assert!(max_diff(&first[0], &second[0]) < 1e-6);
    let tiny = LocalWorker::cpu("tiny").with_memory_budget(weights / 2);
    let err = tiny.embed(&model, &["one"]).unwrap_err();
    assert!(err.message.contains("memory budget"), "{err}");
}

#[test]
fn a_worker_answering_garbage_is_not_believed_and_is_restarted() {
    let Some(model) = common::test_model("all-MiniLM-L6-v2") else { return };
    let want = LocalWorker::cpu("direct").embed(&model, &["some text"]).unwrap();
    let pool = Pool::new(PoolConfig { dispatchers: 1, ..fast_health() });
    let liar = Crashable::new("liar", WorkerKind::BrowserWebgpu);
    liar.garbage.store(true, Ordering::SeqCst);
    pool.add_worker(liar.clone());
    pool.add_worker(Crashable::new("honest", WorkerKind::NativeCpu));
    // The unmeasured liar is tried first; its answer is refused and the
    // request goes to the honest worker.
    let answer = pool.embed(&model, &["some text"]).unwrap();
    assert_eq!(answer.worker, "honest");
    assert_eq!(answer.attempts, 2);
    assert!(max_diff(&answer.embeddings[0], &want[0]) < 1e-6);
    wait_until("the liar's restart", Duration::from_secs(10), || liar.recovered.load(Ordering::SeqCst) == 1);
}

#[test]
fn a_model_no_worker_can_run_fails_at_once_naming_what_is_missing() {
    let Some(model) = common::test_model("all-MiniLM-L6-v2") else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}"#)
        .unwrap();
    let pool = Pool::new(fast_health());
    pool.add_worker(Arc::new(LocalWorker::cpu("cpu-0")));
    pool.add_worker(Arc::new(
        ipfs_accelerate_pool::EngineWorker::new(
            "only-minilm",
            WorkerKind::NativeCpu,
            &model,
            ipfs_accelerate_models::Engine::Cpu(ipfs_accelerate_models::CpuEngine::new()),
        )
        .unwrap(),
    ));
    let start = Instant::now();
    match pool.embed(dir.path(), &["x"]) {
        Err(PoolError::NoWorker { reason, .. }) => {
            assert!(reason.contains("cpu-0: ") && reason.contains("llama"), "{reason}");
            assert!(reason.contains("only-minilm: it serves only"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    match pool.embed(&dir.path().join("absent"), &["x"]) {
        Err(PoolError::NoWorker { reason, .. }) => assert!(reason.contains("absent"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(5), "no retries, no waiting");
}
