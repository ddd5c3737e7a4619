//! Image models on browser workers against the CPU backend: the tiny random
//! ViT (probabilities of every label) and CLIP (image and text embeddings,
//! zero-shot probabilities) of crates/models/tests/goldens/tiny-vision.json,
//! a tiny random EfficientNet-Lite (logits) and, when the test model is
//! present, the real EfficientNet-Lite0 on one photo (logits, same top-5).
//!
//! Each backend gets one browser that runs all the models, each on its own
//! model runner: WebGPU in Debian's chromium (SwiftShader), WebNN in the
//! Chromium that `scripts/install-webnn-chromium.sh` unpacks (its `cpu`
//! context, XNNPACK). Without a browser the test prints SKIPPED and passes,
//! unless `CI=true`.

#[path = "../../models/tests/common/mod.rs"]
mod common;
#[path = "../../models/tests/common/lcg_weights.rs"]
mod lcg_weights;
#[path = "../../models/tests/common/tiny_vision.rs"]
mod tiny_vision;

mod support;

use ipfs_accelerate_browser::{BrowserBackend, BrowserEngine, BrowserLaunch};
use ipfs_accelerate_models::engine::Engine;
use ipfs_accelerate_models::vision::efficientnet::{top_predictions, EfficientNet};
use ipfs_accelerate_models::vision::ImageClassifier;
use ipfs_accelerate_models::BackendChoice;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest |browser - cpu| / (1 + |cpu|) accepted on browser WebGPU: the
/// same WGSL kernels as the native WebGPU backend, so float32 rounding only.
/// Measured (SwiftShader): at most 2.8e-7 on the tiny models, 5.3e-6 on
/// EfficientNet-Lite0's logits (which reach 8.6).
const WEBGPU_TOL: f32 = 1e-4;

/// The same measure on browser WebNN (XNNPACK on the `cpu` context, its own
/// kernels and summation order, fused ops decomposed). Measured: at most
/// 2.2e-7 on the tiny models, 6.0e-6 on EfficientNet-Lite0's logits, as
/// close as WebGPU, so the same bound.
const WEBNN_TOL: f32 = 1e-4;

/// Max over all values of |got - want| / (1 + |want|).
fn rel_diff(got: &[Vec<f32>], want: &[Vec<f32>]) -> f32 {
    assert_eq!(got.len(), want.len(), "rows");
    got.iter()
        .zip(want)
        .flat_map(|(g, w)| {
            assert_eq!(g.len(), w.len(), "row length");
            g.iter().zip(w).map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
        })
        .fold(0.0, f32::max)
}

/// The browser engine's next model runner as an [`Engine`].
fn on(engine: &Arc<BrowserEngine>) -> Engine {
    Engine::External(Box::new(engine.model_runner()))
}

