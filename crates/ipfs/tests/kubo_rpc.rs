//! The Kubo RPC client against a minimal stand-in for `ipfs daemon` on
//! 127.0.0.1. No Kubo binary can be installed here, so the stand-in
//! implements `add`, `cat`, `block/get` and `pin/add` as Kubo documents them
//! (POST only, query arguments, multipart upload, JSON-lines answers, errors
//! as HTTP 500 with `{"Message","Code","Type":"error"}`), backed by our own
//! importer: the CIDs it returns are the ones Kubo computes (see
//! `kubo_vectors.rs`), not made up.

mod common;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use common::bytes;
use ipfs_accelerate_ipfs::exporter::cat_to_vec;
use ipfs_accelerate_ipfs::kubo_rpc::{AddOptions, KuboRpc};
use ipfs_accelerate_ipfs::{
    import_file, parse_cid, BlockSource, Cid, CidVersion, Error, ImportOptions, MemoryStore, Result,
};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// The fake node's repo.
#[derive(Default)]
struct Node {
    store: Mutex<MemoryStore>,
    pins: Mutex<HashSet<Cid>>,
    /// Makes the next `block/get` answer with wrong bytes, like a faulty node.
    corrupt_next_block: AtomicBool,
    /// Makes the next `cat` stop short of the size it announced.
    truncate_next_cat: AtomicBool,
}

type Args = Query<HashMap<String, String>>;

