//! `ipfs-accelerate similarity`: cosine similarity between texts.

use super::embed::shorten;
use anyhow::{bail, Result};
use clap::Args;

/// Print the cosine-similarity matrix of texts.
#[derive(Args)]
#[command(after_help = "Example:
  ipfs-accelerate similarity --model ~/.cache/ipfs-accelerate/test-models/all-MiniLM-L6-v2 \\
      \"A cat sits on the mat\" \"A kitten rests on a rug\" \"Stock prices fell today\"")]
pub struct SimilarityArgs {
    #[command(flatten)]
    model: crate::model_ref::ModelArgs,
    #[command(flatten)]
    backend: super::BackendArgs,
    /// Print the matrix as JSON (`{"texts": [...], "matrix": [[...]]}`).
    #[arg(long)]
    json: bool,
    /// Two or more texts; `-` reads one text per line from stdin.
    #[arg(required = true)]
    texts: Vec<String>,
}

pub fn run(args: SimilarityArgs) -> Result<()> {
    let texts = crate::texts::collect(&args.texts)?;
    if texts.len() < 2 {
        bail!("similarity needs at least two texts to compare, got {}", texts.len());
    }
    let model = super::load_embedder(&args.model, &args.backend)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let v = model.embed(&refs, 32)?;
    let matrix: Vec<Vec<f32>> = v.iter().map(|a| v.iter().map(|b| cosine(a, b)).collect()).collect();
    if args.json {
        println!("{}", serde_json::json!({ "texts": texts, "matrix": matrix }));
        return Ok(());
    }
    for (i, t) in texts.iter().enumerate() {
        println!("[{i}] {}", shorten(t, 70));
    }
    println!();
    print!("{:>5}", "");
    for j in 0..texts.len() {
        print!("{:>8}", format!("[{j}]"));
    }
    println!();
    for (i, row) in matrix.iter().enumerate() {
        print!("{:>5}", format!("[{i}]"));
        for x in row {
            print!("{x:>8.4}");
        }
        println!();
    }
    Ok(())
}

/// Cosine similarity of two vectors (0 when either is zero).
fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}
