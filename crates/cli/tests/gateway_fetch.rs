//! A CID that is not in the local store is fetched from the configured
//! trustless gateways (`--gateway`, `$IPFS_ACCELERATE_GATEWAYS`,
//! `<repo>/config.toml`), verified, pinned, and then works offline.

#[path = "../../models/tests/common/mod.rs"]
mod common;
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use support::{assert_clear_error, run, stdout};

/// `ipfs serve-gateway` over `repo` on an ephemeral port, killed on drop.
struct Gateway {
    child: std::process::Child,
    url: String,
}

impl Gateway {
    fn serve(repo: &Path) -> Gateway {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ipfs-accelerate"))
            .args(["ipfs", "serve-gateway", "--addr", "127.0.0.1:0", "--repo", repo.to_str().unwrap()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("gateway listening on ").unwrap_or_else(|| panic!("{line:?}")).to_string();
        Gateway { child, url }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small directory added to `repo`; returns its root CID.
fn add_sample(tmp: &Path, repo: &Path) -> String {
    let dir = tmp.join("sample");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a.txt"), b"alpha\n").unwrap();
    let big: Vec<u8> = (0..700_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(dir.join("sub/big.bin"), big).unwrap();
    stdout(&run(repo, &["ipfs", "add", "-r", "-Q", dir.to_str().unwrap()])).trim().to_string()
}

fn same_tree(a: &Path, b: &Path) {
    for rel in ["a.txt", "sub/big.bin"] {
        assert_eq!(std::fs::read(a.join(rel)).unwrap(), std::fs::read(b.join(rel)).unwrap(), "{rel}");
    }
}

#[test]
fn missing_cids_come_from_the_gateway_flag_env_or_config() {
    let tmp = tempfile::tempdir().unwrap();
    let (server_repo, repo) = (tmp.path().join("server"), tmp.path().join("client"));
    let cid = add_sample(tmp.path(), &server_repo);
    let gateway = Gateway::serve(&server_repo);

    // Offline (the default): a clear error that says how to go online.
    assert_clear_error(&run(&repo, &["models", "get", &cid, tmp.path().join("x").to_str().unwrap()]), "--gateway URL");
    // The template config was written, public gateways commented out.
    let config = std::fs::read_to_string(repo.join("config.toml")).unwrap();
    assert!(config.contains("urls = []") && config.contains("# urls = [\"https://trustless-gateway.link\""));

    // --gateway: fetched, verified, pinned.
    let out = tmp.path().join("by-flag");
    stdout(&run(&repo, &["models", "get", &cid, out.to_str().unwrap(), "--gateway", &gateway.url]));
    same_tree(&tmp.path().join("sample"), &out);
    assert!(stdout(&run(&repo, &["ipfs", "pin", "ls"])).contains(&cid));

    // $IPFS_ACCELERATE_GATEWAYS, into a fresh store (ipfs get does not pin).
    let repo2 = tmp.path().join("client2");
    let out = tmp.path().join("by-env");
    let fetched = Command::new(env!("CARGO_BIN_EXE_ipfs-accelerate"))
        .args(["ipfs", "get", &cid, "-o", out.to_str().unwrap()])
        .env("IPFS_ACCELERATE_REPO", &repo2)
        .env("IPFS_ACCELERATE_GATEWAYS", format!("http://127.0.0.1:9, {}", gateway.url))
        .output()
        .unwrap();
    stdout(&fetched);
    same_tree(&tmp.path().join("sample"), &out);
    assert!(!stdout(&run(&repo2, &["ipfs", "pin", "ls"])).contains(&cid));

    // [gateways] urls in config.toml.
    let repo3 = tmp.path().join("client3");
    std::fs::create_dir_all(&repo3).unwrap();
    std::fs::write(repo3.join("config.toml"), format!("[gateways]\nurls = [{:?}]\ntimeout_secs = 5\n", gateway.url))
        .unwrap();
    let out = tmp.path().join("by-config");
    stdout(&run(&repo3, &["models", "get", &cid, out.to_str().unwrap()]));
    same_tree(&tmp.path().join("sample"), &out);
    // --offline wins over the config.
    assert_clear_error(
        &run(&tmp.path().join("client4"), &["models", "get", &cid, "y", "--offline", "--gateway", &gateway.url]),
        "not in the local block store",
    );
}

#[test]
fn a_broken_config_or_gateway_gives_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("config.toml"), "[gateways]\nurl = 3\n").unwrap();
    let cid = "bafkreieyfpmvuxeupeprndlgh5m2hrztl2gjko5l4l4olzolfpux2anyoa";
    assert_clear_error(&run(&repo, &["ipfs", "get", cid]), "config.toml line 2 is not a valid configuration");
    std::fs::remove_file(repo.join("config.toml")).unwrap();
    assert_clear_error(&run(&repo, &["ipfs", "get", cid, "--gateway", "ftp://example"]), "invalid gateway URL");
    // Nothing listens on port 9 (discard) of loopback: the error names the CID.
    assert_clear_error(&run(&repo, &["ipfs", "get", cid, "--gateway", "http://127.0.0.1:9"]), cid);
}

#[test]
fn embed_fetches_a_model_by_cid_once_then_runs_offline() {
    let Some(model) = common::test_model("all-MiniLM-L6-v2") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (server_repo, repo) = (tmp.path().join("server"), tmp.path().join("client"));
    let cid = stdout(&run(&server_repo, &["models", "add", model.to_str().unwrap()])).trim().to_string();
    let gateway = Gateway::serve(&server_repo);
    let fetched = stdout(&run(&repo, &["embed", "--model", &cid, "--gateway", &gateway.url, "--json", "hello"]));
    drop(gateway);
    let offline = stdout(&run(&repo, &["embed", "--model", &cid, "--offline", "--json", "hello"]));
    let local = stdout(&run(&repo, &["embed", "--model", model.to_str().unwrap(), "--json", "hello"]));
    let embedding = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap()["embeddings"].clone();
    assert_eq!(embedding(&fetched), embedding(&local));
    assert_eq!(embedding(&offline), embedding(&local));
    // Fetched models are pinned, so gc keeps them.
    stdout(&run(&repo, &["ipfs", "gc"]));
    assert!(stdout(&run(&repo, &["ipfs", "pin", "ls"])).contains(&cid));
}
