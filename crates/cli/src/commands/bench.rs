//! `ipfs-accelerate bench`: throughput benchmarks.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use ipfs_accelerate_models::TextEmbedder;
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod http;
mod matmul;
mod pool;

/// Benchmarks.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Sentences per second of `embed` at several batch sizes and text lengths.
    #[command(after_help = "Examples:
  ipfs-accelerate bench embed --model ~/.cache/ipfs-accelerate/test-models/all-MiniLM-L6-v2
  ipfs-accelerate bench embed --model ./all-MiniLM-L6-v2 --batch-sizes 1,8,32 --seconds 5 --json
  ipfs-accelerate bench embed --model ./all-MiniLM-L6-v2 --texts-file my-texts.txt")]
    Embed(BenchEmbedArgs),
    /// Square matmul GFLOP/s on webgpu (through the compiled-plan path, f32 and f16 weights) and the CPU backend.
    #[command(after_help = "Examples:
  ipfs-accelerate bench matmul
  ipfs-accelerate bench matmul --backend both --precision both --sizes 1024,2048,4096 --json
  ipfs-accelerate bench matmul --backend webgpu --sizes 64,128 --seconds 1   # software Vulkan (llvmpipe): keep it small

webgpu rows time the real plan path (GraphBuilder matmul with B a weight constant ->
compile_with -> LoadedPlan::run): 'end-to-end' includes writing A and reading the result
back; 'kernel' excludes them, measured as (time of 8 chained matmuls - time of 1) / 7 with
the same upload and readback. --precision 16 stores B as float16 on the device (matmul_f16w,
float32 arithmetic; needs shader-f16). The adapter is the one `devices` marks
(IPFS_ACCELERATE_ADAPTER to change it).")]
    Matmul(BenchMatmulArgs),
    /// What the resource pool adds per request over calling a worker directly (p50/p99), and
    /// requests/s as CPU workers are added.
    #[command(after_help = "Examples:
  ipfs-accelerate bench pool --model ~/.cache/ipfs-accelerate/test-models/all-MiniLM-L6-v2
  ipfs-accelerate bench pool --model ./all-MiniLM-L6-v2 --requests 1000 --workers 1,2 --callers 16 --json

Overhead: one CPU worker, one request (one short text) at a time; a request's overhead is
its wall time through the pool minus the worker's own time on it, with and without a
journal (a temporary file). Throughput: the same requests from --callers threads through
pools of --workers CPU workers, next to one thread calling one worker directly. CPU workers
share this machine's cores, so more of them only help when cores are idle.")]
    Pool(pool::BenchPoolArgs),
    /// Load on a running server's POST /v1/embeddings from N concurrent clients: req/s, p50/p99
    /// latency, 429s and errors, and the server's peak memory.
    #[command(after_help = "Examples:
  ipfs-accelerate serve --model all-MiniLM-L6-v2=DIR --max-concurrency 8 &
  ipfs-accelerate bench http --model all-MiniLM-L6-v2 --concurrency 1,8,32 --seconds 10 --server-pid $!
  ipfs-accelerate bench http --url http://embed-host:8000 --model minilm --requests 500 --texts-per-request 8 --json

Each level runs that many client threads, each with its own keep-alive connection, sending
requests back to back (--requests in total, or for --seconds). Latency percentiles count
answered requests only; 429s (the server's concurrency limit) and other failures are counted
apart, and a client pauses --busy-pause-ms after a 429. --server-pid samples the server's VmRSS every 50 ms and reads its VmHWM after each level.")]
    Http(http::BenchHttpArgs),
}

/// Options of `bench embed`.
#[derive(Args)]
pub struct BenchEmbedArgs {
    #[command(flatten)]
    model: crate::model_ref::ModelArgs,
    #[command(flatten)]
    backend: super::BackendArgs,
    /// Batch sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    batch_sizes: Vec<usize>,
    /// Seconds to measure each configuration (after one warm-up batch).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Benchmark these texts (one per line) instead of the built-in short (10–20 tokens)
    /// and long (128 tokens) sets.
    #[arg(long)]
    texts_file: Option<PathBuf>,
    /// Print one JSON object with all results.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Measurement {
    workload: String,
    batch_size: usize,
    texts: usize,
    mean_tokens: f64,
    sentences_per_sec: f64,
    mean_batch_ms: f64,
}

pub use matmul::BenchMatmulArgs;

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Embed(args) => embed(args),
        BenchCommand::Matmul(args) => matmul::run(args),
        BenchCommand::Pool(args) => pool::run(args),
        BenchCommand::Http(args) => http::run(args),
    }
}

