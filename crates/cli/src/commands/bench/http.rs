//! `ipfs-accelerate bench http`: a load generator against a running
//! server's `POST /v1/embeddings` (ours, or any OpenAI-compatible one).
//!
//! Each concurrency level runs that many client threads, each with its own
//! HTTP agent (so its own keep-alive connection, as independent clients
//! have), sending requests back to back until the level's request count or
//! time is used up. Latency counts only answered requests (200 with the
//! right number of vectors); 429s (the server's concurrency limit) and other
//! failures are counted apart. With `--server-pid` a sampler thread reads
//! the server's resident memory from /proc while the level runs, so a
//! report shows whether memory stays bounded under overload.

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use ipfs_accelerate_pool::journal::percentile;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the server's memory is sampled.
const MEMORY_SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// Options of `bench http`.
#[derive(Args)]
pub struct BenchHttpArgs {
    /// The server's root URL.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// The model name the server knows (as `GET /v1/models` lists it).
    #[arg(long)]
    model: String,
    /// Concurrent clients per measurement, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    concurrency: Vec<usize>,
    /// Requests per concurrency level (instead of --seconds).
    #[arg(long, conflicts_with = "seconds")]
    requests: Option<usize>,
    /// Seconds per concurrency level (default 5 when --requests is not given).
    #[arg(long)]
    seconds: Option<f64>,
    /// Texts in each request's `input` array.
    #[arg(long, default_value_t = 1)]
    texts_per_request: usize,
    /// Sent as `Authorization: Bearer KEY`.
    #[arg(long)]
    api_key: Option<String>,
    /// Sample this process's resident memory (/proc/PID/status) during each level.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Milliseconds a client pauses after a 429 before its next request, as
    /// a real client backs off (0: retry at once, which on a small machine
    /// takes CPU from the server under test).
    #[arg(long, default_value_t = 10)]
    busy_pause_ms: u64,
    /// Seconds one request may take before it counts as an error.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// One concurrency level's figures.
#[derive(Serialize, Default)]
struct Level {
    concurrency: usize,
    requests: usize,
    ok: usize,
    rejected_429: usize,
    errors: usize,
    requests_per_sec: f64,
    texts_per_sec: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    max_ms: Option<f64>,
    /// Largest VmRSS seen while the level ran.
    peak_rss_mib: Option<f64>,
    /// The server's VmHWM (peak RSS since it started) after the level.
    vm_hwm_mib: Option<f64>,
    /// The first failure other than a 429, to see what went wrong.
    first_error: Option<String>,
}

/// What one request ended as.
enum Outcome {
    Ok(Duration),
    Busy,
    Failed(String),
}

/// When a level stops.
#[derive(Clone, Copy)]
enum Budget {
    Requests(usize),
    Until(Instant),
}

/// Runs `bench http`.
pub fn run(args: BenchHttpArgs) -> Result<()> {
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        bail!("--concurrency needs levels of at least 1, e.g. --concurrency 1,8,32");
    }
    if args.texts_per_request == 0 || args.requests == Some(0) {
        bail!("--texts-per-request and --requests must be at least 1");
    }
    let seconds = args.seconds.unwrap_or(5.0);
    if !(seconds.is_finite() && seconds > 0.0) {
        bail!("--seconds must be a positive number");
    }
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .context("--timeout must be a positive number of seconds")?;
    if let Some(why) = ipfs_accelerate_pool::remote_worker::check_url(&args.url) {
        bail!("--url: {why}");
    }
    if let Some(pid) = args.server_pid {
        memory(pid).with_context(|| format!("--server-pid {pid}: cannot read /proc/{pid}/status"))?;
    }
    let endpoint = format!("{}/v1/embeddings", args.url.trim_end_matches('/'));
    let texts = super::short_texts(64.max(args.texts_per_request));
    let client = Client { endpoint, model: args.model.clone(), api_key: args.api_key.clone(), timeout, texts };

    // One request first: a wrong URL, model or key is one clear error, not
    // a table of failures.
    match client.send(&ureq::AgentBuilder::new().build(), 0, args.texts_per_request) {
        Outcome::Ok(_) => {}
        Outcome::Busy => bail!("{} answered 429 to a single request: is another load running?", client.endpoint),
        Outcome::Failed(e) => bail!("the first request failed: {e}"),
    }

    let client = Arc::new(client);
    let mut levels = Vec::new();
    for &concurrency in &args.concurrency {
        let budget = match args.requests {
            Some(n) => Budget::Requests(n),
            None => Budget::Until(Instant::now() + Duration::from_secs_f64(seconds)),
        };
        let bar = ProgressBar::new_spinner().with_message(format!("{concurrency} clients"));
        bar.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"));
        bar.enable_steady_tick(Duration::from_millis(200));
        let pause = Duration::from_millis(args.busy_pause_ms);
        let level = run_level(&client, concurrency, budget, args.texts_per_request, pause, args.server_pid);
        bar.finish_and_clear();
        levels.push(level);
    }
    print(&args, &levels);
    Ok(())
}

/// The request every client sends, and where.
struct Client {
    endpoint: String,
    model: String,
    api_key: Option<String>,
    timeout: Duration,
    texts: Vec<String>,
}

