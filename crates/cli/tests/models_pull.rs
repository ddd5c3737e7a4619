//! `models pull` against a local stand-in for the Hugging Face Hub: an axum
//! server on 127.0.0.1 answering `/{repo}/resolve/{revision}/{file}` with
//! the headers hf-hub reads (etag, x-repo-commit, Content-Range for ranged
//! GETs) and 404 for files the repository lacks.

#[path = "../../models/tests/common/mod.rs"]
mod common;
mod support;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::assert_clear_error;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Serves `root/{file}` for `/{org}/{name}/resolve/{revision}/{file}`;
/// returns the endpoint URL. The server lives until the test process exits.
fn serve_hub(root: PathBuf) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().fallback(move |uri: axum::http::Uri, headers: HeaderMap| {
                let root = root.clone();
                async move { resolve(&root, uri.path(), &headers) }
            });
            axum::serve(listener, app).await.unwrap();
        });
    });
    format!("http://{addr}")
}

fn resolve(root: &Path, path: &str, headers: &HeaderMap) -> Response {
    let not_found = || Response::builder().status(StatusCode::NOT_FOUND).body(Body::from("Entry not found")).unwrap();
    let Some((_repo, rest)) = path.split_once("/resolve/") else { return not_found() };
    let Some((_revision, file)) = rest.split_once('/') else { return not_found() };
    if file.contains("..") {
        return not_found();
    }
    let Ok(data) = std::fs::read(root.join(file)) else { return not_found() };
    let total = data.len();
    let (start, end) = headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split_once('-'))
        .map(|(s, e)| {
            let s: usize = s.parse().unwrap_or(0);
            let e: usize = e.parse().map(|e: usize| e + 1).unwrap_or(total);
            (s.min(total), e.min(total))
        })
        .unwrap_or((0, total));
    // A distinct etag per file content (hf-hub names cache blobs by it).
    let etag = format!("{:016x}{:08x}", fnv(&data), total);
    Response::builder()
        .status(StatusCode::PARTIAL_CONTENT)
        .header("etag", format!("\"{etag}\""))
        .header("x-repo-commit", COMMIT)
        .header("content-range", format!("bytes {start}-{}/{total}", end.max(1) - 1))
        .body(Body::from(data[start..end].to_vec()))
        .unwrap()
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

fn run(repo: &Path, hf_home: &Path, endpoint: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipfs-accelerate"))
        .args(args)
        .env("IPFS_ACCELERATE_REPO", repo)
        .env("HF_HOME", hf_home)
        .env("HF_ENDPOINT", endpoint)
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .expect("the binary starts")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Copies `files` (relative paths) from `from` into `to`.
fn copy_files(from: &Path, to: &Path, files: &[&str]) {
    for f in files {
        std::fs::create_dir_all(to.join(f).parent().unwrap()).unwrap();
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

#[test]
fn pull_without_optional_files_matches_models_add() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = tmp.path().join("hub");
    std::fs::create_dir_all(&hub).unwrap();
    std::fs::write(hub.join("config.json"), "{\"hidden_size\": 4}\n").unwrap();
    std::fs::write(hub.join("tokenizer.json"), "{}\n").unwrap();
    std::fs::write(hub.join("model.safetensors"), vec![7u8; 600_000]).unwrap();
    std::fs::write(hub.join("README.md"), "not downloaded\n").unwrap();
    let endpoint = serve_hub(hub.clone());
    let (repo, hf_home) = (tmp.path().join("repo"), tmp.path().join("hf"));

    let pulled = stdout(&run(&repo, &hf_home, &endpoint, &["models", "pull", "org/tiny", "--revision", "v1"]));
    let local = tmp.path().join("local");
    copy_files(&hub, &local, &["config.json", "tokenizer.json", "model.safetensors"]);
    let added = stdout(&run(&repo, &hf_home, &endpoint, &["models", "add", local.to_str().unwrap()]));
    assert_eq!(pulled, added);
    let ls = stdout(&run(&repo, &hf_home, &endpoint, &["models", "ls"]));
    assert!(ls.contains(&format!("tiny\t{}", pulled.trim())), "{ls}");
    // The download went through the HF cache.
    assert!(hf_home.join("hub/models--org--tiny/refs/v1").exists());
    // No scratch directory is left in the repository.
    assert!(std::fs::read_dir(&repo).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().starts_with(".pull")));
}

#[test]
fn pull_of_a_missing_model_says_what_to_check() {
    let tmp = tempfile::tempdir().unwrap();
    let endpoint = serve_hub(tmp.path().join("empty"));
    let out = run(&tmp.path().join("repo"), &tmp.path().join("hf"), &endpoint, &["models", "pull", "org/none"]);
    assert_clear_error(&out, "check the model id");
    let out =
        run(&tmp.path().join("repo"), &tmp.path().join("hf"), &endpoint, &["models", "pull", "org/x", "--name", "a/b"]);
    assert_clear_error(&out, "invalid model name");
}

#[test]
fn pull_of_the_real_model_matches_add_and_embeds_by_name() {
    let Some(model) = common::test_model("all-MiniLM-L6-v2") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let endpoint = serve_hub(model.clone());
    let (repo, hf_home) = (tmp.path().join("repo"), tmp.path().join("hf"));
    let pulled = stdout(&run(
        &repo,
        &hf_home,
        &endpoint,
        &["models", "pull", "sentence-transformers/all-MiniLM-L6-v2", "--name", "minilm"],
    ));
    let files = [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "modules.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
    ];
    let local = tmp.path().join("local");
    copy_files(&model, &local, &files);
    let added = stdout(&run(&repo, &hf_home, &endpoint, &["models", "add", local.to_str().unwrap()]));
    assert_eq!(pulled, added);
    let out = stdout(&run(&repo, &hf_home, &endpoint, &["embed", "--model", "minilm", "--json", "hello"]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["dim"], 384);
    assert_eq!(v["embeddings"].as_array().unwrap().len(), 1);
}

#[test]
fn model_flag_takes_a_hub_id_downloads_once_then_works_offline() {
    let Some(model) = common::test_model("all-MiniLM-L6-v2") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let endpoint = serve_hub(model.clone());
    let (repo, hf_home) = (tmp.path().join("repo"), tmp.path().join("hf"));
    let id = "sentence-transformers/all-MiniLM-L6-v2";
    let first = stdout(&run(&repo, &hf_home, &endpoint, &["embed", "--model", id, "--json", "hello"]));
    // Later runs use the stored copy: no hub (nothing listens on port 9), no download.
    let dead = "http://127.0.0.1:9";
    let again = stdout(&run(&repo, &hf_home, dead, &["embed", "--model", id, "--offline", "--json", "hello"]));
    let local = stdout(&run(&repo, &hf_home, dead, &["embed", "--model", model.to_str().unwrap(), "--json", "hello"]));
    let embedding = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap()["embeddings"].clone();
    assert_eq!(embedding(&first), embedding(&local));
    assert_eq!(embedding(&again), embedding(&local));
    // Named like `models pull` would name it, and pinned.
    let ls = stdout(&run(&repo, &hf_home, dead, &["models", "ls", "--json"]));
    let rows: serde_json::Value = serde_json::from_str(&ls).unwrap();
    assert_eq!(rows[0]["name"], "all-MiniLM-L6-v2");
    assert_eq!(rows[0]["pinned"], true);
    // Offline, an id that was never downloaded is a clear error.
    let out = run(&tmp.path().join("other"), &hf_home, dead, &["embed", "--model", "org/never", "--offline", "x"]);
    assert_clear_error(&out, "--offline forbids downloading");
}
