//! `ipfs-accelerate embed`: sentence embeddings.

use anyhow::Result;
use clap::Args;
use std::time::Instant;

/// Embed texts with a sentence-embedding model.
#[derive(Args)]
#[command(after_help = "Examples:
  ipfs-accelerate embed --model ~/.cache/ipfs-accelerate/test-models/all-MiniLM-L6-v2 \"Hello, world\"
  cat sentences.txt | ipfs-accelerate embed --model ./all-MiniLM-L6-v2 --json -
  ipfs-accelerate embed --model all-MiniLM-L6-v2 --pool pool.toml --shards 2 \"Hello, world\"

With --pool the texts run through the resource pool the file describes (its workers, retries,
journal); --backend and the browser options are then taken from the file (docs/pool.md).")]
pub struct EmbedArgs {
    #[command(flatten)]
    model: crate::model_ref::ModelArgs,
    #[command(flatten)]
    backend: super::BackendArgs,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Run through the resource pool this file describes instead of one backend.
    #[arg(long, value_name = "POOL.TOML")]
    pool: Option<std::path::PathBuf>,
    /// With --pool: split the model's layers into this many pipeline stages, each on a
    /// worker of its own [default: the file's pool.shards, else 1].
    #[arg(long, value_name = "N", requires = "pool")]
    shards: Option<usize>,
    /// With --pool: the journal to write [default: the file's, else the data dir's].
    #[arg(long, value_name = "PATH", requires = "pool")]
    journal: Option<std::path::PathBuf>,
    /// Print one JSON object with all embeddings instead of a summary.
    #[arg(long)]
    json: bool,
    /// Texts to embed; `-` reads one text per line from stdin.
    #[arg(required = true)]
    texts: Vec<String>,
}

pub fn run(args: EmbedArgs) -> Result<()> {
    let texts = crate::texts::collect(&args.texts)?;
    if let Some(config) = &args.pool {
        return run_pool(&args, config, texts);
    }
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
    print_heads(&texts, &embeddings);
    Ok(())
}

/// `embed --pool`: every batch is one pool request (sharded when asked).
fn run_pool(args: &EmbedArgs, config: &std::path::Path, texts: Vec<String>) -> Result<()> {
    if args.batch_size == 0 {
        anyhow::bail!("--batch-size must be at least 1");
    }
    let dir = crate::model_ref::resolve(&args.model)?;
    let started = super::pool::start(config, args.journal.as_deref())?;
    let shards = args.shards.unwrap_or(started.file.shards());
    let start = Instant::now();
    let tickets = texts
        .chunks(args.batch_size)
        .map(|batch| {
            let batch = batch.to_vec();
            let priority = ipfs_accelerate_pool::queue::Priority::Normal;
            if shards > 1 {
                started.pool.submit_sharded(&dir, batch, shards, priority)
            } else {
                started.pool.submit(&dir, batch, priority)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut embeddings = Vec::with_capacity(texts.len());
    let mut workers = std::collections::BTreeSet::new();
    for ticket in tickets {
        let answer = ticket.wait()?;
        if answer.stages.is_empty() {
            workers.insert(format!("{} ({})", answer.worker, answer.kind.as_str()));
        } else {
            workers.insert(format!("stages on {}", answer.stages.join(" -> ")));
        }
        embeddings.extend(answer.embeddings);
    }
    let latency_ms = start.elapsed().as_secs_f64() * 1e3;
    let workers: Vec<String> = workers.into_iter().collect();
    if args.json {
        let out = serde_json::json!({
            "model": args.model.model.clone(),
            "model_type": "text-embedding",
            "backend": "pool",
            "workers": workers,
            "shards": shards,
            "dim": embeddings.first().map_or(0, Vec::len),
            "embeddings": embeddings,
            "latency_ms": latency_ms,
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "{} text(s), dim {}, pool: {}, {:.1} ms",
        texts.len(),
        embeddings.first().map_or(0, Vec::len),
        workers.join(", "),
        latency_ms
    );
    print_heads(&texts, &embeddings);
    Ok(())
}

/// One line per text: the first values of its vector, then the text, shortened.
fn print_heads(texts: &[String], embeddings: &[Vec<f32>]) {
    for (text, v) in texts.iter().zip(embeddings) {
        let head: Vec<String> = v.iter().take(6).map(|x| format!("{x:+.4}")).collect();
        println!("[{}, ...]  {}", head.join(", "), shorten(text, 60));
    }
}

/// `text` cut to `max` characters with an ellipsis.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}
