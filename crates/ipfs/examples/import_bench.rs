//! Our side of `benchmarks/ipfs_import.sh`: one timed operation per process,
//! measured in-process (no process start-up), printed as one JSON line so the
//! script can interleave runs with Helia's and take medians.
//!
//! ```sh
//! import_bench import FILE mem|fs   # import FILE (Kubo's layout, CIDv1, raw
//!                                   # leaves) into a MemoryStore, or into an
//!                                   # FsBlockstore in a fresh temporary
//!                                   # directory: {"cid","seconds","bytes"}
//! import_bench serve FILE           # import FILE into an FsBlockstore and
//!                                   # serve it as a trustless gateway on
//!                                   # 127.0.0.1; prints "URL CID", serves
//!                                   # until stdin closes
//! import_bench fetch URL CID car|raw
//!                                   # fetch_dag CID from URL into a fresh
//!                                   # FsBlockstore, every block verified:
//!                                   # car = one CAR stream (our default),
//!                                   # raw = the root first, then one
//!                                   # ?format=raw request per block (as
//!                                   # Helia's trustless gateway broker does):
//!                                   # {"seconds","blocks","bytes"}
//! ```
//!
//! Run through the script, or directly with
//! `cargo run --release -p ipfs-accelerate-ipfs --example import_bench -- import FILE mem`.

use ipfs_accelerate_ipfs::gateway::{router, GatewayClient, GatewayConfig};
use ipfs_accelerate_ipfs::{import_path, parse_cid, FsBlockstore, ImportOptions, MemoryStore};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn usage() -> Box<dyn std::error::Error> {
    "usage: import_bench import FILE mem|fs | serve FILE | fetch URL CID car|raw".into()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        ["import", file, mode] => import(Path::new(file), mode),
        ["serve", file] => serve(Path::new(file)).await,
        ["fetch", url, cid, mode] => fetch(url, cid, mode).await,
        _ => Err(usage()),
    }
}

fn import(file: &Path, mode: &str) -> Result<()> {
    let bytes = std::fs::metadata(file)?.len();
    let opts = ImportOptions::default();
    let tmp = tempfile::tempdir()?;
    let (cid, seconds) = match mode {
        "mem" => {
            let mut store = MemoryStore::new();
            let t = Instant::now();
            let cid = import_path(file, &opts, &mut store)?.cid;
            (cid, t.elapsed().as_secs_f64())
        }
        "fs" => {
            let store = FsBlockstore::open(tmp.path().join("blocks"))?;
            let t = Instant::now();
            let cid = store.write_parallel(|sink| import_path(file, &opts, sink))?.cid;
            (cid, t.elapsed().as_secs_f64())
        }
        _ => return Err(usage()),
    };
    println!(r#"{{"cid":"{cid}","seconds":{seconds},"bytes":{bytes}}}"#);
    Ok(())
}

async fn serve(file: &Path) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let store = FsBlockstore::open(tmp.path().join("blocks"))?;
    let root = import_path(file, &ImportOptions::default(), &mut &store)?.cid;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("http://{} {root}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, router(Arc::new(store))).await });
    // Serve until the caller closes our stdin.
    tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await??;
    server.abort();
    Ok(())
}

async fn fetch(url: &str, cid: &str, mode: &str) -> Result<()> {
    let root = parse_cid(cid)?;
    let client = GatewayClient::new(GatewayConfig { gateways: vec![url.to_owned()], ..Default::default() })?;
    let tmp = tempfile::tempdir()?;
    let store = FsBlockstore::open(tmp.path().join("blocks"))?;
    let t = Instant::now();
    let mut blocks = 0;
    let mut bytes = 0;
    match mode {
        "car" => {}
        "raw" => {
            // With the root stored, fetch_dag fetches every other block on
            // its own instead of asking for a CAR.
            let block = client.fetch_block(&root).await?;
            store.put(&root, &block)?;
            blocks += 1;
            bytes += block.len() as u64;
        }
        _ => return Err(usage()),
    }
    let report = client.fetch_dag(&root, &store).await?;
    let seconds = t.elapsed().as_secs_f64();
    blocks += report.blocks_fetched;
    bytes += report.bytes_fetched;
    println!(r#"{{"seconds":{seconds},"blocks":{blocks},"bytes":{bytes}}}"#);
    Ok(())
}
