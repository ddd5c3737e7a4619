//! `ipfs-accelerate browsers`: each browser is launched on the worker page and
//! its measured capabilities listed. Debian's chromium has WebGPU (SwiftShader)
//! and no WebNN; the Chromium that `scripts/install-webnn-chromium.sh` unpacks
//! has WebNN. Parts whose browser is missing are skipped with a notice, unless
//! `CI=true`. A browser that cannot be found or started is a row with an
//! `error`, and the command still exits 0.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

fn browsers(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipfs-accelerate"))
        .arg("browsers")
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::var_os("XDG_RUNTIME_DIR").unwrap_or_else(|| "/tmp".into()))
        .output()
        .unwrap()
}

/// The `--json` array of a run that must have exited 0.
fn reports(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--json"];
    all.extend(args);
    let out = browsers(&all);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().expect("a JSON array").clone()
}

fn present(path: PathBuf, what: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true and no {what}");
    eprintln!("SKIPPED: no {what}");
    None
}

fn webnn_chromium() -> PathBuf {
    std::env::var_os("IPFS_ACCELERATE_WEBNN_CHROMIUM").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/ipfs-accelerate/webnn-chromium/chromium/chromium")
    })
}

#[test]
fn debian_chromium_is_listed_with_webgpu() {
    let Some(_) = present(PathBuf::from("/usr/bin/chromium"), "chromium") else { return };
    let list = reports(&[]);
    let chromium =
        list.iter().find(|r| r["browser"] == "chromium").unwrap_or_else(|| panic!("no chromium in {list:?}"));
    assert!(chromium["error"].is_null(), "{chromium}");
    assert!(chromium["version"].is_string(), "{chromium}");
    let caps = &chromium["capabilities"];
    assert_eq!(caps["webgpu"]["available"], true, "{caps}");
    assert!(caps["webgpu"]["limits"]["maxStorageBufferBindingSize"].as_f64().unwrap() > 0.0);
    for key in ["webnn", "wasm", "userAgent"] {
        assert!(!caps[key].is_null(), "no {key} in {caps}");
    }
}

#[test]
fn the_webnn_chromium_given_with_browser_has_webnn() {
    let Some(path) = present(webnn_chromium(), "WebNN chromium (scripts/install-webnn-chromium.sh)") else { return };
    let path = path.to_str().unwrap();
    let list = reports(&["--browser", path]);
    let entry = list.iter().find(|r| r["path"] == path).unwrap_or_else(|| panic!("{path} not in {list:?}"));
    assert!(entry["error"].is_null(), "{entry}");
    assert_eq!(entry["capabilities"]["webnn"]["available"], true, "{entry}");
}

#[test]
fn a_missing_browser_is_a_row_with_an_error_and_exit_0() {
    let list = reports(&["--browser", "/nonexistent"]);
    let entry = list.iter().find(|r| r["path"] == "/nonexistent").unwrap_or_else(|| panic!("{list:?}"));
    assert!(entry["capabilities"].is_null());
    assert!(entry["error"].as_str().unwrap().contains("/nonexistent"), "{entry}");

    // The table shows the same row and the error under it.
    let out = browsers(&["--browser", "/nonexistent"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().any(|l| l.contains("error") && l.ends_with("/nonexistent")), "{text}");
    assert!(text.contains("error: browser binary \"/nonexistent\""), "{text}");
}

#[test]
fn a_bad_timeout_is_one_clear_error() {
    let out = browsers(&["--timeout", "0"]);
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "error: --timeout must be positive");
}
