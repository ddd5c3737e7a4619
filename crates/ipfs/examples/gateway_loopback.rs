//! Verified gateway fetch throughput over loopback: imports N MiB of
//! pseudo-random bytes, serves them with the gateway router, and fetches
//! them into a second store, first as one CAR, then block by block.
//!
//! ```sh
//! cargo run --release -p ipfs-accelerate-ipfs --example gateway_loopback -- 90
//! ```

use ipfs_accelerate_ipfs::gateway::{router, GatewayClient, GatewayConfig};
use ipfs_accelerate_ipfs::{import_file, FsBlockstore, ImportOptions};
use std::sync::Arc;
use std::time::Instant;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(64);
    let mut x = 0x9e3779b97f4a7c15u64;
    let data: Vec<u8> = (0..mib << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let tmp = tempfile::tempdir()?;
    let served = FsBlockstore::open(tmp.path().join("served"))?;
    let root = import_file(&data[..], &ImportOptions::default(), &mut &served)?.cid;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, router(Arc::new(served))).await });
    let client = GatewayClient::new(GatewayConfig { gateways: vec![url], ..Default::default() })?;

    let car_store = FsBlockstore::open(tmp.path().join("car"))?;
    let t = Instant::now();
    let report = client.fetch_dag(&root, &car_store).await?;
    let secs = t.elapsed().as_secs_f64();
    println!("CAR:   {mib} MiB, {} blocks in {secs:.2} s = {:.0} MiB/s", report.blocks_fetched, mib as f64 / secs);

    // Block by block: keep only the root, as after a CAR cut right after it.
    let raw_store = FsBlockstore::open(tmp.path().join("raw"))?;
    raw_store.put(&root, &car_store.get(&root)?)?;
    let t = Instant::now();
    let report = client.fetch_dag(&root, &raw_store).await?;
    let secs = t.elapsed().as_secs_f64();
    println!("raw:   {mib} MiB, {} blocks in {secs:.2} s = {:.0} MiB/s", report.raw_requests, mib as f64 / secs);
    server.abort();
    Ok(())
}
