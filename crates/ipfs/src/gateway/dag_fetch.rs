//! `fetch_dag`: one CAR request when nothing is local, then a walk of the
//! DAG in the store that fetches each still-missing block on its own
//! (several at a time).
//!
//! The CAR pass is an optimisation; the walk is what guarantees a complete,
//! verified DAG. That split is what makes fetching resumable: whatever a
//! broken CAR (or an earlier run) left in the store is kept and skipped.

use super::client::{describe, FetchReport, GatewayClient};
use super::format::CAR_MEDIA_TYPE;
use super::stream_io::{ChannelReader, Chunk};
use super::GatewayStore;
use crate::block::DAG_PB;
use crate::car::CarReader;
use crate::dagpb;
use crate::error::{Error, Result};
use cid::Cid;
use futures_util::{StreamExt, TryStreamExt};
use std::collections::HashSet;
use std::io::Read;
use tokio::sync::mpsc;

/// The CAR flavour asked for: version 1, depth-first, so every block can be
/// checked to be a child of one already received.
const CAR_ACCEPT: &str = "application/vnd.ipld.car; version=1; order=dfs; dups=n";

/// What one CAR transfer stored before it ended.
#[derive(Debug, Default)]
struct CarProgress {
    stored: usize,
    bytes: u64,
    /// Why the stream was abandoned, if it was.
    failure: Option<String>,
}

pub(super) async fn fetch_dag<S>(client: &GatewayClient, root: &Cid, store: &S) -> Result<FetchReport>
where
    S: GatewayStore + Clone + 'static,
{
    let mut report = FetchReport::default();
    if !store.contains(root) && !client.gateways.is_empty() {
        for gateway in &client.gateways {
            let progress = fetch_car(client, gateway, root, store).await;
            report.blocks_fetched += progress.stored;
            report.bytes_fetched += progress.bytes;
            match progress.failure {
                None => break,
                Some(reason) => {
                    tracing::info!(%root, gateway, reason, stored = progress.stored, "CAR transfer failed");
                    // Once a CAR has delivered blocks, asking another gateway
                    // for the whole CAR would resend them: go block by block.
                    if progress.stored > 0 {
                        break;
                    }
                }
            }
        }
    }
    walk_and_fill(client, root, store, &mut report).await?;
    Ok(report)
}

/// How many single-block requests run at once while filling gaps: enough to
/// hide a public gateway's latency, few enough not to be throttled.
const PARALLEL_FETCHES: usize = 8;

/// Visits every block of the DAG level by level, reading present blocks
/// from the store (verified) and fetching missing or corrupt ones, several
/// at a time. Only links are kept between levels, never block bytes.
async fn walk_and_fill<S>(client: &GatewayClient, root: &Cid, store: &S, report: &mut FetchReport) -> Result<()>
where
    S: GatewayStore + Clone + 'static,
{
    let mut seen = HashSet::from([*root]);
    let mut level = vec![*root];
    while !level.is_empty() {
        let mut next = Vec::new();
        let mut missing = Vec::new();
        for cid in level {
            let local = {
                let store = store.clone();
                blocking(move || if store.contains(&cid) { store.get_block(&cid).map(Some) } else { Ok(None) }).await
            };
            match local {
                Ok(Some(data)) => {
                    report.blocks_present += 1;
                    next.extend(links(&cid, &data)?);
                }
                // Missing, or stored but corrupt: fetch it (a put over a
                // corrupt copy replaces it).
                Ok(None) | Err(Error::CorruptBlock { .. }) => missing.push(cid),
                Err(e) => return Err(e),
            }
        }
        let fetched: Vec<(Vec<Cid>, u64)> = futures_util::stream::iter(missing)
            .map(|cid| async move {
                let data = client.fetch_block(&cid).await?;
                let child_links = links(&cid, &data)?;
                let len = data.len() as u64;
                let store = store.clone();
                blocking(move || store.store(&cid, &data)).await?;
                Ok::<_, Error>((child_links, len))
            })
            .buffer_unordered(PARALLEL_FETCHES)
            .try_collect()
            .await?;
        for (child_links, len) in fetched {
            report.raw_requests += 1;
            report.blocks_fetched += 1;
            report.bytes_fetched += len;
            next.extend(child_links);
        }
        next.retain(|c| seen.insert(*c));
        level = next;
    }
    Ok(())
}

/// The children of a block (dag-pb links; other codecs are leaves here).
fn links(cid: &Cid, data: &[u8]) -> Result<Vec<Cid>> {
    if cid.codec() == DAG_PB {
        Ok(dagpb::decode(cid, data)?.links.into_iter().map(|l| l.cid).collect())
    } else {
        Ok(Vec::new())
    }
}

