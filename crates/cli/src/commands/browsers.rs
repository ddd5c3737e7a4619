//! `ipfs-accelerate browsers`: what each installed browser can do as a worker.
//!
//! For every browser [`find_all`] discovers, plus each one named with
//! `--browser`, this starts a [`Bridge`], launches the browser headless with a
//! temporary profile on the worker page, waits (bounded) for the page's `hello`
//! and shows the capabilities the page measured (`crates/browser/web/capabilities.js`):
//! the WebGPU adapter, its features and limits; whether a WebNN context
//! resolves on cpu, gpu and npu; WASM SIMD and threads; device memory. The
//! browser is stopped right after.
//!
//! A browser that cannot be resolved, fails to start or never joins still gets
//! a row, with its error: the command itself only fails on bad arguments.

use anyhow::{bail, Result};
use clap::Args;
use ipfs_accelerate_browser::discover::{find_all, resolve, InstalledBrowser};
use ipfs_accelerate_browser::launch::{launch, LaunchOptions, Profile};
use ipfs_accelerate_browser::{Bridge, BridgeConfig};
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// Launch each installed browser briefly and show what it offers a worker.
#[derive(Args)]
#[command(after_help = "Examples:
  ipfs-accelerate browsers
  ipfs-accelerate browsers --json
  ipfs-accelerate browsers --browser ~/.cache/ipfs-accelerate/webnn-chromium/chromium/chromium

A browser that fails to start or never joins is listed with its error; the exit status is
still 0. None installed? apt-get install chromium (WebGPU through SwiftShader), or
scripts/install-webnn-chromium.sh for a Chromium with WebNN, then pass it with --browser.")]
pub struct BrowsersArgs {
    /// Print one JSON array, an object per browser with the full capability report.
    #[arg(long)]
    json: bool,
    /// Also probe this browser: chrome, chromium, edge, firefox or a path (repeatable).
    #[arg(long, value_name = "NAME|PATH")]
    browser: Vec<String>,
    /// Seconds to wait for each browser's page to join.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    timeout: f64,
}

/// One browser as `browsers --json` prints it.
#[derive(Serialize)]
struct BrowserReport {
    /// chrome, chromium, edge or firefox; null when `--browser` named nothing usable.
    browser: Option<&'static str>,
    /// The version from `--version`, when it answered.
    version: Option<String>,
    /// The binary, or the `--browser` argument as given when it names none.
    path: String,
    /// What the page measured (see `capabilities.js`); null on error.
    capabilities: Option<Value>,
    /// Why there are no capabilities: the browser was not found, did not start or never joined.
    error: Option<String>,
}

pub fn run(args: BrowsersArgs) -> Result<()> {
    if !args.timeout.is_finite() || args.timeout <= 0.0 {
        bail!("--timeout must be positive");
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    let reports: Vec<BrowserReport> = targets(&args.browser)
        .into_iter()
        .map(|target| match target {
            Ok(browser) => probe(&browser, timeout),
            Err((spec, error)) => {
                BrowserReport { browser: None, version: None, path: spec, capabilities: None, error: Some(error) }
            }
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else if reports.is_empty() {
        println!(
            "no browsers found: install Chromium (apt-get install chromium) or Chrome, \
             run scripts/install-webnn-chromium.sh for one with WebNN, or pass --browser PATH"
        );
    } else {
        print_table(&reports);
    }
    Ok(())
}

/// The installed browsers, then each `--browser` not already among them
/// (same binary after resolving links); an unresolvable one as `(spec, error)`.
fn targets(specs: &[String]) -> Vec<Result<InstalledBrowser, (String, String)>> {
    let canonical = |b: &InstalledBrowser| std::fs::canonicalize(&b.path).unwrap_or_else(|_| b.path.clone());
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut out = Vec::new();
    for b in find_all() {
        seen.push(canonical(&b));
        out.push(Ok(b));
    }
    for spec in specs {
        match resolve(spec) {
            Ok(b) if seen.contains(&canonical(&b)) => {}
            Ok(b) => {
                seen.push(canonical(&b));
                out.push(Ok(b));
            }
            Err(e) => out.push(Err((spec.clone(), e.to_string()))),
        }
    }
    out
}

/// Launches `browser` on a fresh bridge's worker page, waits up to `timeout` for
/// its `hello`, and stops it again.
fn probe(browser: &InstalledBrowser, timeout: Duration) -> BrowserReport {
    let mut report = BrowserReport {
        browser: Some(browser.kind.name()),
        version: browser.version.clone(),
        path: browser.path.display().to_string(),
        capabilities: None,
        error: None,
    };
    match capabilities(browser, timeout) {
        Ok(caps) => report.capabilities = Some(caps),
        Err(e) => report.error = Some(e),
    }
    report
}

/// The capability report of `browser`'s worker page, or why there is none.
fn capabilities(browser: &InstalledBrowser, timeout: Duration) -> Result<Value, String> {
    let bridge = Bridge::start(BridgeConfig::default()).map_err(|e| format!("cannot start the bridge: {e}"))?;
    let options = LaunchOptions { headless: true, profile: Profile::Ephemeral, extra_args: Vec::new() };
    let process = launch(browser, &bridge.worker_url(), &options).map_err(|e| e.to_string())?;
    let result = match bridge.wait_for_worker(timeout) {
        Ok(worker) => Ok(worker.capabilities().clone()),
        Err(e) => {
            let exited = process.exit_status().map(|s| format!(" (the browser exited: {s})")).unwrap_or_default();
            let tail = process.output_tail(3).trim().replace('\n', " | ");
            let said = if tail.is_empty() { String::new() } else { format!("; it said: {tail}") };
            Err(format!("{e}{exited}{said}"))
        }
    };
    let _ = process.stop();
    result
}

/// One row per browser, then the notes the columns have no room for: the
/// adapter description, and every error or reason something is unavailable.
fn print_table(reports: &[BrowserReport]) {
    let header = [
        "BROWSER",
        "VERSION",
        "WEBGPU",
        "ADAPTER",
        "F16",
        "SUBGROUPS",
        "TIMESTAMP",
        "MAX-STORAGE",
        "MAX-BUFFER",
        "WEBNN-CPU",
        "WEBNN-GPU",
        "WEBNN-NPU",
        "SIMD",
        "THREADS",
        "MEMORY",
        "PATH",
    ];
    let rows: Vec<Vec<String>> = reports.iter().map(row).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len() - 1;
        let padded: Vec<String> = cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| if i == last { c } else { format!("{c:<w$}", w = widths[i]) })
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r);
    }
    for report in reports {
        let notes = notes(report);
        if !notes.is_empty() {
            println!();
            println!("{} {}:", report.browser.unwrap_or("browser"), report.version.as_deref().unwrap_or(&report.path));
            for n in notes {
                println!("  {n}");
            }
        }
    }
}

