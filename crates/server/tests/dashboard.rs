//! `GET /dashboard` in a real headless Chromium: after some traffic through
//! a journaled CPU pool, the rendered page lists the workers with their
//! state, the model with where it is loaded, and draws the throughput and
//! latency charts; a screenshot is saved as a test artifact
//! (`$CARGO_TARGET_TMPDIR/dashboard.png`). `/dashboard/data` is checked as
//! JSON too.
//!
//! Skipped with a notice without chromium or the test model, unless `CI=true`.

mod support;

use ipfs_accelerate_browser::discover::{find, BrowserKind};
use ipfs_accelerate_pool::journal::Journal;
use ipfs_accelerate_pool::{LocalWorker, Pool, PoolConfig};
use ipfs_accelerate_server::Server;
use std::process::Command;
use std::sync::Arc;
use support::{get, post};

/// Chromium's flags for a one-shot headless page load: `extra` adds
/// `--dump-dom` or `--screenshot=…`. The virtual time budget lets the
/// page's fetch and drawing finish before the dump.
fn headless(chromium: &std::path::Path, profile: &std::path::Path, extra: &[String], url: &str) -> Vec<u8> {
    let mut cmd = Command::new(chromium);
    cmd.args(["--headless=new", "--disable-gpu", "--no-first-run", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--window-size=1280,1000", "--virtual-time-budget=8000"])
        .args(extra)
        .arg(url);
    if ipfs_accelerate_browser::launch::running_as_root() {
        cmd.arg("--no-sandbox");
    }
    let out = cmd.output().expect("chromium starts");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn the_dashboard_shows_workers_models_and_charts_in_chromium() {
    let Some(dir) = support::minilm() else { return };
    let Some(chromium) = find(BrowserKind::Chromium) else {
        assert!(!std::env::var("CI").is_ok_and(|v| v == "true" || v == "1"), "CI=true and no chromium");
        eprintln!("SKIPPED: no chromium (apt-get install chromium, or IPFS_ACCELERATE_CHROMIUM)");
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let journal = Arc::new(Journal::open(scratch.path().join("journal.sqlite3")).unwrap());
    let pool = Arc::new(Pool::with_journal(PoolConfig::default(), journal));
    pool.add_worker(Arc::new(LocalWorker::cpu("cpu-dashboard")));
    let server = Server::start(support::config(&dir, pool)).unwrap();
    for i in 0..5 {
        let body = serde_json::json!({ "model": "minilm", "input": [format!("dashboard traffic {i}")] }).to_string();
        assert_eq!(post(&server, "/v1/embeddings", &body).status, 200);
    }

    let data = get(&server, "/dashboard/data", None).json();
    assert_eq!(data["workers"][0]["id"], "cpu-dashboard");
    assert_eq!(data["models"][0]["name"], "minilm");
    assert_eq!(data["models"][0]["loaded_on"][0], "cpu-dashboard");
    let counted: u64 = data["timeline"].as_array().unwrap().iter().map(|p| p["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, 5, "the timeline holds the requests: {data}");
    let page = get(&server, "/dashboard", None);
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"));

    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let url = format!("http://{}/dashboard", server.addr());
    let dom = headless(&chromium.path, &scratch.path().join("profile-dom"), &["--dump-dom".into()], &url);
    let dom = String::from_utf8_lossy(&dom);
    assert!(dom.contains("data-loaded=\"true\""), "the page fetched its data: {dom}");
    assert!(dom.contains("data-worker=\"cpu-dashboard\""), "the worker card is there");
    assert!(dom.contains("native-cpu") && dom.contains("circuit closed"), "kind and circuit are shown");
    assert!(dom.contains("<td>minilm</td><td>cpu-dashboard</td>"), "the model and where it is loaded");
    assert!(dom.contains("<polyline"), "the charts are drawn");
    assert!(dom.contains("1 worker(s), 1 ready"), "the summary line");

    let shot = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    headless(&chromium.path, &scratch.path().join("profile-shot"), &[format!("--screenshot={}", shot.display())], &url);
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    assert!(png.len() > 10_000, "a page with content, not a blank image ({} bytes)", png.len());
    eprintln!("dashboard screenshot: {}", shot.display());
    server.shutdown().unwrap();
}
