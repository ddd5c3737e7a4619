//! `ipfs-accelerate serve` end to end: prints its listening line, answers
//! /v1/embeddings with the real MiniLM on a CPU worker, records the traffic
//! in the journal, and exits cleanly (status 0, no process left) on SIGTERM.

#[path = "../../models/tests/common/mod.rs"]
mod common;
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the server if the test fails before it exits, so no process is left.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `serve --addr 127.0.0.1:0 --backend BACKEND --model MODEL` with its
/// data under `data`; returns the process, its stdout and its first line.
fn serve(backend: &str, model: &str, data: &std::path::Path) -> (Guard, BufReader<std::process::ChildStdout>, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_ipfs-accelerate"))
        .args(["serve", "--addr", "127.0.0.1:0", "--backend", backend, "--model", model])
        .env("IPFS_ACCELERATE_DATA_DIR", data)
        .env("IPFS_ACCELERATE_REPO", data.join("repo"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut guard = Guard(child);
    let mut stdout = BufReader::new(guard.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    (guard, stdout, line)
}

#[test]
fn serve_answers_embeddings_and_exits_cleanly_on_sigterm() {
    let Some(model) = common::test_model("all-MiniLM-L6-v2") else { return };
    let data = tempfile::tempdir().unwrap();
    let (mut guard, mut stdout, line) = serve("cpu", &format!("minilm={}", model.display()), data.path());
    let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"), "{url}");

    let body = serde_json::json!({ "model": "minilm", "input": ["hello", "world"] }).to_string();
    let response = ureq::post(&format!("{url}/v1/embeddings"))
        .set("Content-Type", "application/json")
        .send_string(&body)
        .expect("the embeddings request succeeds");
    let json: serde_json::Value = serde_json::from_str(&response.into_string().unwrap()).unwrap();
    assert_eq!(json["data"].as_array().unwrap().len(), 2);
    assert_eq!(json["data"][1]["embedding"].as_array().unwrap().len(), 384);

    let pid = guard.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = guard.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(guard.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(rest.trim().is_empty(), "only the listening line is printed: {rest:?}");

    // The journal saw the server's worker and its request.
    let out = Command::new(env!("CARGO_BIN_EXE_ipfs-accelerate"))
        .args(["pool", "status", "--json"])
        .env("IPFS_ACCELERATE_DATA_DIR", data.path())
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_str(&support::stdout(&out)).unwrap();
    assert_eq!(status["workers"][0]["id"], "cpu-0", "{status}");
    assert_eq!(status["latencies"][0]["samples"], 1, "{status}");
}

#[test]
fn serve_without_a_usable_model_is_one_clear_error() {
    let data = tempfile::tempdir().unwrap();
    let missing = data.path().join("no-such-model");
    let out = Command::new(env!("CARGO_BIN_EXE_ipfs-accelerate"))
        .args(["serve", "--addr", "127.0.0.1:0", "--backend", "cpu", "--offline", "--model"])
        .arg(&missing)
        .env("IPFS_ACCELERATE_DATA_DIR", data.path())
        .env("IPFS_ACCELERATE_REPO", data.path().join("repo"))
        .output()
        .unwrap();
    support::assert_clear_error(&out, "no-such-model");
}

/// A Whisper model is loaded on `--backend` (here webgpu; the speech routes
/// themselves are tested in crates/server/tests/transcription.rs).
#[test]
fn serve_loads_whisper_on_the_backend_asked_for() {
    let Some(model) = common::test_model("whisper-tiny.en") else { return };
    let data = tempfile::tempdir().unwrap();
    let (mut guard, _stdout, line) = serve("webgpu", &format!("whisper={}", model.display()), data.path());
    let Some(url) = line.trim().strip_prefix("listening on ").map(str::to_string) else {
        let _ = guard.0.wait();
        let mut stderr = String::new();
        std::io::Read::read_to_string(guard.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true and serve on webgpu failed: {stderr}");
        eprintln!("SKIPPED: no webgpu backend here: {stderr}");
        return;
    };
    let models = ureq::get(&format!("{url}/v1/models")).call().unwrap().into_string().unwrap();
    assert!(models.contains("\"whisper\""), "{models}");
    let _ = guard.0.kill();
    let _ = guard.0.wait();
    let mut stderr = String::new();
    std::io::Read::read_to_string(guard.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("encoder webgpu ("), "{stderr}");
    assert!(stderr.contains("decoder webgpu ("), "{stderr}");
}
