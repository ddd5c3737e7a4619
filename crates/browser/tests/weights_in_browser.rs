//! The weights loader (`web/weights.js`) in a real browser.
//!
//! A small std HTTP server on 127.0.0.1 serves `web/weights.js`, the harness
//! page `web/test/weights-harness.html`, a plan of steps, and chunks at
//! `/ipfs/{cid}?format=raw` (CIDv1, raw codec, SHA-256, computed here with
//! `cid_for`). Headless Chromium (Debian's `/usr/bin/chromium`, or
//! `IPFS_ACCELERATE_CHROMIUM`) runs `loadWeight(ref, stats)` for each step and
//! POSTs the bytes (hex), the hit/miss counters, any error, and which chunks are
//! in Cache Storage afterwards. The server logs every chunk request in order
//! with the page's reports, so each step's network traffic is known.
//!
//! Checked: (1) good chunks load to exactly their concatenation, all misses,
//! then all hits with no request; (2) a server that lies about a chunk is
//! refused ("does not hash to its CID") and nothing is cached, so the next load
//! from the honest server fetches again; (3) CIDs that are not raw-leaf SHA-256
//! CIDv1 are refused with a clear error before any request; (4) a ref whose
//! chunks hold fewer bytes than it says is refused ("expected").
//!
//! Without chromium the test prints a skip notice and passes, unless `CI=true`.

mod support;

use ipfs_accelerate_browser::launch::Profile;
use ipfs_accelerate_ipfs::block::{DAG_PB, RAW};
use ipfs_accelerate_ipfs::{cid_for, CidVersion};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(120);

/// Deterministic bytes.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 56) as u8
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What the page reports, and the server's log of requests and reports.
enum Event {
    Result(String, Value),
    Error(String),
    Done,
}

struct Site {
    harness: Vec<u8>,
    weights_js: Vec<u8>,
    plan: Vec<u8>,
    /// The true bytes of each CID the server knows.
    chunks: HashMap<String, Vec<u8>>,
    /// Bytes served instead of the true ones until the page POSTs /fix.
    lies: Mutex<HashMap<String, Vec<u8>>>,
    /// "GET cid", "FIX" and "RESULT name", in the order they arrived.
    log: Mutex<Vec<String>>,
}

fn serve(site: Arc<Site>) -> (u16, mpsc::Receiver<Event>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (site, tx) = (site.clone(), tx.clone());
            std::thread::spawn(move || {
                let _ = handle(stream, &site, &tx);
            });
        }
    });
    (port, rx)
}

fn handle(stream: TcpStream, site: &Site, tx: &mpsc::Sender<Event>) -> std::io::Result<()> {
    let support::Request { method, target, body } = support::read_request(&stream)?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let found = |b: &[u8], ty: &str| Some((b.to_vec(), ty.to_string()));
    let reply = match (method.as_str(), segs.as_slice()) {
        ("GET", ["harness.html"]) => found(&site.harness, "text/html; charset=utf-8"),
        ("GET", ["weights.js"]) => found(&site.weights_js, "text/javascript; charset=utf-8"),
        ("GET", ["plan"]) => found(&site.plan, "application/json"),
        ("GET", ["ipfs", cid]) => {
            site.log.lock().unwrap().push(format!("GET {cid}"));
            assert_eq!(query, "format=raw", "chunk request {target}");
            let lie = site.lies.lock().unwrap().get(*cid).cloned();
            lie.or_else(|| site.chunks.get(*cid).cloned()).map(|b| (b, "application/vnd.ipld.raw".to_string()))
        }
        ("POST", ["fix"]) => {
            site.log.lock().unwrap().push("FIX".into());
            site.lies.lock().unwrap().clear();
            found(b"", "text/plain")
        }
        ("POST", ["result", name]) => {
            site.log.lock().unwrap().push(format!("RESULT {name}"));
            let v: Value =
                serde_json::from_slice(&body).unwrap_or_else(|e| json!({"error": format!("bad report: {e}")}));
            let _ = tx.send(Event::Result(name.to_string(), v));
            found(b"", "text/plain")
        }
        ("POST", ["error"]) => {
            let _ = tx.send(Event::Error(String::from_utf8_lossy(&body).into_owned()));
            found(b"", "text/plain")
        }
        ("POST", ["done"]) => {
            let _ = tx.send(Event::Done);
            found(b"", "text/plain")
        }
        _ => None,
    };
    let mut out = stream;
    match reply {
        Some((data, ty)) => {
            // no-store: every load the page does not answer from Cache Storage reaches this server.
            write!(out, "HTTP/1.1 200 OK\r\nContent-Type: {ty}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n", data.len())?;
            out.write_all(&data)?;
        }
        None => write!(
            out,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        )?,
    }
    out.flush()
}

