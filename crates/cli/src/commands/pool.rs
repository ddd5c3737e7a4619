//! `ipfs-accelerate pool …`: the resource pool from the command line.
//!
//! `pool status` shows the workers (kind, browser, state, circuit) and the
//! models loaded on them: live, by starting the pool a config file
//! describes (`--config`), or as the journal last recorded it (what a
//! running server or `embed --pool` keeps current).

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use ipfs_accelerate_pool::config::PoolFile;
use ipfs_accelerate_pool::journal::{self, Journal};
use ipfs_accelerate_pool::{Pool, WorkerStatus};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The resource pool.
#[derive(Subcommand)]
pub enum PoolCommand {
    /// Show the pool's workers, their state and circuit, and the models loaded on them.
    #[command(after_help = "Examples:
  ipfs-accelerate pool status
  ipfs-accelerate pool status --config pool.toml --json

Without --config it reads the journal ($IPFS_ACCELERATE_DATA_DIR/journal.sqlite3, else
~/.local/share/ipfs-accelerate/journal.sqlite3) and shows what running pools recorded there.
With --config it starts the pool the file describes (launching its browsers), checks every
worker's health and shows the live state; docs/pool.md documents the file.")]
    Status(StatusArgs),
}

/// `pool status` options.
#[derive(Args)]
pub struct StatusArgs {
    /// Start the pool this file describes and show its live state.
    #[arg(long, value_name = "POOL.TOML")]
    config: Option<PathBuf>,
    /// The journal to read (or, with --config, to write) [default: the data dir's].
    #[arg(long, value_name = "PATH")]
    journal: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// Runs a `pool` subcommand.
pub fn run(cmd: PoolCommand) -> Result<()> {
    match cmd {
        PoolCommand::Status(args) => status(args),
    }
}

/// A pool started from a config file, with its journal.
pub struct StartedPool {
    /// The pool.
    pub pool: Pool,
    /// The parsed file.
    pub file: PoolFile,
}

/// Starts the pool `config` describes: opens its journal (`journal`
/// overrides the file's), adds its workers and warms them up, printing
/// workers that failed to start as warnings (the pool serves without them).
pub fn start(config: &Path, journal: Option<&Path>) -> Result<StartedPool> {
    let file = PoolFile::load(config)?;
    let path = match journal.map(Path::to_path_buf).or_else(|| file.journal.clone()) {
        Some(p) => p,
        None => journal::default_path()?,
    };
    let journal = Arc::new(Journal::open(&path)?);
    let pool = Pool::with_journal(file.pool_config(), journal);
    for worker in file.build_workers(&super::data_dir()?) {
        pool.add_worker(worker);
    }
    for (id, why) in pool.warm_up() {
        eprintln!("warning: worker {id} did not start: {why}");
    }
    Ok(StartedPool { pool, file })
}

fn status(args: StatusArgs) -> Result<()> {
    match &args.config {
        Some(config) => live_status(config, args.journal.as_deref(), args.json),
        None => journal_status(args.journal, args.json),
    }
}

fn live_status(config: &Path, journal: Option<&Path>, json: bool) -> Result<()> {
    let started = start(config, journal)?;
    // Give the health thread one round so a dead worker shows as such.
    std::thread::sleep(started.file.pool_config().health_interval.min(Duration::from_secs(5)));
    let workers = started.pool.status();
    if json {
        let out = serde_json::json!({
            "config": config,
            "journal": started.pool.journal().map(|j| j.path().to_path_buf()),
            "workers": workers,
            "latencies": started.pool.latencies(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    print!("{}", live_table(&workers));
    Ok(())
}

fn live_table(workers: &[WorkerStatus]) -> String {
    let header = ["worker", "kind", "browser", "state", "circuit", "answered", "failed", "models"];
    let rows: Vec<Vec<String>> = workers
        .iter()
        .map(|w| {
            vec![
                w.id.clone(),
                w.kind.as_str().to_string(),
                w.browser.clone().unwrap_or_else(|| "-".into()),
                w.state().to_string(),
                w.circuit.state.to_string(),
                w.answered.to_string(),
                w.failed.to_string(),
                if w.models.is_empty() { "-".into() } else { w.models.join(", ") },
            ]
        })
        .collect();
    crate::table::render(&header, &rows, 5)
}

fn journal_status(path: Option<PathBuf>, json: bool) -> Result<()> {
    let path = match path {
        Some(p) => p,
        None => journal::default_path()?,
    };
    if !path.exists() {
        // Never create a journal just to say it is empty.
        println!("no pool has recorded anything yet at {}", path.display());
        return Ok(());
    }
    let journal = Journal::open(&path)?;
    let read = || format!("cannot read the journal {}", path.display());
    let workers = journal.workers().with_context(read)?;
    let placements = journal.placements().with_context(read)?;
    let latencies = journal.latencies().with_context(read)?;
    if json {
        let out = serde_json::json!({
            "journal": path,
            "workers": workers,
            "placements": placements,
            "latencies": latencies,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("journal: {}", path.display());
    if workers.is_empty() {
        println!("no workers registered yet");
        return Ok(());
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let rows: Vec<Vec<String>> = workers
        .iter()
        .map(|w| {
            let models: Vec<&str> =
                placements.iter().filter(|p| p.worker_id == w.worker.id).map(|p| p.model.as_str()).collect();
            vec![
                w.worker.id.clone(),
                w.worker.kind.clone(),
                w.worker.browser.clone().unwrap_or_else(|| "-".into()),
                w.worker.state.clone(),
                ago(now - w.last_seen_at),
                if models.is_empty() { "-".into() } else { models.join(", ") },
            ]
        })
        .collect();
    print!("{}", crate::table::render(&["worker", "kind", "browser", "state", "last seen", "models"], &rows, 4));
    if !latencies.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = latencies
            .iter()
            .map(|l| {
                vec![
                    l.model.clone(),
                    l.worker_kind.clone(),
                    if l.browser.is_empty() { "-".into() } else { l.browser.clone() },
                    format!("{:.2}", l.ms),
                    l.samples.to_string(),
                ]
            })
            .collect();
        print!("{}", crate::table::render(&["model", "kind", "browser", "avg ms", "samples"], &rows, 3));
    }
    Ok(())
}

/// `ms` milliseconds as "12 s ago" / "3 min ago" / "2 h ago".
fn ago(ms: i64) -> String {
    let s = (ms / 1000).max(0);
    match s {
        0..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        _ => format!("{} h ago", s / 3600),
    }
}
