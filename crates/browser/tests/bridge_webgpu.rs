//! The bridge end to end with a real headless Chromium on WebGPU (Debian's
//! chromium gives a SwiftShader adapter with `--enable-unsafe-webgpu`):
//! all-MiniLM-L6-v2 embeddings from the browser match the CPU backend; a
//! second load is served from the page's Cache Storage; a wrong token is
//! refused; killing the browser mid-request fails the request quickly.
//!
//! Skipped with a notice without chromium or the test model, unless `CI=true`.

#[path = "../../models/tests/common/mod.rs"]
mod common;

use ipfs_accelerate_browser::{Bridge, BridgeConfig, BrowserBackend, BrowserEngine};
use ipfs_accelerate_models::engine::Engine;
use ipfs_accelerate_models::{BackendChoice, TextEmbedder};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A headless Chromium with its own profile, killed on drop.
struct Browser {
    child: Child,
    _profile: Option<tempfile::TempDir>,
}

impl Browser {
    fn open(url: &str) -> Option<Browser> {
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser::open_with_profile(url, profile.path())?;
        browser._profile = Some(profile);
        Some(browser)
    }

    fn open_with_profile(url: &str, profile: &std::path::Path) -> Option<Browser> {
        let path =
            ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| std::path::Path::new(p).exists());
        let Some(path) = path else {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true and no chromium");
            eprintln!("SKIPPED: no chromium");
            return None;
        };
        let mut cmd = Command::new(path);
        cmd.args([
            "--headless=new",
            "--enable-unsafe-webgpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // Its own process group, so the renderer dies with it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        // Chromium refuses to run as root without this.
        if std::env::var("USER").as_deref() == Ok("root") || cfg!(unix) && unsafe_is_root() {
            cmd.arg("--no-sandbox");
        }
        Some(Browser { child: cmd.spawn().unwrap(), _profile: None })
    }
}

fn unsafe_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

impl Browser {
    /// Kills the browser and every process it started (renderer, GPU).
    fn kill(&mut self) {
        // SAFETY: killpg only sends a signal to the group this test created.
        unsafe { libc::killpg(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn minilm_in_chromium_webgpu_matches_the_cpu_backend() {
    let Some(dir) = common::test_model("all-MiniLM-L6-v2") else { return };
    let bridge = Bridge::start(BridgeConfig::default()).unwrap();
    let Some(browser) = Browser::open(&bridge.worker_url()) else { return };
    let worker = bridge.wait_for_worker(Duration::from_secs(60)).unwrap();
    assert_eq!(worker.capabilities()["webgpu"]["available"], true, "{}", worker.capabilities());
    let engine = BrowserEngine::new(BrowserBackend::WebGpu, bridge, worker, Some(Box::new(browser))).unwrap();
    let model = TextEmbedder::load_on(&dir, Engine::External(Box::new(engine)), None).unwrap();
    assert!(model.backend_description().starts_with("browser-webgpu ("), "{}", model.backend_description());
    let cpu = TextEmbedder::load(&dir, BackendChoice::Cpu).unwrap();
    let texts = ["The quick brown fox jumps over the lazy dog.", "Content-addressed weights are verified on load."];
    let on_browser = model.embed(&texts, 2).unwrap();
    for (b, c) in on_browser.iter().zip(&cpu.embed(&texts, 2).unwrap()) {
        let cos = cosine(b, c);
        assert!(cos >= 0.999, "cosine {cos}");
    }
}

#[test]
fn a_second_load_in_the_same_profile_reads_weights_from_the_browser_cache() {
    let Some(dir) = common::test_model("all-MiniLM-L6-v2") else { return };
    let profile = tempfile::tempdir().unwrap();
    let mut addr = None;
    let mut stats = Vec::new();
    for _ in 0..2 {
        // The same origin (address) and profile: Cache Storage survives.
        let config = BridgeConfig { addr: addr.unwrap_or(BridgeConfig::default().addr), ..BridgeConfig::default() };
        let bridge = Bridge::start(config).unwrap();
        addr = Some(bridge.addr());
        let Some(browser) = Browser::open_with_profile(&bridge.worker_url(), profile.path()) else { return };
        let worker = bridge.wait_for_worker(Duration::from_secs(60)).unwrap();
        let engine = BrowserEngine::new(BrowserBackend::WebGpu, bridge, worker, Some(Box::new(browser))).unwrap();
        let engine = std::sync::Arc::new(engine);
        let model =
            TextEmbedder::load_on(&dir, Engine::External(Box::new(SharedEngine(engine.clone()))), None).unwrap();
        model.embed(&["hello"], 1).unwrap();
        stats.push(engine.cache_stats());
    }
    let ((hits1, misses1), (hits2, misses2)) = (stats[0], stats[1]);
    assert!(hits1 == 0 && misses1 > 0, "first load: {hits1} hits, {misses1} misses");
    assert!(hits2 == misses1 && misses2 == 0, "second load: {hits2} hits, {misses2} misses");
}

/// Lets the test keep a handle on the engine the model owns.
struct SharedEngine(std::sync::Arc<BrowserEngine>);

impl ipfs_accelerate_models::engine::GraphRunner for SharedEngine {
    fn kind(&self) -> ipfs_accelerate_models::BackendKind {
        self.0.kind()
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn run(
        &self,
        shape_key: &[usize],
        build: &mut dyn FnMut() -> ipfs_accelerate_models::Result<(
            ipfs_accelerate_tensor::Graph,
            ipfs_accelerate_tensor::Weights,
        )>,
        inputs: &[(&str, &ipfs_accelerate_tensor::Tensor)],
    ) -> ipfs_accelerate_models::Result<Vec<ipfs_accelerate_tensor::Tensor>> {
        self.0.run(shape_key, build, inputs)
    }
}

#[test]
fn a_wrong_token_is_refused_and_a_killed_browser_fails_requests_quickly() {
    let bridge = Bridge::start(BridgeConfig::default()).unwrap();
    let wrong = format!("http://{}/?token=not-the-token", bridge.addr());
    let Some(mut intruder) = Browser::open(&wrong) else { return };
    assert!(bridge.wait_for_worker(Duration::from_secs(8)).is_err(), "a page with a wrong token joined");
    intruder.kill();

    let Some(mut browser) = Browser::open(&bridge.worker_url()) else { return };
    let worker = bridge.wait_for_worker(Duration::from_secs(60)).unwrap();
    assert!(worker.ping(Duration::from_secs(10)).is_ok());
    browser.kill();
    let start = Instant::now();
    let err = worker.ping(Duration::from_secs(60)).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(20), "took {:?}: {err}", start.elapsed());
    assert!(!worker.is_alive());
}
