//! `ipfs-accelerate classify` end to end on the tiny random ViT and CLIP of
//! crates/models/tests/goldens/tiny-vision.json (weights regenerated from
//! their seeds into a temp dir): top-k of the ViT's own labels, CLIP
//! zero-shot over --labels, `--json`, and one-line errors.

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
