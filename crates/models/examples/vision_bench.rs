//! Forward-pass speed of an image classifier through the public API, for
//! benchmarks/vision/compare.py: EfficientNet-Lite0 (a converted directory,
//! `model_type` `efficientnet_lite`) or ViT (a `ViTForImageClassification`
//! directory, `model_type` `vit`). Loads the model, decodes and preprocesses
//! one image with the model's own `preprocessor_config.json`, repeats it into
//! a batch, runs one warm-up forward pass and then `--iters` timed ones, and
//! prints one JSON line (median seconds per batch, images per second, the
//! first image's top-1 class; with `--logits`, the first image's logits too).
//! Preprocessing and loading are not timed.
//!
//! ```sh
//! cargo run --release -p ipfs-accelerate-models --example vision_bench -- \
//!     ~/.cache/ipfs-accelerate/test-models/efficientnet-lite0 \
//!     crates/models/tests/goldens/efficientnet/flower.png --batch 8 --iters 10 [--backend cpu] [--logits]
//! ```
//!
//! Threads: RAYON_NUM_THREADS (default: the CPU count).

use std::path::{Path, PathBuf};
use std::time::Instant;

use ipfs_accelerate_models::vision::efficientnet::{top_predictions, EfficientNet};
use ipfs_accelerate_models::vision::vit::{ViTConfig, ViTModel};
use ipfs_accelerate_models::vision::{decode_image, Alpha, ImageProcessor};
use ipfs_accelerate_models::{BackendChoice, Precision, SafetensorsFile};
use ipfs_accelerate_tensor::Tensor;

type Forward = Box<dyn Fn(&Tensor) -> ipfs_accelerate_models::Result<Tensor>>;

/// A loaded model, ready to time: its forward pass on a pixel batch.
struct Bench {
    model_type: &'static str,
    backend: &'static str,
    labels: Vec<String>,
    pixels: Tensor,
    forward: Forward,
}

/// EfficientNet-Lite through `EfficientNet` (load, decode, preprocess,
/// `EfficientNetLite::forward`).
fn efficientnet(
    dir: &Path,
    image: &Path,
    batch: usize,
    choice: BackendChoice,
) -> Result<Bench, Box<dyn std::error::Error>> {
    let model = EfficientNet::load(dir, choice)?;
    let decoded = model.read_image(image)?;
    let pixels = model.processor().preprocess_batch(&vec![decoded; batch])?;
    Ok(Bench {
        model_type: "efficientnet_lite",
        backend: model.backend().as_str(),
        labels: model.labels().to_vec(),
        pixels,
        forward: Box::new(move |pixels| model.model().forward(model.engine(), pixels)),
    })
}

/// ViT through `ViTModel` (the model `ImageClassifier` wraps): config.json
/// into `ViTConfig`, model.safetensors, preprocessor_config.json, then
/// `ViTModel::forward` on the engine. The image is decoded as
/// `ImageClassifier` does for a processor without `do_convert_rgb` (alpha dropped).
fn vit(dir: &Path, image: &Path, batch: usize, choice: BackendChoice) -> Result<Bench, Box<dyn std::error::Error>> {
    let cfg: ViTConfig = serde_json::from_slice(&std::fs::read(dir.join("config.json"))?)?;
    let file = SafetensorsFile::open(&dir.join("model.safetensors"))?;
    let model = ViTModel::load(cfg, &file)?;
    drop(file);
    if !model.has_classifier() {
        return Err(
            format!("{} has no classifier head (ViTModel, not ViTForImageClassification)", dir.display()).into()
        );
    }
    let processor = ImageProcessor::load(dir)?;
    let (engine, _notice) = choice.open(Precision::F32)?;
    let decoded = decode_image(&std::fs::read(image)?, Alpha::Drop)?;
    let pixels = processor.preprocess_batch(&vec![decoded; batch])?;
    Ok(Bench {
        model_type: "vit",
        backend: engine.kind().as_str(),
        labels: model.labels().to_vec(),
        pixels,
        forward: Box::new(move |pixels| model.forward(&engine, pixels)),
    })
}

/// `model_type` of the directory's config.json.
fn model_type(dir: &Path) -> Result<String, Box<dyn std::error::Error>> {
    let path = dir.join("config.json");
    let raw: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?)?;
    Ok(raw.get("model_type").and_then(|v| v.as_str()).unwrap_or("").to_string())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut positional = Vec::new();
    let (mut batch, mut iters, mut backend, mut with_logits) = (1usize, 10usize, "cpu".to_string(), false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--batch" => batch = args.next().ok_or("--batch needs a number")?.parse()?,
            "--iters" => iters = args.next().ok_or("--iters needs a number")?.parse()?,
            "--backend" => backend = args.next().ok_or("--backend needs cpu, webgpu or auto")?,
            "--logits" => with_logits = true,
            _ => positional.push(PathBuf::from(arg)),
        }
    }
    let [dir, image] = positional.as_slice() else {
        return Err(
            "usage: vision_bench MODEL_DIR IMAGE [--batch N] [--iters N] [--backend cpu|webgpu|auto] [--logits]".into(),
        );
    };
    if batch == 0 || iters == 0 {
        return Err("--batch and --iters must be at least 1".into());
    }
    let choice = BackendChoice::parse(&backend).map_err(|e| format!("--backend {backend}: {e}"))?;
    let bench = match model_type(dir)?.as_str() {
        "vit" => vit(dir, image, batch, choice)?,
        "efficientnet_lite" => efficientnet(dir, image, batch, choice)?,
        other => {
            return Err(format!("{}: model_type {other:?}: expected vit or efficientnet_lite", dir.display()).into())
        }
    };

    let warm = (bench.forward)(&bench.pixels)?; // warm-up
    let classes = bench.labels.len();
    let first = warm.as_f32().ok_or("the logits are not float32")?[..classes].to_vec();
    let top1 = top_predictions(&first, &bench.labels, 1).remove(0);
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let start = Instant::now();
        let logits = (bench.forward)(&bench.pixels)?;
        std::hint::black_box(logits.as_f32().map(|v| v.len()));
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let mut out = serde_json::json!({
        "model_type": bench.model_type,
        "batch": batch,
        "iterations": iters,
        "backend": bench.backend,
        "seconds_per_batch": median,
        "images_per_second": batch as f64 / median,
        "top1": top1.label,
        "top1_id": top1.id,
    });
    if with_logits {
        out["logits"] = serde_json::json!(first);
    }
    println!("{out}");
    Ok(())
}