impl Client {
    /// Sends request number `n` (its texts rotate through the set) and
    /// checks that the answer has one vector per text.
    fn send(&self, agent: &ureq::Agent, n: usize, per_request: usize) -> Outcome {
        let input: Vec<&str> =
            (0..per_request).map(|i| self.texts[(n * per_request + i) % self.texts.len()].as_str()).collect();
        let body = serde_json::json!({"model": self.model, "input": input}).to_string();
        let mut request = agent.post(&self.endpoint).timeout(self.timeout).set("Content-Type", "application/json");
        if let Some(key) = &self.api_key {
            request = request.set("Authorization", &format!("Bearer {key}"));
        }
        let start = Instant::now();
        match request.send_string(&body) {
            Ok(response) => {
                let text = response.into_string();
                let elapsed = start.elapsed();
                let answer: Option<serde_json::Value> = text.ok().and_then(|t| serde_json::from_str(&t).ok());
                match answer.as_ref().and_then(|a| a["data"].as_array()).map(Vec::len) {
                    Some(n) if n == per_request => Outcome::Ok(elapsed),
                    Some(n) => Outcome::Failed(format!("{n} embeddings for {per_request} texts")),
                    None => Outcome::Failed("the answer is not an embeddings list".into()),
                }
            }
            Err(ureq::Error::Status(429, _)) => Outcome::Busy,
            Err(ureq::Error::Status(status, response)) => {
                let body = response.into_string().unwrap_or_default();
                let body: String = body.chars().take(200).collect();
                Outcome::Failed(format!("HTTP {status} from {}: {body}", self.endpoint))
            }
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }
}

/// Runs `concurrency` clients until `budget` is used up.
fn run_level(
    client: &Arc<Client>,
    concurrency: usize,
    budget: Budget,
    per_request: usize,
    busy_pause: Duration,
    pid: Option<u32>,
) -> Level {
    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = pid.map(|pid| {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0u64;
            while !done.load(Ordering::SeqCst) {
                if let Ok((rss, _)) = memory(pid) {
                    peak = peak.max(rss);
                }
                std::thread::sleep(MEMORY_SAMPLE_EVERY);
            }
            peak
        })
    });
    let start = Instant::now();
    let clients: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, next, results) = (client.clone(), next.clone(), results.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().build();
                let mut mine = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    let more = match budget {
                        Budget::Requests(total) => n < total,
                        Budget::Until(end) => Instant::now() < end,
                    };
                    if !more {
                        break;
                    }
                    let outcome = client.send(&agent, n, per_request);
                    if matches!(outcome, Outcome::Busy) && !busy_pause.is_zero() {
                        std::thread::sleep(busy_pause);
                    }
                    mine.push(outcome);
                }
                results.lock().unwrap_or_else(|p| p.into_inner()).extend(mine);
            })
        })
        .collect();
    for c in clients {
        // A client thread only panics on a bug; its requests are then missing from the counts.
        let _ = c.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    done.store(true, Ordering::SeqCst);
    let peak = sampler.and_then(|s| s.join().ok());
    let outcomes = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));

    let mut level = Level { concurrency, requests: outcomes.len(), ..Level::default() };
    let mut latencies = Vec::new();
    for outcome in outcomes {
        match outcome {
            Outcome::Ok(d) => latencies.push(d.as_secs_f64() * 1e3),
            Outcome::Busy => level.rejected_429 += 1,
            Outcome::Failed(e) => {
                level.errors += 1;
                level.first_error.get_or_insert(e);
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    level.ok = latencies.len();
    level.requests_per_sec = level.ok as f64 / elapsed;
    level.texts_per_sec = level.requests_per_sec * per_request as f64;
    level.p50_ms = percentile(&latencies, 50.0);
    level.p99_ms = percentile(&latencies, 99.0);
    level.max_ms = latencies.last().copied();
    let mib = |kib: u64| kib as f64 / 1024.0;
    level.peak_rss_mib = peak.filter(|p| *p > 0).map(mib);
    level.vm_hwm_mib = pid.and_then(|pid| memory(pid).ok()).map(|(_, hwm)| mib(hwm));
    level
}

/// The process's (VmRSS, VmHWM) in KiB, from /proc/PID/status.
fn memory(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    match (field("VmRSS:"), field("VmHWM:")) {
        (Some(rss), Some(hwm)) => Ok((rss, hwm)),
        _ => bail!("no VmRSS/VmHWM in /proc/{pid}/status (a kernel thread, or not Linux?)"),
    }
}

fn print(args: &BenchHttpArgs, levels: &[Level]) {
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "url": args.url,
                "model": args.model,
                "texts_per_request": args.texts_per_request,
                "busy_pause_ms": args.busy_pause_ms,
                "server_pid": args.server_pid,
                "results": levels,
            })
        );
        return;
    }
    println!("{}/v1/embeddings  model {}  {} text(s) per request", args.url, args.model, args.texts_per_request);
    println!(
        "{:>7} {:>8} {:>7} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "clients", "requests", "ok", "429", "errors", "req/s", "p50 ms", "p99 ms", "max ms", "peak RSS", "VmHWM"
    );
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
    let mib = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0} MiB"));
    for l in levels {
        println!(
            "{:>7} {:>8} {:>7} {:>6} {:>6} {:>9.1} {:>9} {:>9} {:>9} {:>10} {:>10}",
            l.concurrency,
            l.requests,
            l.ok,
            l.rejected_429,
            l.errors,
            l.requests_per_sec,
            ms(l.p50_ms),
            ms(l.p99_ms),
            ms(l.max_ms),
            mib(l.peak_rss_mib),
            mib(l.vm_hwm_mib)
        );
    }
    for l in levels.iter().filter(|l| l.first_error.is_some()) {
        println!("{} clients, first error: {}", l.concurrency, l.first_error.as_deref().unwrap_or_default());
    }
}