/// The table cells of one browser; a failed one has only its name, version and path.
fn row(report: &BrowserReport) -> Vec<String> {
    let name = report.browser.unwrap_or("?").to_string();
    let version = report.version.clone().unwrap_or_else(|| "-".into());
    let Some(caps) = &report.capabilities else {
        let mut cells = vec![name, version, "error".into()];
        cells.resize(15, "-".into());
        cells.push(report.path.clone());
        return cells;
    };
    let gpu = &caps["webgpu"];
    let gpu_ok = gpu["available"].as_bool() == Some(true);
    let gpu_cell = |v: &Value| if gpu_ok { yes_no(v) } else { "-".into() };
    let adapter = if gpu_ok {
        let a = &gpu["adapter"];
        [&a["vendor"], &a["architecture"]]
            .iter()
            .filter_map(|v| v.as_str().filter(|s| !s.is_empty()))
            .collect::<Vec<_>>()
            .join("/")
    } else {
        "-".into()
    };
    let webnn = |device: &str| match caps["webnn"]["devices"][device]["ok"].as_bool() {
        Some(ok) => yes_no(&Value::Bool(ok)),
        None => "no".into(),
    };
    let memory = match caps["deviceMemoryGiB"].as_f64() {
        Some(gib) => format!("{gib} GiB"),
        None => "-".into(),
    };
    vec![
        name,
        version,
        yes_no(&gpu["available"]),
        if adapter.is_empty() { "?".into() } else { adapter },
        gpu_cell(&gpu["shaderF16"]),
        gpu_cell(&gpu["subgroups"]),
        gpu_cell(&gpu["timestampQuery"]),
        bytes(&gpu["limits"]["maxStorageBufferBindingSize"]),
        bytes(&gpu["limits"]["maxBufferSize"]),
        webnn("cpu"),
        webnn("gpu"),
        webnn("npu"),
        yes_no(&caps["wasm"]["simd"]),
        yes_no(&caps["wasm"]["threads"]),
        memory,
        report.path.clone(),
    ]
}

/// The lines under a browser's row: its error, the adapter description, and
/// why WebGPU or a WebNN device is unavailable.
fn notes(report: &BrowserReport) -> Vec<String> {
    let Some(caps) = &report.capabilities else {
        return vec![format!("error: {}", report.error.as_deref().unwrap_or("no capabilities reported"))];
    };
    let mut out = Vec::new();
    let gpu = &caps["webgpu"];
    if let Some(d) = gpu["adapter"]["description"].as_str().filter(|d| !d.is_empty()) {
        out.push(format!("webgpu adapter: {d}"));
    }
    if let Some(reason) = gpu["reason"].as_str() {
        out.push(format!("webgpu: {reason}"));
    }
    let webnn = &caps["webnn"];
    if let Some(reason) = webnn["reason"].as_str() {
        out.push(format!("webnn: {reason}"));
    }
    for device in ["cpu", "gpu", "npu"] {
        if let Some(e) = webnn["devices"][device]["error"].as_str() {
            out.push(format!("webnn {device}: {e}"));
        }
    }
    out
}

fn yes_no(v: &Value) -> String {
    match v.as_bool() {
        Some(true) => "yes".into(),
        Some(false) => "no".into(),
        None => "-".into(),
    }
}

/// A byte count as MiB or GiB (limits are powers of two or close to them).
fn bytes(v: &Value) -> String {
    let Some(n) = v.as_f64() else { return "-".into() };
    let gib = n / (1u64 << 30) as f64;
    if gib >= 1.0 {
        format!("{gib:.1} GiB").replace(".0 GiB", " GiB")
    } else {
        format!("{:.0} MiB", n / (1u64 << 20) as f64)
    }
}
