//! `ipfs-accelerate classify` end to end on the tiny random ViT and CLIP of
//! crates/models/tests/goldens/tiny-vision.json (weights regenerated from
//! their seeds into a temp dir): top-k of the ViT's own labels, CLIP
//! zero-shot over --labels, `--json`, and one-line errors; and the ViT on
//! `--backend browser-webgpu|browser-webnn` against `--backend cpu` (skipped
//! with a notice without the browsers, unless `CI=true`).

mod support;

#[path = "../../models/tests/common/lcg_weights.rs"]
mod lcg_weights;

use lcg_weights::{write_safetensors, TensorSpec};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use support::{assert_clear_error, run, stdout};

#[derive(Deserialize)]
struct Model {
    config: serde_json::Value,
    preprocessor_config: serde_json::Value,
    tensors: Vec<TensorSpec>,
    #[serde(default)]
    tokenizer: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Golden {
    vit: Model,
    clip: Model,
}

fn golden() -> Golden {
    serde_json::from_str(include_str!("../../models/tests/goldens/tiny-vision.json")).unwrap()
}

fn write(dir: &Path, m: &Model) {
    std::fs::write(dir.join("config.json"), m.config.to_string()).unwrap();
    std::fs::write(dir.join("preprocessor_config.json"), m.preprocessor_config.to_string()).unwrap();
    write_safetensors(&m.tensors, &dir.join("model.safetensors"));
    if let Some(t) = &m.tokenizer {
        std::fs::write(dir.join("tokenizer.json"), t.to_string()).unwrap();
    }
}

fn image(name: &str) -> String {
    let p: PathBuf = [env!("CARGO_MANIFEST_DIR"), "../models/tests/goldens/vision", name].iter().collect();
    p.to_str().unwrap().to_string()
}

#[test]
fn vit_prints_the_top_k_labels() {
    let g = golden();
    let (repo, model) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write(model.path(), &g.vit);
    let m = model.path().to_str().unwrap();
    let (a, b) = (image("nonsquare.png"), image("alpha.png"));
    let args = ["classify", "--model", m, "--backend", "cpu", "--top-k", "2", "--json", &a, &b];
    let v: serde_json::Value = serde_json::from_str(stdout(&run(repo.path(), &args)).trim()).unwrap();
    assert_eq!(v["model_type"], "vit");
    assert_eq!(v["task"], "image-classification");
    assert_eq!(v["backend"], "cpu");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["image"], a.as_str());
    let labels = results[0]["labels"].as_array().unwrap();
    assert_eq!(labels.len(), 2);
    // transformers' logits for this image put "red car" first (3.69).
    assert_eq!(labels[0]["label"], "red car");
    assert!(labels[0]["score"].as_f64().unwrap() > labels[1]["score"].as_f64().unwrap());

    let text = stdout(&run(repo.path(), &["classify", "--model", m, "--backend", "cpu", "--top-k", "1", &a]));
    assert!(text.contains("red car") && text.contains("nonsquare.png"), "{text}");

    // --labels is for CLIP; a missing image and a bad --top-k are one-line errors.
    assert_clear_error(&run(repo.path(), &["classify", "--model", m, "--labels", "x,y", &a]), "CLIP");
    assert_clear_error(&run(repo.path(), &["classify", "--model", m, "/no/such.png"]), "/no/such.png");
    assert_clear_error(&run(repo.path(), &["classify", "--model", m, "--top-k", "0", &a]), "--top-k");
}

#[test]
fn clip_ranks_the_given_labels_and_requires_them() {
    let g = golden();
    let (repo, model) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write(model.path(), &g.clip);
    let m = model.path().to_str().unwrap();
    let a = image("photo_pil.png");
    let args = ["classify", "--model", m, "--backend", "cpu", "--labels", "cat, dog,red car", "--json", &a];
    let v: serde_json::Value = serde_json::from_str(stdout(&run(repo.path(), &args)).trim()).unwrap();
    assert_eq!(v["model_type"], "clip");
    assert_eq!(v["task"], "zero-shot-image-classification");
    let labels = v["results"][0]["labels"].as_array().unwrap();
    assert_eq!(labels.len(), 3);
    let total: f64 = labels.iter().map(|l| l["score"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-5, "{total}");

    assert_clear_error(&run(repo.path(), &["classify", "--model", m, &a]), "--labels");
    let bad_template = ["classify", "--model", m, "--labels", "cat", "--template", "a photo", &a];
    assert_clear_error(&run(repo.path(), &bad_template), "{label}");
}

/// Label → score of one `classify --json` run over one image.
fn scores(repo: &Path, args: &[&str]) -> (String, std::collections::BTreeMap<String, f64>) {
    let v: serde_json::Value = serde_json::from_str(stdout(&run(repo, args)).trim()).unwrap();
    let labels = v["results"][0]["labels"].as_array().unwrap();
    let scores = labels.iter().map(|l| (l["label"].as_str().unwrap().to_string(), l["score"].as_f64().unwrap()));
    (v["device"].as_str().unwrap_or_default().to_string(), scores.collect())
}

/// The ViT's probabilities of all five labels from a browser worker equal the
/// CPU's within 1e-4 (crates/browser/tests/vision_models.rs measured 2.3e-7).
fn vit_on_browser_matches_cpu(backend: &str, browser: &Path) {
    let g = golden();
    let (repo, model) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write(model.path(), &g.vit);
    let (m, a) = (model.path().to_str().unwrap(), image("nonsquare.png"));
    let base = ["classify", "--model", m, "--top-k", "5", "--json", &a];
    let (_, cpu) = scores(repo.path(), &[&base[..], &["--backend", "cpu"]].concat());
    // --ephemeral: a temporary profile, nothing kept under the data dir.
    let browser_args = ["--backend", backend, "--browser", browser.to_str().unwrap(), "--ephemeral"];
    let (device, web) = scores(repo.path(), &[&base[..], &browser_args].concat());
    assert!(device.starts_with(backend), "{device}");
    assert_eq!(web.keys().collect::<Vec<_>>(), cpu.keys().collect::<Vec<_>>());
    for (label, c) in &cpu {
        assert!((web[label] - c).abs() <= 1e-4, "{backend} {label}: {} vs cpu {c}", web[label]);
    }
}

/// `path` when it exists; else a SKIPPED notice (a failure under `CI=true`).
fn browser_at(path: PathBuf, what: &str) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path);
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true and no {what} at {}", path.display());
    eprintln!("SKIPPED: no {what} at {}", path.display());
    None
}

#[test]
fn vit_on_browser_webgpu_matches_cpu() {
    let Some(chromium) = browser_at(PathBuf::from("/usr/bin/chromium"), "chromium") else { return };
    vit_on_browser_matches_cpu("browser-webgpu", &chromium);
}

#[test]
fn vit_on_browser_webnn_matches_cpu() {
    let path = match std::env::var_os("IPFS_ACCELERATE_WEBNN_CHROMIUM") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/ipfs-accelerate/webnn-chromium/chromium/chromium"),
    };
    let what = "WebNN chromium (scripts/install-webnn-chromium.sh)";
    let Some(chromium) = browser_at(path, what) else { return };
    vit_on_browser_matches_cpu("browser-webnn", &chromium);
}