/// Kubo's error answer.
fn kubo_error(message: impl std::fmt::Display) -> Response {
    let body = format!(r#"{{"Message":{:?},"Code":0,"Type":"error"}}"#, message.to_string());
    (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The `arg` query argument as a CID, or Kubo's message for its absence.
fn arg_cid(args: &HashMap<String, String>) -> std::result::Result<Cid, String> {
    let arg = args.get("arg").ok_or("argument \"ipfs-path\" is required")?;
    parse_cid(arg).map_err(|e| e.to_string())
}

/// The one file part of a `multipart/form-data` body.
fn multipart_file(headers: &HeaderMap, body: &[u8]) -> Option<Vec<u8>> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let boundary = ct.split("boundary=").nth(1)?.trim_matches('"');
    let start = find(body, b"\r\n\r\n")? + 4;
    let end = start + find(&body[start..], format!("\r\n--{boundary}").as_bytes())?;
    Some(body[start..end].to_vec())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn add(State(node): State<Arc<Node>>, Query(args): Args, headers: HeaderMap, body: Bytes) -> Response {
    let Some(data) = multipart_file(&headers, &body) else {
        return kubo_error("file argument 'path' is required");
    };
    // Kubo's defaults: CIDv0; raw leaves when CIDv1 is asked for.
    let v1 = args.get("cid-version").map(String::as_str) == Some("1");
    let raw_leaves = args.get("raw-leaves").map(|v| v == "true").unwrap_or(v1);
    let mut opts = ImportOptions {
        cid_version: if v1 { CidVersion::V1 } else { CidVersion::V0 },
        raw_leaves,
        ..Default::default()
    };
    if let Some(spec) = args.get("chunker") {
        match opts.with_chunker(spec) {
            Ok(o) => opts = o,
            Err(e) => return kubo_error(e),
        }
    }
    let mut store = node.store.lock().unwrap();
    let root = match import_file(&data[..], &opts, &mut *store) {
        Ok(r) => r,
        Err(e) => return kubo_error(e),
    };
    if args.get("pin").map(String::as_str) != Some("false") {
        node.pins.lock().unwrap().insert(root.cid);
    }
    format!("{{\"Name\":\"{0}\",\"Hash\":\"{0}\",\"Size\":\"{1}\"}}\n", root.cid, root.tsize).into_response()
}

async fn cat(State(node): State<Arc<Node>>, Query(args): Args) -> Response {
    let cid = match arg_cid(&args) {
        Ok(c) => c,
        Err(message) => return kubo_error(message),
    };
    match cat_to_vec(&*node.store.lock().unwrap(), &cid) {
        Ok(mut data) => {
            // Kubo announces the file size before streaming it.
            let size = data.len().to_string();
            if node.truncate_next_cat.swap(false, Ordering::SeqCst) {
                data.truncate(data.len() / 2);
            }
            ([("X-Content-Length", size)], data).into_response()
        }
        Err(_) => kubo_error(format!("block was not found locally (offline): ipld: could not find {cid}")),
    }
}

async fn block_get(State(node): State<Arc<Node>>, Query(args): Args) -> Response {
    let cid = match arg_cid(&args) {
        Ok(c) => c,
        Err(message) => return kubo_error(message),
    };
    match node.store.lock().unwrap().get_block(&cid) {
        Ok(mut data) => {
            if node.corrupt_next_block.swap(false, Ordering::SeqCst) {
                data.push(0);
            }
            data.into_response()
        }
        Err(_) => kubo_error(format!("block was not found locally (offline): ipld: could not find {cid}")),
    }
}

async fn pin_add(State(node): State<Arc<Node>>, Query(args): Args) -> Response {
    let cid = match arg_cid(&args) {
        Ok(c) => c,
        Err(message) => return kubo_error(message),
    };
    if node.store.lock().unwrap().get_block(&cid).is_err() {
        return kubo_error(format!("pin: block was not found locally (offline): ipld: could not find {cid}"));
    }
    node.pins.lock().unwrap().insert(cid);
    format!("{{\"Pins\":[\"{cid}\"]}}\n").into_response()
}

/// Starts the fake node; returns its state and a client of it.
async fn start() -> (Arc<Node>, KuboRpc) {
    let node = Arc::new(Node::default());
    let app = Router::new()
        .route("/api/v0/add", post(add))
        .route("/api/v0/cat", post(cat))
        .route("/api/v0/block/get", post(block_get))
        .route("/api/v0/pin/add", post(pin_add))
        .with_state(node.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (node, KuboRpc::new(&format!("http://{addr}/")).unwrap())
}

fn local_cid(data: &[u8], opts: &ImportOptions) -> Cid {
    let mut sink = |_: &Cid, _: &[u8]| -> Result<()> { Ok(()) };
    import_file(data, opts, &mut sink).unwrap().cid
}

#[tokio::test]
async fn add_gives_the_known_kubo_cid_and_the_local_importers_cid() {
    let (node, kubo) = start().await;
    let cid = kubo.add(&b"hello ipfs probe\n"[..], &AddOptions::default()).await.unwrap();
    assert_eq!(cid.to_string(), "bafkreieyfpmvuxeupeprndlgh5m2hrztl2gjko5l4l4olzolfpux2anyoa");
    assert!(node.pins.lock().unwrap().contains(&cid), "pinned by default");

    // Multi-chunk files under several option sets, one of them not pinned.
    let data = bytes(700_000, 7);
    for opts in [
        ImportOptions::default(),
        ImportOptions::v0(),
        ImportOptions::default().with_chunker("size-65536").unwrap(),
        ImportOptions { raw_leaves: false, ..ImportOptions::default() },
    ] {
        let add_opts = AddOptions { pin: false, ..AddOptions::from(&opts) };
        let cid = kubo.add(data.clone(), &add_opts).await.unwrap();
        assert_eq!(cid, local_cid(&data, &opts), "options {opts:?}");
        assert!(!node.pins.lock().unwrap().contains(&cid));
    }

    // From a file on disk.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.bin");
    std::fs::write(&path, &data).unwrap();
    let cid = kubo.add(path, &AddOptions::default()).await.unwrap();
    assert_eq!(cid, local_cid(&data, &ImportOptions::default()));

    // A directory is refused before anything is sent.
    let err = kubo.add(dir.path().to_path_buf(), &AddOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[tokio::test]
async fn cat_round_trips_and_pin_add_pins() {
    let (node, kubo) = start().await;
    let data = bytes(600_000, 3);
    let cid = kubo.add(data.clone(), &AddOptions { pin: false, ..AddOptions::default() }).await.unwrap();
    assert_eq!(kubo.cat(&cid).await.unwrap(), data);
    node.truncate_next_cat.store(true, Ordering::SeqCst);
    let err = kubo.cat(&cid).await.unwrap_err();
    assert!(err.to_string().contains("broke off") && err.to_string().contains(&cid.to_string()), "{err}");
    assert!(!node.pins.lock().unwrap().contains(&cid));
    kubo.pin_add(&cid).await.unwrap();
    assert!(node.pins.lock().unwrap().contains(&cid));
}

#[tokio::test]
async fn block_get_verifies_every_block() {
    let (node, kubo) = start().await;
    let cid = kubo.add(&b"hello ipfs probe\n"[..], &AddOptions::default()).await.unwrap();
    assert_eq!(kubo.block_get(&cid).await.unwrap(), b"hello ipfs probe\n");

    node.corrupt_next_block.store(true, Ordering::SeqCst);
    let err = kubo.block_get(&cid).await.unwrap_err();
    assert!(matches!(&err, Error::HashMismatch { cid: c } if **c == cid), "{err:?}");
    assert!(err.to_string().contains(&cid.to_string()), "{err}");

    // The next answer is honest again.
    assert_eq!(kubo.block_get(&cid).await.unwrap(), b"hello ipfs probe\n");
}

#[tokio::test]
async fn kubo_errors_carry_kubos_message_and_the_endpoint() {
    let (_node, kubo) = start().await;
    let missing = local_cid(b"never added", &ImportOptions::default());
    for err in [kubo.cat(&missing).await.unwrap_err(), kubo.pin_add(&missing).await.unwrap_err()] {
        let Error::KuboRpc { endpoint, message } = &err else { panic!("{err:?}") };
        assert!(endpoint == "/api/v0/cat" || endpoint == "/api/v0/pin/add", "{endpoint}");
        assert!(message.contains("could not find") && message.contains(&missing.to_string()), "{message}");
        assert!(err.to_string().contains(endpoint.as_str()), "{err}");
    }
    // An invalid chunker is refused by the node, not silently replaced.
    let err = kubo.add(&b"x"[..], &AddOptions { chunk_size: 0, ..AddOptions::default() }).await.unwrap_err();
    assert!(matches!(&err, Error::KuboRpc { endpoint, .. } if endpoint == "/api/v0/add"), "{err:?}");
    assert!(err.to_string().contains("chunker"), "{err}");
}

#[tokio::test]
async fn unreachable_api_says_to_start_the_daemon() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let kubo = KuboRpc::new(&format!("http://127.0.0.1:{port}")).unwrap();
    let err = kubo.cat(&local_cid(b"x", &ImportOptions::default())).await.unwrap_err();
    assert!(matches!(err, Error::KuboUnreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("is `ipfs daemon` running?") && text.contains("IPFS_ACCELERATE_KUBO_API"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
}

#[tokio::test]
async fn a_silent_api_times_out() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let kubo = KuboRpc::with_timeout(&format!("http://{addr}"), Duration::from_millis(300)).unwrap();
    let err = kubo.cat(&local_cid(b"x", &ImportOptions::default())).await.unwrap_err();
    assert!(matches!(&err, Error::KuboRpc { message, .. } if message.contains("timed out")), "{err:?}");
}

#[test]
fn the_api_address_comes_from_the_environment() {
    // The only test that touches this variable, so no other test races it.
    std::env::remove_var("IPFS_ACCELERATE_KUBO_API");
    assert_eq!(KuboRpc::from_env().unwrap().base_url(), "http://127.0.0.1:5001");
    std::env::set_var("IPFS_ACCELERATE_KUBO_API", "http://127.0.0.1:15001/");
    assert_eq!(KuboRpc::from_env().unwrap().base_url(), "http://127.0.0.1:15001");
    std::env::remove_var("IPFS_ACCELERATE_KUBO_API");
}

#[test]
fn bad_urls_are_refused_and_the_default_is_kubos() {
    assert!(KuboRpc::new("127.0.0.1:5001").is_err());
    assert!(KuboRpc::new("ftp://127.0.0.1:5001").is_err());
    assert_eq!(KuboRpc::new("http://127.0.0.1:5001/").unwrap().base_url(), "http://127.0.0.1:5001");
}
