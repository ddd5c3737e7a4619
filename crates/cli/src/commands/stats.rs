//! `ipfs-accelerate stats`: what the pool's journal says about the inferences
//! run so far — per model and backend, the count, the errors and the p50/p99
//! latency (nearest rank, successful inferences only).

use anyhow::{Context, Result};
use clap::Args;
use ipfs_accelerate_pool::journal::{self, Journal, StatsFilter, StatsRow};
use serde::Serialize;
use std::path::PathBuf;

/// Summarize the inferences recorded in the journal.
#[derive(Args)]
#[command(after_help = "Examples:
  ipfs-accelerate stats
  ipfs-accelerate stats --model all-MiniLM-L6-v2 --json
  ipfs-accelerate stats --journal /var/lib/ipfs-accelerate/journal.sqlite3

The journal is $IPFS_ACCELERATE_DATA_DIR/journal.sqlite3, else
~/.local/share/ipfs-accelerate/journal.sqlite3. Percentiles use the nearest rank over
successful inferences; errors count the others. The journal is only read.")]
pub struct StatsArgs {
    /// The journal file [default: $IPFS_ACCELERATE_DATA_DIR/journal.sqlite3, else
    /// ~/.local/share/ipfs-accelerate/journal.sqlite3].
    #[arg(long, value_name = "PATH")]
    journal: Option<PathBuf>,
    /// Only this model.
    #[arg(long, value_name = "MODEL")]
    model: Option<String>,
    /// Only this backend (cpu, wgpu, browser-webgpu, browser-webnn, remote, …).
    #[arg(long, value_name = "BACKEND")]
    backend: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// What `stats --json` prints.
#[derive(Serialize)]
struct Report {
    journal: PathBuf,
    stats: Vec<StatsRow>,
}

/// Runs `ipfs-accelerate stats`.
pub fn run(args: StatsArgs) -> Result<()> {
    let path = match args.journal {
        Some(path) => path,
        None => journal::default_path()?,
    };
    let filter = StatsFilter { model: args.model, backend: args.backend, since: None };
    // Never create a journal just to say it is empty.
    let stats = if path.exists() {
        Journal::open(&path)?.stats(&filter).with_context(|| format!("cannot read the journal {}", path.display()))?
    } else {
        Vec::new()
    };
    let empty_line = || {
        let mut line = format!("no inferences recorded yet at {}", path.display());
        if let Some(model) = &filter.model {
            line.push_str(&format!(" for model {model}"));
        }
        if let Some(backend) = &filter.backend {
            line.push_str(&format!(" on backend {backend}"));
        }
        line
    };
    if args.json {
        if stats.is_empty() {
            eprintln!("{}", empty_line());
        }
        println!("{}", serde_json::to_string_pretty(&Report { journal: path.clone(), stats })?);
        return Ok(());
    }
    if stats.is_empty() {
        println!("{}", empty_line());
        return Ok(());
    }
    println!("journal: {}", path.display());
    print!("{}", table(&stats));
    Ok(())
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"))
}

/// The rows as an aligned table, one line per (model, backend).
fn table(stats: &[StatsRow]) -> String {
    let header = ["model", "backend", "count", "errors", "p50 ms", "p99 ms", "items/s"];
    let rows: Vec<Vec<String>> = stats
        .iter()
        .map(|s| {
            vec![
                s.model.clone(),
                s.backend.clone(),
                s.count.to_string(),
                s.errors.to_string(),
                ms(s.p50_ms),
                ms(s.p99_ms),
                s.items_per_s.map_or_else(|| "-".to_string(), |v| format!("{v:.1}")),
            ]
        })
        .collect();
    crate::table::render(&header, &rows, 2)
}
