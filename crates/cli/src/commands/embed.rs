//! `ipfs-accelerate embed`: sentence embeddings.

use anyhow::Result;
use clap::Args;
use std::time::Instant;

/// Embed texts with a sentence-embedding model.
#[derive(Args)]
#[command(after_help = "Examples:
  ipfs-accelerate embed --model ~/.cache/ipfs-accelerate/test-models/all-MiniLM-L6-v2 \"Hello, world\"
  cat sentences.txt | ipfs-accelerate embed --model ./all-MiniLM-L6-v2 --json -")]
pub struct EmbedArgs {
    #[command(flatten)]
    model: crate::model_ref::ModelArgs,
    #[command(flatten)]
    backend: super::BackendArgs,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Print one JSON object with all embeddings instead of a summary.
    #[arg(long)]
    json: bool,
    /// Texts to embed; `-` reads one text per line from stdin.
    #[arg(required = true)]
    texts: Vec<String>,
}

pub fn run(args: EmbedArgs) -> Result<()> {
    let texts = crate::texts::collect(&args.texts)?;
    let model = super::load_embedder(&args.model, &args.backend)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let start = Instant::now();
    let embeddings = model.embed(&refs, args.batch_size)?;
    let latency_ms = start.elapsed().as_secs_f64() * 1e3;
    if args.json {
        let out = serde_json::json!({
            "model": args.model.model.clone(),
            "model_type": model.model_type().as_str(),
            "backend": model.backend().as_str(),
            "device": model.backend_description(),
            "dim": model.dim(),
            "embeddings": embeddings,
            "latency_ms": latency_ms,
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "{} text(s), dim {}, backend {}, {:.1} ms",
        texts.len(),
        model.dim(),
        model.backend_description(),
        latency_ms
    );
    for (text, v) in texts.iter().zip(&embeddings) {
        let head: Vec<String> = v.iter().take(6).map(|x| format!("{x:+.4}")).collect();
        println!("[{}, ...]  {}", head.join(", "), shorten(text, 60));
    }
    Ok(())
}

/// `text` cut to `max` characters with an ellipsis.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}
