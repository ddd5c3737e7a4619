//! A browser worker with a real headless Chromium on WebGPU (SwiftShader
//! here): its embeddings match the CPU worker's, two models share one page
//! without mixing up their graphs, a killed browser fails its requests fast
//! and comes back with `recover`, and an idle browser closes and relaunches.
//!
//! Skipped with a notice without chromium or the test model, unless `CI=true`.

#[path = "../../models/tests/common/mod.rs"]
mod common;

use ipfs_accelerate_browser::discover::{find, BrowserKind};
use ipfs_accelerate_browser::{BrowserBackend, BrowserLaunch};
use ipfs_accelerate_pool::{BrowserWorker, LocalWorker, Worker, WorkerKind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The largest difference allowed between browser and CPU embeddings
/// (the same f32 graph; only summation order differs).
const TOLERANCE: f32 = 1e-4;

const TEXTS: [&str; 2] =
    ["The quick brown fox jumps over the lazy dog.", "Content-addressed weights are verified on load."];

/// One browser at a time: two cores cannot run several SwiftShader pages
/// without the timing checks turning flaky.
static SERIAL: Mutex<()> = Mutex::new(());

/// The test model and the chromium to run it in, or `None` (skipped with a
/// notice; a failure under CI).
fn setup() -> Option<(PathBuf, String)> {
    let dir = common::test_model("all-MiniLM-L6-v2")?;
    let Some(chromium) = find(BrowserKind::Chromium) else {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true" || v == "1"),
            "CI=true and no chromium (apt-get install chromium, or IPFS_ACCELERATE_CHROMIUM)"
        );
        eprintln!("SKIPPED: no chromium (apt-get install chromium, or IPFS_ACCELERATE_CHROMIUM)");
        return None;
    };
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        // Chromium and Mesa complain on stderr without one.
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    Some((dir, chromium.path.to_string_lossy().into_owned()))
}

/// A WebGPU browser worker with an ephemeral profile and a bridge on any free port.
fn browser_worker(id: &str, chromium: &str) -> BrowserWorker {
    let launch = BrowserLaunch {
        browser: Some(chromium.to_string()),
        bridge_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: None,
        ..BrowserLaunch::new(BrowserBackend::WebGpu)
    };
    BrowserWorker::new(id, BrowserBackend::WebGpu, launch)
}

fn assert_close(got: &[Vec<f32>], want: &[Vec<f32>], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: vector count");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.len(), w.len(), "{what}: dimensions");
        let diff = g.iter().zip(w).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(diff <= TOLERANCE, "{what}: max difference {diff} > {TOLERANCE}");
    }
}

fn process_exists(pid: u32) -> bool {
    // A reaped process has no /proc entry; a zombie shows state Z.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

/// A copy of the model in `dir` whose embedding LayerNorm bias is shifted,
/// so it embeds differently under the same shapes: a graph mix-up between
/// the two models would show.
fn shifted_copy(dir: &Path, into: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), into.join(entry.file_name())).unwrap();
        }
    }
    let pooling = dir.join("1_Pooling");
    if pooling.is_dir() {
        std::fs::create_dir_all(into.join("1_Pooling")).unwrap();
        std::fs::copy(pooling.join("config.json"), into.join("1_Pooling/config.json")).unwrap();
    }
    let path = into.join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let (name, tensor) = header
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.ends_with("embeddings.LayerNorm.bias"))
        .expect("the model has an embedding LayerNorm bias");
    assert_eq!(tensor["dtype"], "F32", "{name}");
    let start = 8 + header_len + tensor["data_offsets"][0].as_u64().unwrap() as usize;
    let end = 8 + header_len + tensor["data_offsets"][1].as_u64().unwrap() as usize;
    for (i, value) in bytes[start..end].chunks_exact_mut(4).enumerate() {
        let v = f32::from_le_bytes(value.try_into().unwrap()) + if i % 2 == 0 { 0.5 } else { -0.5 };
        value.copy_from_slice(&v.to_le_bytes());
    }
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn browser_embeddings_match_the_cpu_and_two_models_share_one_page() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some((dir, chromium)) = setup() else { return };
    let other = tempfile::tempdir().unwrap();
    shifted_copy(&dir, other.path());
    let cpu = LocalWorker::cpu("cpu");
    let want_a = cpu.embed(&dir, &TEXTS).unwrap();
    let want_b = cpu.embed(other.path(), &TEXTS).unwrap();
    assert!(
        want_a[0].iter().zip(&want_b[0]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max) > 100.0 * TOLERANCE,
        "the shifted copy must embed differently"
    );

    let worker = browser_worker("browser-0", &chromium);
    assert_eq!(worker.kind(), WorkerKind::BrowserWebgpu);
    assert!(!worker.is_warm(), "lazy: no browser before the first request");
    assert!(worker.browser_pid().is_none());
    assert!(worker.health(Duration::from_secs(5)).is_ok(), "a cold worker is healthy");

    let began = Instant::now();
    let got_a = worker.embed(&dir, &TEXTS).unwrap();
    eprintln!("first embed (launch + load + run): {:?}", began.elapsed());
    assert_close(&got_a, &want_a, "model A");
    let pid = worker.browser_pid().expect("a browser runs");

    let began = Instant::now();
    let got_b = worker.embed(other.path(), &TEXTS).unwrap();
    eprintln!("second model (load + run): {:?}", began.elapsed());
    assert_close(&got_b, &want_b, "model B");
    // Back to the first: its graphs must still be its own.
    assert_close(&worker.embed(&dir, &TEXTS).unwrap(), &want_a, "model A again");
    assert_close(&worker.embed(other.path(), &TEXTS[..1]).unwrap(), &want_b[..1], "model B, one text");
    assert_eq!(worker.browser_pid(), Some(pid), "one browser serves both models");

    assert!(worker.has_loaded(&dir) && worker.has_loaded(other.path()));
    let mut loaded = worker.loaded_models();
    loaded.sort();
    let mut expected = vec![dir.clone(), other.path().to_path_buf()];
    expected.sort();
    assert_eq!(loaded, expected);

    let info = worker.info();
    assert_eq!(info.precision, "f32");
    assert!(info.browser.as_deref().is_some_and(|b| b.starts_with("chromium ")), "{:?}", info.browser);
    assert_eq!(info.capabilities["webgpu"]["available"], true, "{}", info.capabilities);
    worker.health(Duration::from_secs(10)).unwrap();

    drop(worker);
    assert!(!process_exists(pid), "dropping the worker stops its browser");
}

