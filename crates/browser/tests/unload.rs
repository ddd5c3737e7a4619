//! Models sharing weights on one page: the page keeps one GPU buffer per
//! weight content and frees it only when the last model using it unloads.
//! Two models with the same weights load on one page; unloading the first
//! (dropping its embedder) must leave the second working, and a third load
//! after that must work too — a buffer destroyed while still in use would
//! fail those runs. Real headless Chromium on WebGPU.
//!
//! Skipped with a notice without chromium or the test model, unless `CI=true`.

#[path = "../../models/tests/common/mod.rs"]
mod common;
mod support;

use ipfs_accelerate_browser::launch::Profile;
use ipfs_accelerate_browser::{Bridge, BridgeConfig, BrowserBackend, BrowserEngine};
use ipfs_accelerate_models::engine::Engine;
use ipfs_accelerate_models::{BackendChoice, TextEmbedder};
use std::sync::Arc;
use std::time::Duration;

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter().zip(b).flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs())).fold(0.0, f32::max)
}

#[test]
fn unloading_a_model_keeps_the_weights_another_model_shares() {
    let Some(dir) = common::test_model("all-MiniLM-L6-v2") else { return };
    let bridge = Bridge::start(BridgeConfig::default()).unwrap();
    let Some(chromium) = support::chromium() else { return };
    let browser = support::open(&chromium, &bridge.worker_url(), Profile::Ephemeral, &[]);
    let worker = bridge.wait_for_worker(Duration::from_secs(60)).unwrap();
    let engine = Arc::new(BrowserEngine::new(BrowserBackend::WebGpu, bridge, worker, Some(Box::new(browser))).unwrap());
    let load = || TextEmbedder::load_on(&dir, Engine::External(Box::new(engine.model_runner())), None).unwrap();
    let texts = ["The quick brown fox jumps over the lazy dog.", "Shared weights stay until the last user leaves."];
    let want = TextEmbedder::load(&dir, BackendChoice::Cpu).unwrap().embed(&texts, 2).unwrap();

    let (first, second) = (load(), load());
    assert!(max_diff(&first.embed(&texts, 2).unwrap(), &want) < 1e-4);
    assert!(max_diff(&second.embed(&texts, 2).unwrap(), &want) < 1e-4);
    drop(first);
    // Unload messages are fire-and-forget: a ping after them is answered
    // only once the page has handled them.
    engine.worker().ping(Duration::from_secs(30)).unwrap();
    assert!(max_diff(&second.embed(&texts, 2).unwrap(), &want) < 1e-4, "the shared weights survived the unload");
    drop(second);
    engine.worker().ping(Duration::from_secs(30)).unwrap();
    let third = load();
    assert!(max_diff(&third.embed(&texts, 2).unwrap(), &want) < 1e-4, "weights are uploaded again after all left");
}
