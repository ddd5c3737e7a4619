//! `ipfs-accelerate bench pool`: what the resource pool costs and gives.
//!
//! * **Overhead**: one CPU worker, one request at a time (one short text
//!   each). Each request's overhead is its wall time through the pool minus
//!   the time the worker spent on it (the answer's own latency): queueing,
//!   dispatching, scheduling and, with a journal, its two SQLite commits. A
//!   direct call of the same worker runs alternately as the reference.
//! * **Throughput**: requests per second with 1, 2, … CPU workers and several
//!   callers, next to direct calls from one thread.

use anyhow::{bail, Result};
use clap::Args;
use ipfs_accelerate_pool::journal::{percentile, Journal};
use ipfs_accelerate_pool::queue::Priority;
use ipfs_accelerate_pool::{LocalWorker, Pool, PoolConfig, Worker};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `bench pool`.
#[derive(Args)]
pub struct BenchPoolArgs {
    #[command(flatten)]
    model: crate::model_ref::ModelArgs,
    /// Requests per measurement.
    #[arg(long, default_value_t = 300)]
    requests: usize,
    /// CPU worker counts for the throughput rows, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    workers: Vec<usize>,
    /// Concurrent callers in the throughput rows.
    #[arg(long, default_value_t = 8)]
    callers: usize,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Overhead {
    journal: bool,
    requests: usize,
    direct_p50_ms: f64,
    direct_p99_ms: f64,
    pool_p50_ms: f64,
    pool_p99_ms: f64,
    overhead_p50_ms: f64,
    overhead_p99_ms: f64,
}

#[derive(Serialize)]
struct Throughput {
    workers: usize,
    callers: usize,
    requests: usize,
    requests_per_sec: f64,
    /// Over one thread calling one worker directly.
    ratio_to_direct: f64,
}

/// Runs `bench pool`.
pub fn run(args: BenchPoolArgs) -> Result<()> {
    if args.requests == 0 || args.callers == 0 || args.workers.contains(&0) {
        bail!("--requests, --callers and every --workers count must be at least 1");
    }
    let dir = crate::model_ref::resolve(&args.model)?;
    let texts: Vec<String> = (0..args.requests).map(|i| format!("benchmark request number {i} for the pool")).collect();
    let scratch = tempfile::tempdir()?;

    let mut overhead = Vec::new();
    for journal in [false, true] {
        let journal = journal.then(|| Journal::open(scratch.path().join("bench.sqlite3"))).transpose()?;
        overhead.push(measure_overhead(&dir, &texts, journal.map(Arc::new))?);
    }
    let direct_rps = {
        let worker = LocalWorker::cpu("direct");
        worker.embed(&dir, &["warm-up"])?;
        let start = Instant::now();
        for t in &texts {
            worker.embed(&dir, &[t.as_str()])?;
        }
        texts.len() as f64 / start.elapsed().as_secs_f64()
    };
    let mut throughput = Vec::new();
    for &workers in &args.workers {
        let rps = measure_throughput(&dir, &texts, workers, args.callers)?;
        throughput.push(Throughput {
            workers,
            callers: args.callers,
            requests: texts.len(),
            requests_per_sec: rps,
            ratio_to_direct: rps / direct_rps,
        });
    }
    if args.json {
        let out = serde_json::json!({
            "model": args.model.model,
            "threads": rayon::current_num_threads(),
            "overhead": overhead,
            "direct_requests_per_sec": direct_rps,
            "throughput": throughput,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let ms = |v: f64| format!("{v:.3}");
    let rows: Vec<Vec<String>> = overhead
        .iter()
        .map(|o| {
            vec![
                if o.journal { "with journal" } else { "no journal" }.to_string(),
                ms(o.direct_p50_ms),
                ms(o.direct_p99_ms),
                ms(o.pool_p50_ms),
                ms(o.pool_p99_ms),
                ms(o.overhead_p50_ms),
                ms(o.overhead_p99_ms),
            ]
        })
        .collect();
    println!("pool overhead, 1 cpu worker, {} sequential requests of one short text (ms):", texts.len());
    let header = ["", "direct p50", "direct p99", "pool p50", "pool p99", "overhead p50", "overhead p99"];
    print!("{}", crate::table::render(&header, &rows, 1));
    println!();
    println!("throughput, {} callers (direct: one thread calling one worker, {direct_rps:.1} req/s):", args.callers);
    let rows: Vec<Vec<String>> = throughput
        .iter()
        .map(|t| {
            vec![t.workers.to_string(), format!("{:.1}", t.requests_per_sec), format!("{:.2}x", t.ratio_to_direct)]
        })
        .collect();
    print!("{}", crate::table::render(&["cpu workers", "req/s", "vs direct"], &rows, 0));
    Ok(())
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn p(v: &[f64], q: f64) -> f64 {
    percentile(v, q).unwrap_or(f64::NAN)
}

fn measure_overhead(dir: &Path, texts: &[String], journal: Option<Arc<Journal>>) -> Result<Overhead> {
    let with_journal = journal.is_some();
    let config = PoolConfig { dispatchers: 1, ..PoolConfig::default() };
    let pool = match journal {
        Some(j) => Pool::with_journal(config, j),
        None => Pool::new(config),
    };
    let pooled_worker = Arc::new(LocalWorker::cpu("pooled"));
    pool.add_worker(pooled_worker.clone());
    let direct = LocalWorker::cpu("direct");
    direct.embed(dir, &["warm-up"])?;
    pool.embed(dir, &["warm-up"])?;
    let (mut direct_ms, mut pool_ms, mut overhead_ms) = (Vec::new(), Vec::new(), Vec::new());
    for t in texts {
        let start = Instant::now();
        direct.embed(dir, &[t.as_str()])?;
        direct_ms.push(start.elapsed().as_secs_f64() * 1e3);
        let start = Instant::now();
        let answer = pool.submit(dir, vec![t.clone()], Priority::Normal)?.wait()?;
        let total = start.elapsed();
        pool_ms.push(total.as_secs_f64() * 1e3);
        overhead_ms.push(total.saturating_sub(answer.latency).as_secs_f64() * 1e3);
    }
    let (direct_ms, pool_ms, overhead_ms) = (sorted(direct_ms), sorted(pool_ms), sorted(overhead_ms));
    Ok(Overhead {
        journal: with_journal,
        requests: texts.len(),
        direct_p50_ms: p(&direct_ms, 50.0),
        direct_p99_ms: p(&direct_ms, 99.0),
        pool_p50_ms: p(&pool_ms, 50.0),
        pool_p99_ms: p(&pool_ms, 99.0),
        overhead_p50_ms: p(&overhead_ms, 50.0),
        overhead_p99_ms: p(&overhead_ms, 99.0),
    })
}

fn measure_throughput(dir: &Path, texts: &[String], workers: usize, callers: usize) -> Result<f64> {
    let pool = Arc::new(Pool::new(PoolConfig { dispatchers: workers.max(callers), ..PoolConfig::default() }));
    for i in 0..workers {
        let worker = Arc::new(LocalWorker::cpu(format!("cpu-{i}")));
        worker.embed(dir, &["warm-up"])?;
        pool.add_worker(worker);
    }
    let start = Instant::now();
    let chunk = texts.len().div_ceil(callers);
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = texts
            .chunks(chunk)
            .map(|part| {
                let pool = pool.clone();
                s.spawn(move || -> Result<()> {
                    for t in part {
                        pool.embed(dir, &[t.as_str()])?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| bail!("a caller thread panicked"))).collect()
    });
    for r in results {
        r?;
    }
    Ok(texts.len() as f64 / start.elapsed().as_secs_f64().max(Duration::from_micros(1).as_secs_f64()))
}
