//! Forward-pass speed of EfficientNet-Lite0 through the public API, for
//! benchmarks/vision/compare.py: loads the model, decodes and preprocesses
//! one image, repeats it into a batch, runs one warm-up forward pass and then
//! `--iters` timed ones, and prints one JSON line (median seconds per batch,
//! images per second, the first image's top-1 class). Preprocessing and loading are not timed.
//!
//! ```sh
//! cargo run --release -p ipfs-accelerate-models --example vision_bench -- \
//!     ~/.cache/ipfs-accelerate/test-models/efficientnet-lite0 \
//!     crates/models/tests/goldens/efficientnet/flower.png --batch 8 --iters 10 [--backend cpu]
//! ```
//!
//! Threads: RAYON_NUM_THREADS (default: the CPU count).

use std::path::PathBuf;
use std::time::Instant;

use ipfs_accelerate_models::vision::efficientnet::{top_predictions, EfficientNet};
use ipfs_accelerate_models::BackendChoice;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut positional = Vec::new();
    let (mut batch, mut iters, mut backend) = (1usize, 10usize, "cpu".to_string());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--batch" => batch = args.next().ok_or("--batch needs a number")?.parse()?,
            "--iters" => iters = args.next().ok_or("--iters needs a number")?.parse()?,
            "--backend" => backend = args.next().ok_or("--backend needs cpu, webgpu or auto")?,
            _ => positional.push(PathBuf::from(arg)),
        }
    }
    let [dir, image] = positional.as_slice() else {
        return Err("usage: vision_bench MODEL_DIR IMAGE [--batch N] [--iters N] [--backend cpu|webgpu|auto]".into());
    };
    if batch == 0 || iters == 0 {
        return Err("--batch and --iters must be at least 1".into());
    }
    let choice = BackendChoice::parse(&backend).map_err(|e| format!("--backend {backend}: {e}"))?;
    let model = EfficientNet::load(dir, choice)?;
    let decoded = model.read_image(image)?;
    let pixels = model.processor().preprocess_batch(&vec![decoded; batch])?;

    let warm = model.model().forward(model.engine(), &pixels)?; // warm-up
    let classes = model.labels().len();
    let first = &warm.as_f32().ok_or("the logits are not float32")?[..classes];
    let top1 = top_predictions(first, model.labels(), 1).remove(0).label;
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let start = Instant::now();
        let logits = model.model().forward(model.engine(), &pixels)?;
        std::hint::black_box(logits.as_f32().map(|v| v.len()));
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let out = serde_json::json!({
        "batch": batch,
        "iterations": iters,
        "backend": model.backend().as_str(),
        "seconds_per_batch": median,
        "images_per_second": batch as f64 / median,
        "top1": top1,
    });
    println!("{out}");
    Ok(())
}