/// Every model on `backend` in the browser at `browser`, against the CPU;
/// returns (what, max relative diff) per compared output.
fn compare(backend: BrowserBackend, browser: &Path) -> Vec<(String, f32)> {
    let launch = BrowserLaunch {
        browser: Some(browser.to_str().unwrap().to_string()),
        // Any free port: other tests may hold the default one.
        bridge_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ..BrowserLaunch::new(backend)
    };
    let engine = Arc::new(BrowserEngine::launch(&launch).unwrap_or_else(|e| panic!("{e}")));
    let prefix = match backend {
        BrowserBackend::WebGpu => "browser-webgpu (",
        BrowserBackend::WebNn => "browser-webnn (",
    };
    let g = tiny_vision::golden();
    let photos: Vec<PathBuf> = g.images.iter().map(|n| tiny_vision::images_dir().join(n)).collect();
    let mut out = Vec::new();

    // ViT: the probability of every label, in label order.
    let dir = tiny_vision::vit_dir(&g);
    let cpu = ImageClassifier::load(dir.path(), BackendChoice::Cpu).unwrap();
    let web = ImageClassifier::load_on(dir.path(), on(&engine), None).unwrap();
    assert!(web.backend_description().starts_with(prefix), "{}", web.backend_description());
    let imgs: Vec<_> = photos.iter().map(|p| cpu.read_image(p).unwrap()).collect();
    let probs = |m: &ImageClassifier| -> Vec<Vec<f32>> {
        let scored = m.classify(&imgs, m.labels().len()).unwrap();
        scored.iter().map(|s| m.labels().iter().map(|l| s.iter().find(|(n, _)| n == l).unwrap().1).collect()).collect()
    };
    out.push(("vit probabilities".to_string(), rel_diff(&probs(&web), &probs(&cpu))));

    // CLIP: image and text embeddings, and zero-shot probabilities.
    let dir = tiny_vision::clip_dir(&g);
    let cpu = ImageClassifier::load(dir.path(), BackendChoice::Cpu).unwrap();
    let web = ImageClassifier::load_on(dir.path(), on(&engine), None).unwrap();
    let imgs: Vec<_> = photos.iter().map(|p| cpu.read_image(p).unwrap()).collect();
    let d = rel_diff(&web.embed_images(&imgs).unwrap(), &cpu.embed_images(&imgs).unwrap());
    out.push(("clip image embeddings".to_string(), d));
    // Texts of several lengths, so more than one text graph shape runs.
    let texts = ["cat", "a photo of a red car .", "a photo of an red car tree dog cat picture of a tree"];
    let d = rel_diff(&web.embed_texts(&texts).unwrap(), &cpu.embed_texts(&texts).unwrap());
    out.push(("clip text embeddings".to_string(), d));
    let labels: Vec<&str> = g.clip.labels.iter().map(String::as_str).collect();
    let zero_shot = |m: &ImageClassifier| -> Vec<Vec<f32>> {
        let scored = m.zero_shot(&imgs, &labels).unwrap();
        scored.iter().map(|s| labels.iter().map(|l| s.iter().find(|(n, _)| n == l).unwrap().1).collect()).collect()
    };
    out.push(("clip zero-shot probabilities".to_string(), rel_diff(&zero_shot(&web), &zero_shot(&cpu))));

    // A tiny EfficientNet-Lite: logits of three photos of different shapes.
    let dir = tempfile::tempdir().unwrap();
    tiny_vision::tiny_efficientnet(dir.path());
    let cpu = EfficientNet::load(dir.path(), BackendChoice::Cpu).unwrap();
    let web = EfficientNet::load_on(dir.path(), on(&engine), None).unwrap();
    let imgs: Vec<_> = photos.iter().map(|p| cpu.read_image(p).unwrap()).collect();
    let want = cpu.logits(&imgs).unwrap();
    // Different photos give different logits (the weights are not degenerate).
    assert!(rel_diff(&want[..1], &want[1..2]) > 1e-3, "{want:?}");
    out.push(("tiny efficientnet logits".to_string(), rel_diff(&web.logits(&imgs).unwrap(), &want)));

    // The real EfficientNet-Lite0 on one photo: logits, and the same top-5.
    if let Some(dir) = common::test_model("efficientnet-lite0") {
        let cpu = EfficientNet::load(&dir, BackendChoice::Cpu).unwrap();
        let web = EfficientNet::load_on(&dir, on(&engine), None).unwrap();
        let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/goldens/efficientnet/china.png");
        let imgs = [cpu.read_image(&photo).unwrap()];
        let (got, want) = (web.logits(&imgs).unwrap(), cpu.logits(&imgs).unwrap());
        let top5 = |l: &[f32]| top_predictions(l, cpu.labels(), 5).iter().map(|p| p.id).collect::<Vec<_>>();
        assert_eq!(top5(&got[0]), top5(&want[0]), "efficientnet-lite0 top-5");
        out.push(("efficientnet-lite0 logits".to_string(), rel_diff(&got, &want)));
    }
    out
}

fn check(backend: BrowserBackend, browser: &Path, tol: f32) {
    let diffs = compare(backend, browser);
    for (what, d) in &diffs {
        eprintln!("{backend:?} {what}: max |browser - cpu| / (1 + |cpu|) = {d:.2e}");
    }
    for (what, d) in &diffs {
        assert!(*d <= tol, "{backend:?} {what}: {d:e} > {tol:e}");
    }
}

#[test]
fn webgpu_on_chromium_matches_the_cpu_backend() {
    let Some(chromium) = support::chromium() else { return };
    check(BrowserBackend::WebGpu, &chromium, WEBGPU_TOL);
}

#[test]
fn webnn_on_chromium_matches_the_cpu_backend() {
    let Some(chromium) = support::webnn_chromium() else { return };
    check(BrowserBackend::WebNn, &chromium, WEBNN_TOL);
}
