//! Limits and lifecycle: requests beyond the concurrency limit get 429 at
//! once, and a graceful shutdown finishes the requests in flight.

mod support;

use ipfs_accelerate_pool::{Pool, PoolConfig};
use ipfs_accelerate_server::Server;
use serde_json::json;
use std::sync::Arc;
use support::{post, post_to, GatedWorker};

fn gated_pool() -> (Arc<Pool>, Arc<GatedWorker>) {
    let pool = Arc::new(Pool::new(PoolConfig::default()));
    let worker = GatedWorker::new("gated-0");
    pool.add_worker(worker.clone());
    (pool, worker)
}

#[test]
fn requests_beyond_the_concurrency_limit_get_429_at_once() {
    let Some(dir) = support::minilm() else { return };
    let (pool, gate) = gated_pool();
    let mut config = support::config(&dir, pool);
    config.max_concurrency = 2;
    let server = Server::start(config).unwrap();
    let addr = server.addr();
    let body = json!({ "model": "minilm", "input": "held at the gate" }).to_string();
    let held: Vec<_> = (0..2)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || post_to(addr, "/v1/embeddings", &body, None))
        })
        .collect();
    gate.wait_for_waiting(1);
    // The pool may hand both to the one worker in turn; wait until both
    // hold a permit by watching the in-flight gauge.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let metrics = support::get(&server, "/metrics", None).body;
        if metrics.lines().any(|l| l == "ipfs_accelerate_http_requests_in_flight 3") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the two requests never were in flight together");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let refused = post(&server, "/v1/embeddings", &body);
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.json()["error"]["code"], "rate_limit_exceeded");
    // Its body was never read: the connection closes, and says so.
    assert_eq!(refused.connection, "close");
    let refused = post(&server, "/embed", &json!({ "inputs": "x" }).to_string());
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.json()["error_type"], "Overloaded");
    // Routes outside the limit still answer.
    assert_eq!(support::get(&server, "/health", None).status, 200);
    gate.open();
    for h in held {
        assert_eq!(h.join().unwrap().status, 200);
    }
    assert_eq!(post(&server, "/v1/embeddings", &body).status, 200);
    server.shutdown().unwrap();
}

#[test]
fn graceful_shutdown_finishes_requests_in_flight() {
    let Some(dir) = support::minilm() else { return };
    let (pool, gate) = gated_pool();
    let server = Server::start(support::config(&dir, pool)).unwrap();
    let addr = server.addr();
    let body = json!({ "model": "minilm", "input": "in flight during shutdown" }).to_string();
    let in_flight = std::thread::spawn(move || post_to(addr, "/v1/embeddings", &body, None));
    gate.wait_for_waiting(1);
    let handle = server.shutdown_handle();
    let stopping = std::thread::spawn(move || server.wait());
    handle.trigger();
    // The listener closes while the request is still held.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_ok() {
        assert!(std::time::Instant::now() < deadline, "the listener never closed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!stopping.is_finished(), "the server stopped before answering the request in flight");
    gate.open();
    let answer = in_flight.join().unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["data"][0]["embedding"].as_array().unwrap().len(), 384);
    stopping.join().unwrap().unwrap();
}

#[test]
fn a_full_pool_queue_is_answered_429() {
    let Some(dir) = support::minilm() else { return };
    let pool = Arc::new(Pool::new(PoolConfig { queue_capacity: 1, ..PoolConfig::default() }));
    let gate = GatedWorker::new("gated-0");
    pool.add_worker(gate.clone());
    let server = Server::start(support::config(&dir, pool)).unwrap();
    let addr = server.addr();
    let body = json!({ "model": "minilm", "input": "queued" }).to_string();
    // Requests pile up behind the held one: in the dispatchers, then in the
    // one-place queue, until the pool says it is busy.
    let mut held: Vec<std::thread::JoinHandle<support::Answer>> = Vec::new();
    let refused = loop {
        assert!(held.len() < 64, "the pool never refused a request");
        let body = body.clone();
        held.push(std::thread::spawn(move || post_to(addr, "/v1/embeddings", &body, None)));
        std::thread::sleep(std::time::Duration::from_millis(100));
        // Only a refusal can finish while the gate is closed.
        if let Some(i) = held.iter().position(|h| h.is_finished()) {
            break held.swap_remove(i).join().unwrap();
        }
    };
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.json()["error"]["code"], "rate_limit_exceeded");
    assert!(refused.json()["error"]["message"].as_str().unwrap().contains("busy"), "{}", refused.body);
    gate.open();
    for h in held {
        // A second refusal may still have been on its way.
        let status = h.join().unwrap().status;
        assert!(status == 200 || status == 429, "{status}");
    }
    server.shutdown().unwrap();
}
