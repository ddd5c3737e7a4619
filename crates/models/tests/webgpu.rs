//! The WebGPU backend against the CPU backend and the sentence-transformers
//! goldens: all-MiniLM-L6-v2 embeddings agree (cosine ≥ 0.9999).
//!
//! Runs on whatever adapter wgpu finds (Mesa's llvmpipe in CI, where it is
//! slow: few short texts). Without an adapter it prints a skip notice and
//! passes, unless `CI=true`.

mod common;

use ipfs_accelerate_models::{BackendChoice, BackendKind, Precision, TextEmbedder};
use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    texts: Vec<String>,
    embeddings: Vec<Vec<f32>>,
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// The model on the WebGPU backend, or `None` (skip) without an adapter.
fn load_webgpu(dir: &std::path::Path) -> Option<TextEmbedder> {
    match TextEmbedder::load(dir, BackendChoice::WebGpu) {
        Ok(model) => Some(model),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => panic!("CI=true and the webgpu backend fails: {e}"),
        Err(e) => {
            eprintln!("SKIPPED: no webgpu backend here: {e}");
            None
        }
    }
}

#[test]
fn minilm_embeddings_on_webgpu_match_cpu_and_sentence_transformers() {
    let Some(dir) = common::test_model("all-MiniLM-L6-v2") else { return };
    let Some(gpu) = load_webgpu(&dir) else { return };
    assert_eq!(gpu.backend(), BackendKind::WebGpu);
    assert!(gpu.backend_description().starts_with("webgpu ("), "{}", gpu.backend_description());
    let cpu = TextEmbedder::load(&dir, BackendChoice::Cpu).unwrap();
    let golden: Golden = serde_json::from_str(include_str!("goldens/all-MiniLM-L6-v2.json")).unwrap();
    let texts: Vec<&str> = golden.texts.iter().take(4).map(String::as_str).collect();
    // Two batch shapes: one packed batch, and one text at a time (a second
    // plan, sharing the weights already on the device).
    for batch_size in [texts.len(), 1] {
        let on_gpu = gpu.embed(&texts, batch_size).unwrap();
        let on_cpu = cpu.embed(&texts, batch_size).unwrap();
        for (i, ((g, c), want)) in on_gpu.iter().zip(&on_cpu).zip(&golden.embeddings).enumerate() {
            let vs_cpu = cosine(g, c);
            let vs_golden = cosine(g, want);
            assert!(vs_cpu >= 0.9999, "text {i}, batch {batch_size}: cosine to cpu {vs_cpu}");
            assert!(vs_golden >= 0.9999, "text {i}, batch {batch_size}: cosine to sentence-transformers {vs_golden}");
        }
    }
    // The same shape again reuses the cached plan and gives the same bytes.
    let again = gpu.embed(&texts[..1], 1).unwrap();
    assert_eq!(again[0], gpu.embed(&texts[..1], 1).unwrap()[0]);
    // Batches are padded to buckets: other texts of other lengths in the
    // same bucket (4 sequences of at most 16 tokens) compile no new plan.
    gpu.embed(&["one", "two words", "and three words", "four"], 4).unwrap();
    let plans = gpu.engine().cached_plans();
    gpu.embed(&["a longer text of several words", "x", "y z"], 4).unwrap();
    assert_eq!(gpu.engine().cached_plans(), plans);
}

#[test]
fn auto_never_picks_a_software_adapter() {
    let Some(dir) = common::test_model("all-MiniLM-L6-v2") else { return };
    let hardware = ipfs_accelerate_gpu::GpuContext::adapters()
        .iter()
        .any(|a| ["DiscreteGpu", "IntegratedGpu", "VirtualGpu"].contains(&a.device_type.as_str()));
    if std::env::var_os(ipfs_accelerate_gpu::ADAPTER_ENV).is_some() {
        return;
    }
    let model = TextEmbedder::load(&dir, BackendChoice::Auto).unwrap();
    let want = if hardware { BackendKind::WebGpu } else { BackendKind::Cpu };
    // A hardware adapter that fails to open falls back to the CPU, with a notice.
    assert!(model.backend() == want || model.backend_notice().is_some(), "{:?}", model.backend());
}

#[test]
fn minilm_with_f16_weights_stays_within_half_precision() {
    let Some(dir) = common::test_model("all-MiniLM-L6-v2") else { return };
    let gpu = match TextEmbedder::load_with(&dir, BackendChoice::WebGpu, Precision::F16) {
        Ok(model) => model,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => panic!("CI=true and the webgpu backend fails: {e}"),
        Err(e) => return eprintln!("SKIPPED: no webgpu backend here: {e}"),
    };
    if let Some(notice) = gpu.backend_notice() {
        // An adapter without shader-f16 runs float32 and says so.
        assert!(notice.contains("shader-f16"), "{notice}");
        return;
    }
    assert!(gpu.backend_description().contains("f16 weights"), "{}", gpu.backend_description());
    let cpu = TextEmbedder::load(&dir, BackendChoice::Cpu).unwrap();
    let texts = ["The quick brown fox jumps over the lazy dog.", "Content-addressed weights are verified on load."];
    for (g, c) in gpu.embed(&texts, 2).unwrap().iter().zip(&cpu.embed(&texts, 2).unwrap()) {
        let cos = cosine(g, c);
        assert!(cos >= 0.999, "cosine {cos}");
        assert!(cos < 1.0 - 1e-9, "f16 weights changed nothing: were they used?");
    }
}

#[test]
fn precision_16_on_the_cpu_says_it_runs_float32() {
    let Some(dir) = common::test_model("all-MiniLM-L6-v2") else { return };
    let model = TextEmbedder::load_with(&dir, BackendChoice::Cpu, Precision::F16).unwrap();
    assert!(model.backend_notice().is_some_and(|n| n.contains("float32")));
    assert!(Precision::parse("8").unwrap_err().to_string().contains("use 32 or 16"));
}