fn embed(args: BenchEmbedArgs) -> Result<()> {
    if args.batch_sizes.contains(&0) {
        bail!("batch sizes must be at least 1");
    }
    if !args.seconds.is_finite() || args.seconds <= 0.0 {
        bail!("--seconds must be positive");
    }
    let model = super::load_embedder(&args.model, &args.backend)?;
    let workloads: Vec<(String, Vec<String>)> = match &args.texts_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            let texts: Vec<String> = text.lines().filter(|l| !l.is_empty()).map(str::to_string).collect();
            if texts.is_empty() {
                bail!("{} holds no texts (one per line)", path.display());
            }
            vec![("file".into(), texts)]
        }
        None => vec![("short".into(), short_texts(64)), ("long".into(), long_texts(&model, 64, 128)?)],
    };
    let mut results = Vec::new();
    for (name, texts) in &workloads {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encoded = model.tokenize(&refs)?;
        let mean_tokens = encoded.iter().map(|e| e.ids.len()).sum::<usize>() as f64 / texts.len() as f64;
        for &batch_size in &args.batch_sizes {
            let m = measure(&model, &refs, batch_size, Duration::from_secs_f64(args.seconds), name)?;
            results.push(Measurement { workload: name.clone(), mean_tokens, ..m });
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "model": args.model.model.clone(),
                "backend": model.backend().as_str(),
                "device": model.backend_description(),
                "precision": args.backend.precision.clone(),
                "threads": rayon::current_num_threads(),
                "results": results,
            })
        );
        return Ok(());
    }
    println!(
        "model {}  backend {}  threads {}",
        args.model.model,
        model.backend_description(),
        rayon::current_num_threads()
    );
    println!("{:<8} {:>6} {:>8} {:>12} {:>14}", "texts", "batch", "tokens", "sentences/s", "ms per batch");
    for r in &results {
        println!(
            "{:<8} {:>6} {:>8.1} {:>12.1} {:>14.2}",
            r.workload, r.batch_size, r.mean_tokens, r.sentences_per_sec, r.mean_batch_ms
        );
    }
    Ok(())
}

/// Embeds `texts` in batches of `batch_size` (tokenization included, as a user
/// would call it) until `duration` has passed and every text ran at least once.
fn measure(
    model: &TextEmbedder,
    texts: &[&str],
    batch_size: usize,
    duration: Duration,
    name: &str,
) -> Result<Measurement> {
    let bar = ProgressBar::new_spinner().with_message(format!("{name} texts, batch {batch_size}"));
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"));
    bar.enable_steady_tick(Duration::from_millis(200));
    model.embed(&texts[..batch_size.min(texts.len())], batch_size)?; // warm-up
    let start = Instant::now();
    let (mut done, mut batches) = (0usize, 0usize);
    while start.elapsed() < duration || done < texts.len() {
        for chunk in texts.chunks(batch_size) {
            model.embed(chunk, batch_size)?;
            done += chunk.len();
            batches += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    Ok(Measurement {
        workload: name.into(),
        batch_size,
        texts: texts.len(),
        mean_tokens: 0.0,
        sentences_per_sec: done as f64 / secs,
        mean_batch_ms: secs * 1e3 / batches as f64,
    })
}

const WORDS: &[&str] = &[
    "the",
    "model",
    "runs",
    "in",
    "a",
    "browser",
    "and",
    "on",
    "native",
    "GPUs",
    "with",
    "verified",
    "weights",
    "content",
    "addressed",
    "by",
    "hash",
    "every",
    "byte",
    "is",
    "checked",
    "before",
    "use",
    "fast",
    "small",
    "people",
    "search",
    "documents",
    "for",
    "answers",
    "about",
    "cats",
    "rivers",
    "music",
    "history",
    "science",
    "quickly",
    "reads",
    "writes",
    "shares",
    "network",
    "storage",
    "peer",
    "server",
    "request",
    "response",
    "sentence",
    "meaning",
    "vector",
    "space",
    "close",
    "far",
    "similar",
    "different",
    "today",
    "tomorrow",
    "city",
    "garden",
    "kitchen",
    "mountain",
    "ocean",
    "train",
    "ticket",
    "window",
];

/// Deterministic pseudo-random word sequence.
fn words(seed: u64) -> impl Iterator<Item = &'static str> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    std::iter::repeat_with(move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        WORDS[(state >> 33) as usize % WORDS.len()]
    })
}

/// `n` sentences of 8 to 16 words (10 to 20 tokens with the special tokens).
fn short_texts(n: usize) -> Vec<String> {
    (0..n).map(|i| words(i as u64).take(8 + i % 9).collect::<Vec<_>>().join(" ") + ".").collect()
}

/// `n` texts of about `tokens` tokens each (special tokens included).
fn long_texts(model: &TextEmbedder, n: usize, tokens: usize) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut text = String::new();
        for word in words(1000 + i as u64) {
            let candidate = if text.is_empty() { word.to_string() } else { format!("{text} {word}") };
            if model.tokenize(&[&candidate])?[0].ids.len() > tokens {
                break;
            }
            text = candidate;
        }
        out.push(text);
    }
    Ok(out)
}