#[test]
fn a_killed_browser_fails_requests_fast_and_recover_brings_it_back() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some((dir, chromium)) = setup() else { return };
    let want = LocalWorker::cpu("cpu").embed(&dir, &TEXTS).unwrap();
    let worker = Arc::new(browser_worker("browser-0", &chromium));
    let began = Instant::now();
    worker.warm_up().unwrap();
    eprintln!("warm_up (launch): {:?}", began.elapsed());
    assert!(worker.is_warm());
    assert_close(&worker.embed(&dir, &TEXTS).unwrap(), &want, "before the crash");
    let old_pid = worker.browser_pid().unwrap();

    // Requests from several threads, running when the browser dies.
    let long: Vec<String> =
        (0..16).map(|i| format!("sentence number {i} about content-addressed weights and browsers")).collect();
    let killed_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let (worker, dir, long, killed_at) = (worker.clone(), dir.clone(), long.clone(), killed_at.clone());
            std::thread::spawn(move || {
                let texts: Vec<&str> = long.iter().map(String::as_str).collect();
                loop {
                    let started = Instant::now();
                    match worker.embed(&dir, &texts) {
                        Ok(_) => assert!(killed_at.lock().unwrap().is_none_or(|k| started < k), "ran after the kill"),
                        Err(e) => {
                            let kill = killed_at.lock().unwrap().expect("failed before the kill");
                            return (started < kill, kill.elapsed(), e.to_string());
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    *killed_at.lock().unwrap() = Some(Instant::now());
    worker.kill_browser();
    let outcomes: Vec<(bool, Duration, String)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for (in_flight, after, error) in &outcomes {
        eprintln!("in flight at the kill: {in_flight}; failed {after:?} after it: {error}");
        assert!(*after < Duration::from_secs(10), "took {after:?} to fail");
        assert!(error.contains("browser-0"), "{error}");
    }
    assert!(outcomes.iter().any(|(in_flight, _, _)| *in_flight), "no request was in flight at the kill");

    // Down: fails at once, starts nothing, until recovered.
    let began = Instant::now();
    let error = worker.embed(&dir, &TEXTS).unwrap_err();
    assert!(began.elapsed() < Duration::from_secs(1), "a down worker must fail at once");
    assert!(error.message.contains("down"), "{error}");
    assert!(worker.health(Duration::from_secs(5)).is_err());
    assert!(!process_exists(old_pid), "the killed browser is gone");
    assert_eq!(worker.restarts(), 0);

    let began = Instant::now();
    worker.recover().unwrap();
    eprintln!("recover (stop + launch + reload one model): {:?}", began.elapsed());
    worker.health(Duration::from_secs(10)).unwrap();
    assert_eq!(worker.restarts(), 1);
    assert!(worker.has_loaded(&dir), "recover reloads the models that were loaded");
    let new_pid = worker.browser_pid().unwrap();
    assert_ne!(new_pid, old_pid);
    assert_close(&worker.embed(&dir, &TEXTS).unwrap(), &want, "after recovery");

    drop(worker);
    assert!(!process_exists(new_pid), "dropping the worker stops its browser");
}

#[test]
fn an_idle_browser_closes_and_the_next_request_relaunches_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some((dir, chromium)) = setup() else { return };
    let want = LocalWorker::cpu("cpu").embed(&dir, &TEXTS).unwrap();
    let worker = browser_worker("browser-0", &chromium);
    assert!(!worker.close_if_idle(Duration::ZERO), "nothing to close while cold");
    assert_close(&worker.embed(&dir, &TEXTS).unwrap(), &want, "first");
    let pid = worker.browser_pid().unwrap();
    assert!(!worker.close_if_idle(Duration::from_secs(3600)), "used just now");
    assert!(worker.is_warm());

    let began = Instant::now();
    assert!(worker.close_if_idle(Duration::ZERO));
    eprintln!("idle close: {:?}", began.elapsed());
    assert!(!worker.is_warm());
    assert!(worker.browser_pid().is_none());
    assert!(!process_exists(pid), "the browser was closed");
    assert!(worker.loaded_models().is_empty());
    worker.health(Duration::from_secs(5)).expect("closed on purpose is healthy");

    let began = Instant::now();
    assert_close(&worker.embed(&dir, &TEXTS).unwrap(), &want, "after the relaunch");
    eprintln!("relaunch + load + run: {:?}", began.elapsed());
    assert!(worker.is_warm());
    assert_ne!(worker.browser_pid(), Some(pid));
    assert_eq!(worker.restarts(), 0, "an on-demand start is no restart");
}

#[test]
fn bad_requests_fail_clearly_and_leave_the_worker_healthy() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some((dir, chromium)) = setup() else { return };
    let missing = dir.with_file_name("no-such-model-here");
    let not_a_model = tempfile::tempdir().unwrap();
    let worker = browser_worker("browser-0", &chromium).with_models(vec![
        dir.clone(),
        missing.clone(),
        not_a_model.path().to_path_buf(),
    ]);

    let error = worker.embed(&missing, &TEXTS).unwrap_err();
    assert!(error.message.contains("does not exist"), "{error}");
    assert!(!worker.is_warm(), "a bad path starts no browser");
    worker.health(Duration::from_secs(5)).unwrap();

    worker.warm_up().unwrap();
    let error = worker.embed(&missing, &TEXTS).unwrap_err();
    assert!(error.message.contains("does not exist"), "{error}");
    let error = worker.embed(not_a_model.path(), &TEXTS).unwrap_err();
    assert!(error.message.contains("config.json"), "{error}");
    let stranger = tempfile::tempdir().unwrap();
    assert!(worker.unsupported(stranger.path()).is_some_and(|why| why.contains("list")));
    assert!(worker.embed(stranger.path(), &TEXTS).unwrap_err().message.contains("does not serve"));
    assert!(worker.embed(&dir, &[]).is_err(), "no texts");
    worker.health(Duration::from_secs(10)).expect("bad requests leave the page up");
    assert!(worker.embed(&dir, &TEXTS).is_ok());
    assert_eq!(worker.restarts(), 0);
}

#[test]
fn a_model_sharded_over_two_browsers_equals_the_unsharded_cpu_model() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some((dir, chromium)) = setup() else { return };
    use ipfs_accelerate_pool::queue::Priority;
    use ipfs_accelerate_pool::{Pool, PoolConfig};
    let want = LocalWorker::cpu("cpu").embed(&dir, &TEXTS).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let journal = Arc::new(ipfs_accelerate_pool::journal::Journal::open(scratch.path().join("j.sqlite3")).unwrap());
    let pool = Pool::with_journal(PoolConfig { dispatchers: 1, ..PoolConfig::default() }, journal.clone());
    let (a, b) = (Arc::new(browser_worker("browser-a", &chromium)), Arc::new(browser_worker("browser-b", &chromium)));
    pool.add_worker(a.clone());
    pool.add_worker(b.clone());
    let texts: Vec<String> = TEXTS.iter().map(|t| t.to_string()).collect();
    let answer = pool.submit_sharded(&dir, texts.clone(), 2, Priority::Normal).unwrap().wait().unwrap();
    let mut stages = answer.stages.clone();
    stages.sort();
    assert_eq!(stages, ["browser-a", "browser-b"], "one stage per browser");
    assert_close(&answer.embeddings, &want, "2 stages on 2 browsers");
    // Run again: the stages stay where their layers are loaded.
    let again = pool.submit_sharded(&dir, texts, 2, Priority::Normal).unwrap().wait().unwrap();
    assert_eq!(again.stages, answer.stages);
    assert_close(&again.embeddings, &want, "the second sharded run");
    // The browsers started lazily, with these requests: the pool learned
    // their names then, and measured them under the browser's family.
    for status in pool.status() {
        assert!(status.browser.as_deref().is_some_and(|b| b.starts_with("chromium")), "{status:?}");
    }
    let latencies = pool.latencies();
    assert!(!latencies.is_empty() && latencies.iter().all(|l| l.browser == "chromium"), "{latencies:?}");
    // Journal rows name the browser from the very first call, the one that
    // started it.
    let rows = journal.inferences(&Default::default()).unwrap();
    assert_eq!(rows.len(), 4, "2 requests x 2 stages");
    assert!(rows.iter().all(|r| r.record.browser.as_deref().is_some_and(|b| b.starts_with("chromium"))), "{rows:?}");
}