/// Streams `?format=car` from one gateway into the store. Never fails as a
/// whole: it reports how far it got, so the walk can finish the job.
async fn fetch_car<S>(client: &GatewayClient, gateway: &str, root: &Cid, store: &S) -> CarProgress
where
    S: GatewayStore + Clone + 'static,
{
    let response = client
        .http
        .get(format!("{gateway}/ipfs/{root}?format=car&dag-scope=all"))
        .header(reqwest::header::ACCEPT, CAR_ACCEPT)
        .send();
    let mut response = match tokio::time::timeout(client.timeout, response).await {
        Err(_) => return failed(format!("timed out after {:?}", client.timeout)),
        Ok(Err(e)) => return failed(describe(&e)),
        Ok(Ok(r)) => r,
    };
    if !response.status().is_success() {
        return failed(format!("HTTP {}", response.status()));
    }
    let content_type = response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if !content_type.is_some_and(|t| t.trim().to_ascii_lowercase().starts_with(CAR_MEDIA_TYPE)) {
        return failed(format!("answered with Content-Type {content_type:?}, not a CAR"));
    }

    let (tx, rx) = mpsc::channel::<Chunk>(8);
    let worker = {
        let store = store.clone();
        let root = *root;
        tokio::task::spawn_blocking(move || import_dag_car(ChannelReader::new(rx), &root, &store))
    };
    // Pump the body into the reader thread; stop when it stops listening
    // (it found a bad block) or the body ends, breaks or stalls.
    loop {
        let item = match tokio::time::timeout(client.timeout, response.chunk()).await {
            Ok(Ok(Some(chunk))) => Ok(chunk),
            Ok(Ok(None)) => break,
            Ok(Err(e)) => Err(std::io::Error::other(describe(&e))),
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "CAR stream stalled")),
        };
        let last = item.is_err();
        if tx.send(item).await.is_err() || last {
            break;
        }
    }
    drop(tx);
    match worker.await {
        Ok(progress) => progress,
        Err(e) => failed(format!("CAR import task failed: {e}")),
    }
}

fn failed(reason: String) -> CarProgress {
    CarProgress { failure: Some(reason), ..CarProgress::default() }
}

/// Reads a CAR that must hold the DAG under `root` in depth-first order:
/// each block is verified by the CAR reader and must be the root or a child
/// of a block already received, so a gateway cannot fill the store with
/// blocks nobody asked for.
fn import_dag_car<R: Read, S: GatewayStore>(input: R, root: &Cid, store: &S) -> CarProgress {
    let mut progress = CarProgress::default();
    if let Err(reason) = import_dag_car_inner(input, root, store, &mut progress) {
        progress.failure = Some(reason);
    }
    progress
}

/// Blocks written at once while a CAR streams in: a durable write waits on
/// two fsyncs, so overlapping a few keeps the disk busy (and matches the
/// parallelism of block-by-block fetching).
const PARALLEL_STORES: usize = 4;

fn import_dag_car_inner<R: Read, S: GatewayStore>(
    input: R,
    root: &Cid,
    store: &S,
    progress: &mut CarProgress,
) -> Result<(), String> {
    let mut car = CarReader::new(input).map_err(|e| e.to_string())?;
    if !car.roots().contains(root) {
        return Err(format!("CAR names roots {:?}, not the requested {root}", car.roots()));
    }
    // The reader checks every block (hash, DAG membership) in stream order
    // and hands it to a few writer threads; the first write error stops it.
    let (tx, rx) = std::sync::mpsc::sync_channel::<(Cid, Vec<u8>)>(PARALLEL_STORES * 2);
    let rx = std::sync::Mutex::new(rx);
    let stored = std::sync::atomic::AtomicUsize::new(0);
    let bytes = std::sync::atomic::AtomicU64::new(0);
    let write_error = std::sync::Mutex::new(None::<String>);
    let read_result = std::thread::scope(|scope| {
        for _ in 0..PARALLEL_STORES {
            scope.spawn(|| loop {
                let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                let Ok((cid, data)) = next else { return };
                if let Err(e) = store.store(&cid, &data) {
                    write_error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e.to_string());
                    return;
                }
                stored.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                bytes.fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
            });
        }
        let result = read_dag_car(&mut car, root, store, &tx, &write_error);
        drop(tx);
        result
    });
    progress.stored = stored.into_inner();
    progress.bytes = bytes.into_inner();
    if let Some(e) = write_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    read_result
}

/// The reading half of [`import_dag_car_inner`]: checks each block and
/// sends the new ones to the writers.
fn read_dag_car<R: Read, S: GatewayStore>(
    car: &mut CarReader<R>,
    root: &Cid,
    store: &S,
    writers: &std::sync::mpsc::SyncSender<(Cid, Vec<u8>)>,
    write_error: &std::sync::Mutex<Option<String>>,
) -> Result<(), String> {
    let mut expected = HashSet::from([*root]);
    let mut received = HashSet::new();
    while let Some((cid, data)) = car.next_block().map_err(|e| e.to_string())? {
        if !received.insert(cid) {
            continue; // a duplicate is harmless: it was verified and stored already
        }
        if !expected.remove(&cid) {
            return Err(format!("CAR sent block {cid}, which is not part of the DAG under {root} (rejected)"));
        }
        if cid.codec() == DAG_PB {
            let node = dagpb::decode(&cid, &data).map_err(|e| e.to_string())?;
            expected.extend(node.links.iter().map(|l| l.cid).filter(|c| !received.contains(c)));
        }
        if !store.contains(&cid) && writers.send((cid, data)).is_err() {
            break; // every writer stopped on an error, reported by the caller
        }
        if write_error.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            break;
        }
    }
    if !expected.is_empty() && write_error.lock().unwrap_or_else(|p| p.into_inner()).is_none() {
        return Err(format!("CAR ended with {} blocks of the DAG missing", expected.len()));
    }
    Ok(())
}

/// Runs blocking store I/O off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::InvalidOption(format!("a block store task failed: {e}")))?
}
