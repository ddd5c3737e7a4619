//! The chaos test: a pool of three real headless Chromium workers (WebGPU on
//! SwiftShader here) and one CPU worker serves 500 embedding requests from
//! 16 concurrent callers while a random running browser is SIGKILLed about
//! every 2 s. Every request must be answered, each answer equal to the CPU
//! result, none twice, and the journal must agree afterwards: 500 requests
//! accepted and completed `ok`, exactly one successful inference each, and
//! the failed inferences only on the browsers that were killed. The killed
//! browsers must have been restarted by the pool's health thread.
//!
//! Skipped with a notice without chromium or the test model, unless `CI=true`.

#[path = "../../models/tests/common/mod.rs"]
mod common;

use ipfs_accelerate_browser::discover::{find, BrowserKind};
use ipfs_accelerate_browser::{BrowserBackend, BrowserLaunch};
use ipfs_accelerate_pool::journal::{Journal, Outcome, StatsFilter};
use ipfs_accelerate_pool::queue::Priority;
use ipfs_accelerate_pool::{BrowserWorker, LocalWorker, Pool, PoolConfig, Worker};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const REQUESTS: usize = 500;
const CALLERS: usize = 16;

/// About 2 s between kills; `CHAOS_KILL_EVERY_MS` changes it (0: no kills,
/// to see the pool under load alone).
fn kill_every() -> Option<Duration> {
    let ms = std::env::var("CHAOS_KILL_EVERY_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    (ms > 0).then(|| Duration::from_millis(ms))
}
/// Browser (f32 WebGPU) against CPU: only summation order differs.
const TOLERANCE: f32 = 1e-4;

/// A small deterministic generator (xorshift), so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[test]
fn five_hundred_requests_survive_a_browser_killed_every_two_seconds() {
    let Some(model) = common::test_model("all-MiniLM-L6-v2") else { return };
    let Some(chromium) = find(BrowserKind::Chromium) else {
        assert!(!std::env::var("CI").is_ok_and(|v| v == "true" || v == "1"), "CI=true and no chromium");
        eprintln!("SKIPPED: no chromium (apt-get install chromium, or IPFS_ACCELERATE_CHROMIUM)");
        return;
    };
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let texts: Vec<String> = (0..REQUESTS)
        .map(|i| format!("chaos request {i}: {}", "content addressed weights ".repeat(1 + i % 7)))
        .collect();
    let reference = LocalWorker::cpu("reference");
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let want = reference.embed(&model, &refs).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(Journal::open(dir.path().join("journal.sqlite3")).unwrap());
    let config = PoolConfig {
        dispatchers: CALLERS,
        max_attempts: 6,
        health_interval: Duration::from_millis(250),
        health_timeout: Duration::from_secs(5),
        min_warm_browsers: 3,
        ..PoolConfig::default()
    };
    let pool = Arc::new(Pool::with_journal(config, journal.clone()));
    let browsers: Vec<Arc<BrowserWorker>> = (0..3)
        .map(|i| {
            let launch = BrowserLaunch {
                browser: Some(chromium.path.to_string_lossy().into_owned()),
                bridge_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                data_dir: None,
                ..BrowserLaunch::new(BrowserBackend::WebGpu)
            };
            Arc::new(BrowserWorker::new(format!("browser-{i}"), BrowserBackend::WebGpu, launch))
        })
        .collect();
    for b in &browsers {
        pool.add_worker(b.clone());
    }
    pool.add_worker(Arc::new(LocalWorker::cpu("cpu")));
    let failed_to_start = pool.warm_up();
    assert!(failed_to_start.is_empty(), "{failed_to_start:?}");
    // Load the model on every browser first (seconds on SwiftShader), so
    // the browsers serve from the start instead of loading through the
    // first kills.
    std::thread::scope(|s| {
        for b in &browsers {
            let model = &model;
            s.spawn(move || b.embed(model, &["warm-up"]).expect("the browser loads the model"));
        }
    });

    // The killer: a random running browser about every 2 s while callers run.
    let done = Arc::new(AtomicBool::new(false));
    let kill_every = kill_every();
    let killer = {
        let (done, browsers) = (done.clone(), browsers.clone());
        std::thread::spawn(move || {
            let mut rng = Rng(0x5eed_cafe);
            let mut killed: Vec<String> = Vec::new();
            let Some(every) = kill_every else { return killed };
            let mut next = Instant::now() + every;
            while !done.load(Ordering::SeqCst) {
                if Instant::now() < next {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                next += every;
                // A browser that is running (not already dead or restarting).
                let running: Vec<_> = browsers.iter().filter(|b| b.browser_pid().is_some() && !b.is_down()).collect();
                if running.is_empty() {
                    continue;
                }
                let victim = running[rng.below(running.len())];
                victim.kill_browser();
                killed.push(victim.id().to_string());
            }
            killed
        })
    };

    let start = Instant::now();
    let chunk = REQUESTS / CALLERS + 1;
    let callers: Vec<_> = (0..REQUESTS)
        .collect::<Vec<_>>()
        .chunks(chunk)
        .map(|indexes| {
            let (pool, model, indexes) = (pool.clone(), model.clone(), indexes.to_vec());
            let texts: Vec<String> = indexes.iter().map(|&i| texts[i].clone()).collect();
            std::thread::spawn(move || {
                indexes
                    .into_iter()
                    .zip(texts)
                    .map(|(i, text)| {
                        let answer = pool.submit(&model, vec![text], Priority::Normal).unwrap().wait();
                        (i, answer)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let answers: Vec<_> = callers.into_iter().flat_map(|c| c.join().unwrap()).collect();
    // Let the killer go on until at least a few kills happened.
    while kill_every.is_some_and(|every| start.elapsed() < every * 3 + Duration::from_millis(100)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    done.store(true, Ordering::SeqCst);
    let killed = killer.join().unwrap();
    let elapsed = start.elapsed();

    // Every request answered once, equal to the CPU.
    assert_eq!(answers.len(), REQUESTS);
    let mut by_worker: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (i, answer) in &answers {
        assert!(seen.insert(*i), "request {i} answered twice");
        let answer = answer.as_ref().unwrap_or_else(|e| panic!("request {i} failed: {e}"));
        let diff = answer.embeddings[0].iter().zip(&want[*i]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(diff <= TOLERANCE, "request {i} on {} differs from the CPU by {diff}", answer.worker);
        *by_worker.entry(answer.worker.clone()).or_default() += 1;
    }
    let status = pool.status();
    eprintln!(
        "chaos: {REQUESTS} requests in {elapsed:.1?}, answered by {by_worker:?}; killed {killed:?}; status {:?}",
        status.iter().map(|s| (s.id.clone(), s.state(), s.failed, s.recoveries)).collect::<Vec<_>>()
    );
    let errors: BTreeSet<String> = journal
        .inferences(&StatsFilter::default())
        .unwrap()
        .into_iter()
        .filter_map(|r| r.record.error.map(|e| format!("{}: {}", r.record.worker_id.unwrap_or_default(), e)))
        .collect();
    eprintln!("chaos: distinct worker errors: {errors:#?}");
    assert!(kill_every.is_none() || killed.len() >= 3, "the killer ran: {killed:?}");
    assert!(by_worker.keys().any(|w| w.starts_with("browser-")), "browsers took part: {by_worker:?}");

    // The killed browsers come back.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pool.status().iter().all(|s| s.state() == "ready") {
        assert!(Instant::now() < deadline, "not every worker recovered: {:?}", pool.status());
        std::thread::sleep(Duration::from_millis(100));
    }
    let restarts: u64 = browsers.iter().map(|b| b.restarts()).sum();
    assert!(kill_every.is_none() || restarts >= 1, "killed browsers were restarted");
    drop(pool);

    // The journal agrees.
    assert!(journal.pending_requests().unwrap().is_empty(), "every accepted request was completed");
    let rows = journal.inferences(&StatsFilter::default()).unwrap();
    let mut ok_per_request: BTreeMap<i64, usize> = BTreeMap::new();
    for row in &rows {
        let request = row.record.request_id.expect("every inference belongs to a request").0;
        match row.record.status {
            Outcome::Ok => *ok_per_request.entry(request).or_default() += 1,
            _ => {
                let worker = row.record.worker_id.as_deref().unwrap_or_default();
                assert!(worker.starts_with("browser-"), "only killed browsers failed: {row:?}");
            }
        }
    }
    assert_eq!(ok_per_request.len(), REQUESTS, "one successful inference per request");
    assert!(ok_per_request.values().all(|&n| n == 1), "no request answered twice");
    for (request, _) in ok_per_request {
        let row = journal.request(ipfs_accelerate_pool::journal::RequestId(request)).unwrap().unwrap();
        assert_eq!(row.status, Some(Outcome::Ok), "{row:?}");
    }
    assert_eq!(journal.workers().unwrap().len(), 4);
}
