//! `ipfs-accelerate classify`: image classification (ViT) and zero-shot
//! image classification (CLIP).

use anyhow::{bail, Result};
use clap::Args;
use ipfs_accelerate_models::vision::{ImageClassifier, DEFAULT_TEMPLATE};
use ipfs_accelerate_models::{BackendChoice, Precision};
use std::path::PathBuf;
use std::time::Instant;

/// Classify images: a ViT with its own labels, or CLIP zero-shot over --labels.
#[derive(Args)]
#[command(after_help = "Examples:
  ipfs-accelerate classify --model ./vit-base-patch16-224 cat.jpg dog.png --top-k 3
  ipfs-accelerate classify --model ./clip-vit-base-patch32 photo.jpg --labels cat,dog,car --json
  ipfs-accelerate classify --model ./vit-base-patch16-224 cat.jpg --backend browser-webnn --browser chrome

A ViT (model_type vit) ranks its own labels (config.json id2label). CLIP (model_type clip)
ranks the labels given with --labels, each wrapped in --template.")]
pub struct ClassifyArgs {
    #[command(flatten)]
    model: crate::model_ref::ModelArgs,
    /// --backend (browser-webgpu / browser-webnn too), the browser options and --precision,
    /// as `embed` takes them.
    #[command(flatten)]
    backend: super::BackendArgs,
    /// Candidate labels for CLIP zero-shot classification, comma-separated (required for CLIP).
    #[arg(long, value_delimiter = ',', value_name = "A,B,C")]
    labels: Vec<String>,
    /// CLIP prompt template; {label} is replaced by each label.
    #[arg(long, default_value = DEFAULT_TEMPLATE)]
    template: String,
    /// How many labels to show per image, most probable first.
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Image files (PNG, JPEG, WebP, GIF or BMP).
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
}

pub fn run(args: ClassifyArgs) -> Result<()> {
    if args.top_k == 0 {
        bail!("--top-k must be at least 1");
    }
    let precision = Precision::parse(&args.backend.precision)?;
    let mut model = match super::browser_backend(&args.backend) {
        Some(kind) => {
            // The model first: a bad --model fails before a browser starts.
            let dir = crate::model_ref::resolve(&args.model)?;
            let (engine, notice) = super::browser_engine(kind, &args.backend, precision)?;
            ImageClassifier::load_on(&dir, engine, notice)?
        }
        None => {
            let choice = BackendChoice::parse(&args.backend.backend).map_err(|_| {
                anyhow::anyhow!(
                    "unknown backend {:?} for classify: use auto, cpu, webgpu, browser-webgpu or browser-webnn",
                    args.backend.backend
                )
            })?;
            let dir = crate::model_ref::resolve(&args.model)?;
            ImageClassifier::load_with(&dir, choice, precision)?
        }
    };
    if let Some(notice) = model.backend_notice() {
        eprintln!("{notice}");
    }
    let labels: Vec<&str> = args.labels.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect();
    match (model.is_zero_shot(), labels.is_empty()) {
        (true, true) => bail!(
            "{} is a CLIP model, which classifies by labels you name: pass --labels, e.g. --labels cat,dog,car",
            args.model.model
        ),
        (false, false) => bail!(
            "{} is a ViT classifier with its own {} labels; --labels is for CLIP models (zero-shot)",
            args.model.model,
            model.labels().len()
        ),
        _ => {}
    }
    model.set_template(&args.template)?;
    let images = args.images.iter().map(|path| model.read_image(path)).collect::<Result<Vec<_>, _>>()?;
    let start = Instant::now();
    let mut results =
        if model.is_zero_shot() { model.zero_shot(&images, &labels)? } else { model.classify(&images, args.top_k)? };
    let latency_ms = start.elapsed().as_secs_f64() * 1e3;
    for scored in &mut results {
        scored.truncate(args.top_k);
    }
    if args.json {
        let results: Vec<serde_json::Value> = args
            .images
            .iter()
            .zip(&results)
            .map(|(path, scored)| {
                let labels: Vec<serde_json::Value> =
                    scored.iter().map(|(label, score)| serde_json::json!({"label": label, "score": score})).collect();
                serde_json::json!({"image": path.display().to_string(), "labels": labels})
            })
            .collect();
        let out = serde_json::json!({
            "model": args.model.model.clone(),
            "model_type": model.model_type(),
            "task": if model.is_zero_shot() { "zero-shot-image-classification" } else { "image-classification" },
            "backend": model.backend().as_str(),
            "device": model.backend_description(),
            "results": results,
            "latency_ms": latency_ms,
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "{} image(s), {} ({}), backend {}, {:.1} ms",
        images.len(),
        model.model_type(),
        if model.is_zero_shot() { "zero-shot" } else { "classification" },
        model.backend_description(),
        latency_ms
    );
    for (path, scored) in args.images.iter().zip(&results) {
        println!("{}", path.display());
        for (label, score) in scored {
            println!("  {score:.4}  {label}");
        }
    }
    Ok(())
}
