//! `ipfs-accelerate ipfs serve-gateway` end to end: it prints its address,
//! and our gateway client fetches a verified DAG from it over loopback.

use ipfs_accelerate_ipfs::gateway::{GatewayClient, GatewayConfig};
use ipfs_accelerate_ipfs::{exporter::cat_to_vec, parse_cid, FsBlockstore};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Kills the server even when an assertion fails.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_gateway_prints_its_address_and_serves_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let file = tmp.path().join("data.bin");
    let data: Vec<u8> = (0..700_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let bin = env!("CARGO_BIN_EXE_ipfs-accelerate");
    let out = Command::new(bin)
        .args(["ipfs", "add", "-Q", file.to_str().unwrap(), "--repo", repo.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let root = parse_cid(&String::from_utf8(out.stdout).unwrap()).unwrap();

    let mut child = Child(
        Command::new(bin)
            .args(["ipfs", "serve-gateway", "--addr", "127.0.0.1:0", "--repo", repo.to_str().unwrap()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("gateway listening on ").unwrap_or_else(|| panic!("{line:?}")).to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let local = FsBlockstore::open(tmp.path().join("local")).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = GatewayClient::new(GatewayConfig { gateways: vec![url], ..Default::default() }).unwrap();
    let report = runtime.block_on(client.fetch_dag(&root, &local)).unwrap();
    assert!(report.blocks_fetched > 1, "{report:?}");
    assert_eq!(cat_to_vec(&local, &root).unwrap(), data);
    drop(child);
}

#[test]
fn serve_gateway_reports_a_busy_port_in_one_line() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ipfs-accelerate"))
        .args(["ipfs", "serve-gateway", "--addr", &addr, "--repo", tmp.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: cannot listen on") && stderr.lines().count() == 1, "{stderr}");
}
