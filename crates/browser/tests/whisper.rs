//! Whisper's encoder in browser workers: the real Whisper tiny.en transcribes
//! the espeak-ng clip with its encoder graph (two `conv2d`, attention over
//! 1500 positions) on browser WebGPU (the system Chromium) and on browser
//! WebNN (the WebNN Chromium), the decoder on the CPU; the tokens must equal
//! transformers' (golden `whisper_tiny_en.json`), which the CPU backend also
//! produces. Skipped without a browser or the model, except under `CI=true`.

#[path = "../../models/tests/common/test_models.rs"]
mod test_models;

mod support;

use ipfs_accelerate_browser::{BrowserBackend, BrowserEngine, BrowserLaunch};
use ipfs_accelerate_models::engine::Engine;
use ipfs_accelerate_models::llm::weights::WeightBits;
use ipfs_accelerate_models::whisper::{TranscribeOptions, Transcriber};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn goldens() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/goldens")
}

fn golden_sequence() -> Vec<u32> {
    let text = std::fs::read_to_string(goldens().join("whisper_tiny_en.json")).unwrap();
    let golden: Value = serde_json::from_str(&text).unwrap();
    golden["clip"]["timestamps"]["sequence"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect()
}

fn transcribe_in(backend: BrowserBackend, browser: &Path) {
    let Some(dir) = test_models::test_model("whisper-tiny.en") else { return };
    let launch = BrowserLaunch {
        browser: Some(browser.to_str().unwrap().to_string()),
        // Any free port: other tests may hold the default one.
        bridge_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ..BrowserLaunch::new(backend)
    };
    let engine = BrowserEngine::launch(&launch).unwrap_or_else(|e| panic!("{e}"));
    let model = Transcriber::load_on(&dir, Engine::External(Box::new(engine)), WeightBits::AsStored).unwrap();
    let options = TranscribeOptions { timestamps: true, ..Default::default() };
    let transcript = model.transcribe_file(&goldens().join("speech/clip.wav"), &options).unwrap();
    assert_eq!(transcript.windows, vec![golden_sequence()], "on {}", model.backend_name());
    assert!((transcript.segments[0].end - 3.8).abs() < 1e-6);
}

#[test]
fn whisper_encoder_on_browser_webgpu_transcribes_as_transformers_does() {
    let Some(chromium) = support::chromium() else { return };
    transcribe_in(BrowserBackend::WebGpu, &chromium);
}

#[test]
fn whisper_encoder_on_browser_webnn_transcribes_as_transformers_does() {
    let Some(chromium) = support::webnn_chromium() else { return };
    transcribe_in(BrowserBackend::WebNn, &chromium);
}
