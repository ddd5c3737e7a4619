//! The bridge end to end with a real headless Chromium on WebGPU (Debian's
//! chromium gives a SwiftShader adapter with `--enable-unsafe-webgpu`):
//! all-MiniLM-L6-v2 embeddings from the browser match the CPU backend; a
//! second load is served from the page's Cache Storage; a wrong token is
//! refused; killing the browser mid-request fails the request quickly.
//!
//! Skipped with a notice without chromium or the test model, unless `CI=true`.

#[path = "../../models/tests/common/mod.rs"]
mod common;
mod support;

use ipfs_accelerate_browser::launch::Profile;
use ipfs_accelerate_browser::{Bridge, BridgeConfig, BrowserBackend, BrowserEngine};
use ipfs_accelerate_models::engine::Engine;
use ipfs_accelerate_models::{BackendChoice, TextEmbedder};
use std::time::{Duration, Instant};

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
    let Some(chromium) = support::chromium() else { return };
    let browser = support::open(&chromium, &bridge.worker_url(), Profile::Ephemeral, &[]);
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
    let data = tempfile::tempdir().unwrap();
    let mut addr = None;
    let mut stats = Vec::new();
    for _ in 0..2 {
        // The same origin (address) and profile: Cache Storage survives.
        let config = BridgeConfig { addr: addr.unwrap_or(BridgeConfig::default().addr), ..BridgeConfig::default() };
        let bridge = Bridge::start(config).unwrap();
        addr = Some(bridge.addr());
        let Some(chromium) = support::chromium() else { return };
        let profile = Profile::Slot { data_dir: data.path().to_path_buf(), slot: 0 };
        let browser = support::open(&chromium, &bridge.worker_url(), profile, &[]);
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
    let Some(chromium) = support::chromium() else { return };
    let intruder = support::open(&chromium, &wrong, Profile::Ephemeral, &[]);
    assert!(bridge.wait_for_worker(Duration::from_secs(8)).is_err(), "a page with a wrong token joined");
    support::crash(&intruder);

    let browser = support::open(&chromium, &bridge.worker_url(), Profile::Ephemeral, &[]);
    let worker = bridge.wait_for_worker(Duration::from_secs(60)).unwrap();
    assert!(worker.ping(Duration::from_secs(10)).is_ok());
    support::crash(&browser);
    let start = Instant::now();
    let err = worker.ping(Duration::from_secs(60)).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(20), "took {:?}: {err}", start.elapsed());
    assert!(!worker.is_alive());
}