/// The chunk requests the server saw for each step (those after the previous
/// step's report and before this one's).
fn requests_per_step(log: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut pending = Vec::new();
    for entry in log {
        if let Some(cid) = entry.strip_prefix("GET ") {
            pending.push(cid.to_string());
        } else if let Some(name) = entry.strip_prefix("RESULT ") {
            out.insert(name.to_string(), std::mem::take(&mut pending));
        }
    }
    out
}

#[test]
fn weights_loader_verifies_and_caches_chunks_in_chromium() {
    let Some(chromium) = support::chromium() else { return };

    // (1) Three good chunks of different sizes.
    let good: Vec<Vec<u8>> = vec![bytes(1000, 1), bytes(4096, 2), bytes(333, 3)];
    let good_cids: Vec<String> = good.iter().map(|b| cid_for(CidVersion::V1, RAW, b).to_string()).collect();
    let good_all: Vec<u8> = good.concat();
    assert!(good_cids.iter().all(|c| c.starts_with("bafkrei")), "{good_cids:?}");
    let good_ref = json!({"key": "good", "bytes": good_all.len(), "chunks": good_cids});

    // (2) A chunk X the server first answers with Y (same length).
    let x = bytes(512, 4);
    let y: Vec<u8> = x.iter().map(|b| b ^ 0x5a).collect();
    let lie_cid = cid_for(CidVersion::V1, RAW, &x).to_string();
    let lie_ref = json!({"key": "lie", "bytes": x.len(), "chunks": [lie_cid]});

    // (3) CIDs that are not raw-leaf SHA-256 CIDv1. The server holds the true
    // bytes of the dag-pb ones, so only the CID's form is wrong.
    let z = bytes(64, 5);
    let dag_pb_v1 = cid_for(CidVersion::V1, DAG_PB, &z).to_string();
    let dag_pb_v0 = cid_for(CidVersion::V0, DAG_PB, &z).to_string();
    assert!(dag_pb_v1.starts_with("bafybei") && dag_pb_v0.starts_with("Qm"), "{dag_pb_v1} {dag_pb_v0}");
    let bad_cids = [
        ("bad_dag_pb_v1", dag_pb_v1.clone()),
        ("bad_cidv0", dag_pb_v0.clone()),
        ("bad_garbage", "bnot0a1cid".to_string()),
        // raw codec, identity multihash of nothing
        ("bad_identity_hash", "bafkqaaa".to_string()),
    ];

    // (4) A ref that claims more bytes than its chunks hold.
    let long_ref = json!({"key": "long", "bytes": good_all.len() + 10, "chunks": good_cids});

    let mut plan = vec![
        json!({"name": "good_first", "ref": good_ref}),
        json!({"name": "good_again", "ref": good_ref}),
        json!({"name": "lie", "ref": lie_ref}),
        json!({"name": "lie_fixed", "ref": lie_ref, "fix": true}),
    ];
    for (name, cid) in &bad_cids {
        plan.push(json!({"name": name, "ref": {"key": name, "bytes": z.len(), "chunks": [cid]}}));
    }
    plan.push(json!({"name": "long", "ref": long_ref}));

    let mut chunks: HashMap<String, Vec<u8>> = good_cids.iter().cloned().zip(good.iter().cloned()).collect();
    chunks.insert(lie_cid.clone(), x.clone());
    chunks.insert(dag_pb_v1.clone(), z.clone());
    chunks.insert(dag_pb_v0.clone(), z.clone());
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let site = Arc::new(Site {
        harness: std::fs::read(web.join("test/weights-harness.html")).unwrap(),
        weights_js: std::fs::read(web.join("weights.js")).unwrap(),
        plan: serde_json::to_vec(&plan).unwrap(),
        chunks,
        lies: Mutex::new(HashMap::from([(lie_cid.clone(), y)])),
        log: Mutex::new(Vec::new()),
    });
    let (port, rx) = serve(site.clone());
    let start = Instant::now();
    // 127.0.0.1 is a secure context: Cache Storage and SubtleCrypto are there.
    let browser = support::open(&chromium, &format!("http://127.0.0.1:{port}/harness.html"), Profile::Ephemeral, &[]);
    let mut reports: BTreeMap<String, Value> = BTreeMap::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(Event::Result(name, v)) => {
                eprintln!("step {name}: {}", {
                    let mut short = v.clone();
                    if let Some(h) = short.get_mut("hex") {
                        *h = json!(format!("<{} bytes>", h.as_str().unwrap_or("").len() / 2));
                    }
                    short
                });
                reports.insert(name, v);
            }
            Ok(Event::Error(e)) => panic!("the harness page failed: {e}"),
            Ok(Event::Done) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(status) = browser.exit_status() {
                    panic!("chromium exited early ({status}) after {:?}", start.elapsed());
                }
                assert!(start.elapsed() < DEADLINE, "no answer from the page within {DEADLINE:?}");
            }
            Err(e) => panic!("{e}"),
        }
    }
    drop(browser);
    eprintln!("browser run: {:.1?}", start.elapsed());

    let requests = requests_per_step(&site.log.lock().unwrap());
    let report = |name: &str| reports.get(name).unwrap_or_else(|| panic!("no report for step {name}"));
    let stats = |name: &str| {
        (report(name)["stats"]["hits"].as_u64().unwrap(), report(name)["stats"]["misses"].as_u64().unwrap())
    };
    let error = |name: &str| report(name)["error"].as_str().map(str::to_string);
    let mut failures: Vec<String> = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            eprintln!("FAILED: {what}");
            failures.push(what);
        }
    };

    // (1) First load: the exact bytes, three misses, each chunk fetched once, all cached.
    check(error("good_first").is_none(), format!("good_first rejected: {:?}", error("good_first")));
    check(report("good_first")["hex"] == json!(hex(&good_all)), "good_first: bytes differ from the chunks".into());
    check(
        stats("good_first") == (0, 3),
        format!("good_first: stats {:?}, want (hits 0, misses 3)", stats("good_first")),
    );
    check(requests["good_first"] == good_cids, format!("good_first: requests {:?}", requests["good_first"]));
    check(
        report("good_first")["cached"] == json!(good_cids),
        format!("good_first: cached {}", report("good_first")["cached"]),
    );
    // Again in the same page: from Cache Storage, no request.
    check(error("good_again").is_none(), format!("good_again rejected: {:?}", error("good_again")));
    check(report("good_again")["hex"] == json!(hex(&good_all)), "good_again: bytes differ from the chunks".into());
    check(
        stats("good_again") == (3, 0),
        format!("good_again: stats {:?}, want (hits 3, misses 0)", stats("good_again")),
    );
    check(requests["good_again"].is_empty(), format!("good_again: requests {:?}", requests["good_again"]));

    // (2) The lying server: refused, not cached; honest again, fetched again.
    let lie_err = error("lie").unwrap_or_default();
    check(lie_err.contains("does not hash to its CID"), format!("lie: error {lie_err:?}, report {}", report("lie")));
    check(
        report("lie")["cached"] == json!([]),
        format!("lie: the refused chunk was cached: {}", report("lie")["cached"]),
    );
    check(stats("lie") == (0, 0), format!("lie: stats {:?}", stats("lie")));
    check(requests["lie"] == [lie_cid.clone()], format!("lie: requests {:?}", requests["lie"]));
    check(error("lie_fixed").is_none(), format!("lie_fixed rejected: {:?}", error("lie_fixed")));
    check(report("lie_fixed")["hex"] == json!(hex(&x)), "lie_fixed: bytes differ from the chunk".into());
    check(stats("lie_fixed") == (0, 1), format!("lie_fixed: stats {:?}, want (hits 0, misses 1)", stats("lie_fixed")));
    check(requests["lie_fixed"] == [lie_cid.clone()], format!("lie_fixed: requests {:?}", requests["lie_fixed"]));

    // (3) Not raw-leaf SHA-256 CIDv1: a clear error, and no request.
    for (name, cid) in &bad_cids {
        let e = error(name).unwrap_or_default();
        let clear = ["is not a raw-leaf SHA-256 CIDv1", "is not base32 CIDv1", "invalid base32 character"]
            .iter()
            .any(|w| e.contains(w));
        check(clear, format!("{name} ({cid}): error {e:?} does not say the CID is unusable; report {}", report(name)));
        check(
            requests[*name].is_empty(),
            format!("{name} ({cid}): fetched before being refused: {:?}", requests[*name]),
        );
        check(report(name)["cached"] == json!([]), format!("{name}: cached {}", report(name)["cached"]));
    }

    // (4) Chunks short of ref.bytes.
    let long_err = error("long").unwrap_or_default();
    check(long_err.contains("expected"), format!("long: error {long_err:?}, report {}", report("long")));

    assert!(failures.is_empty(), "{} check(s) failed:\n{}", failures.len(), failures.join("\n"));
}
