//! `embed --backend browser-webgpu|browser-webnn`: a real browser started as
//! a worker gives the CPU backend's embeddings (cosine ≥ 0.999). WebGPU runs
//! in Debian's chromium (SwiftShader); WebNN in the Chromium that
//! `scripts/install-webnn-chromium.sh` unpacks. Skipped with a notice when
//! either is missing, unless `CI=true`.

#[path = "../../models/tests/common/mod.rs"]
mod common;
mod support;

use ipfs_accelerate_browser::discover::InstalledBrowser;
use ipfs_accelerate_browser::launch::{launch, LaunchOptions};
use std::path::PathBuf;
use std::process::{Command, Output};
use support::assert_clear_error;

fn embed(args: &[&str], data_dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipfs-accelerate"))
        .arg("embed")
        .args(args)
        .env("IPFS_ACCELERATE_DATA_DIR", data_dir)
        .output()
        .unwrap()
}

fn embeddings(out: &Output) -> (String, Vec<Vec<f64>>) {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect())
        .collect();
    (v["device"].as_str().unwrap_or_default().to_string(), rows)
}

fn present(path: Option<PathBuf>, what: &str) -> Option<PathBuf> {
    match path.filter(|p| p.exists()) {
        Some(p) => Some(p),
        None => {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true and no {what}");
            eprintln!("SKIPPED: no {what}");
            None
        }
    }
}

fn check_against_cpu(backend: &str, browser: &str) {
    let Some(model) = common::test_model("all-MiniLM-L6-v2") else { return };
    let m = model.to_str().unwrap();
    let data = tempfile::tempdir().unwrap();
    let texts = ["Content-addressed weights are verified on load.", "Every byte is checked."];
    let mut args = vec!["--model", m, "--backend", backend, "--browser", browser, "--json"];
    args.extend(texts);
    let (device, on_browser) = embeddings(&embed(&args, data.path()));
    assert!(device.starts_with(backend), "{device}");
    let (_, on_cpu) =
        embeddings(&embed(&["--model", m, "--backend", "cpu", "--json", texts[0], texts[1]], data.path()));
    for (b, c) in on_browser.iter().zip(&on_cpu) {
        let cos: f64 = b.iter().zip(c).map(|(x, y)| x * y).sum();
        assert!(cos >= 0.999, "{backend}: cosine {cos}");
    }
}

#[test]
fn browser_webgpu_in_chromium_matches_the_cpu() {
    let Some(chromium) = present(Some(PathBuf::from("/usr/bin/chromium")), "chromium") else { return };
    check_against_cpu("browser-webgpu", chromium.to_str().unwrap());
}

#[test]
fn browser_webnn_matches_the_cpu() {
    let dir = std::env::var_os("IPFS_ACCELERATE_WEBNN_CHROMIUM").map(PathBuf::from).or_else(|| {
        let home = PathBuf::from(std::env::var_os("HOME")?);
        Some(home.join(".cache/ipfs-accelerate/webnn-chromium/chromium/chromium"))
    });
    let Some(chromium) = present(dir, "WebNN chromium (scripts/install-webnn-chromium.sh)") else { return };
    check_against_cpu("browser-webnn", chromium.to_str().unwrap());
}

#[test]
fn a_browser_without_webnn_or_a_missing_browser_is_one_clear_error() {
    let Some(model) = common::test_model("all-MiniLM-L6-v2") else { return };
    let m = model.to_str().unwrap();
    let data = tempfile::tempdir().unwrap();
    let out =
        embed(&["--model", m, "--backend", "browser-webgpu", "--browser", "/nonexistent/chrome", "x"], data.path());
    assert_clear_error(&out, "/nonexistent/chrome");
    if PathBuf::from("/usr/bin/chromium").exists() {
        let out =
            embed(&["--model", m, "--backend", "browser-webnn", "--browser", "/usr/bin/chromium", "x"], data.path());
        assert_clear_error(&out, "no usable webnn");
    }
}

#[test]
fn browser_manual_prints_the_worker_url_and_any_browser_can_join() {
    let Some(model) = common::test_model("all-MiniLM-L6-v2") else { return };
    let Some(chromium) = present(Some(PathBuf::from("/usr/bin/chromium")), "chromium") else { return };
    let data = tempfile::tempdir().unwrap();
    let mut cli = Command::new(env!("CARGO_BIN_EXE_ipfs-accelerate"))
        .args(["embed", "--model", model.to_str().unwrap(), "--backend", "browser-webgpu", "--browser", "manual"])
        .args(["--json", "joined by hand"])
        .env("IPFS_ACCELERATE_DATA_DIR", data.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(cli.stderr.take().unwrap()), &mut line).unwrap();
    let url = line.split_whitespace().find(|w| w.starts_with("http://127.0.0.1:")).unwrap_or_else(|| panic!("{line}"));
    // "The user" opens the URL in their own browser.
    let installed = InstalledBrowser::from_path(&chromium).unwrap();
    let browser = launch(&installed, url, &LaunchOptions::default()).unwrap();
    let out = cli.wait_with_output().unwrap();
    // Stops the browser and its whole process group.
    drop(browser);
    let (device, rows) = embeddings(&out);
    assert!(device.starts_with("browser-webgpu"), "{device}");
    assert_eq!(rows.len(), 1);
}
