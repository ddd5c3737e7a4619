//! Shared by the server's end-to-end tests: a server on 127.0.0.1:0 over a
//! CPU pool with the real all-MiniLM-L6-v2, and a small HTTP client.

// Each test binary uses only some of these.
#![allow(dead_code)]

use ipfs_accelerate_pool::{LocalWorker, Pool, PoolConfig, Worker, WorkerError, WorkerKind};
use ipfs_accelerate_server::{ModelSpec, RunningServer, Server, ServerConfig};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[path = "../../../models/tests/common/mod.rs"]
mod common;

/// The MiniLM test model, or `None` (the test is skipped with a notice).
pub fn minilm() -> Option<PathBuf> {
    common::test_model("all-MiniLM-L6-v2")
}

/// A CPU pool with one worker.
pub fn cpu_pool() -> Arc<Pool> {
    let pool = Arc::new(Pool::new(PoolConfig::default()));
    pool.add_worker(Arc::new(LocalWorker::cpu("cpu-0")));
    pool
}

/// A config serving `dir` as `minilm` on 127.0.0.1:0 through `pool`.
pub fn config(dir: &Path, pool: Arc<Pool>) -> ServerConfig {
    let model = ModelSpec { name: "minilm".into(), dir: dir.to_path_buf() };
    ServerConfig::new("127.0.0.1:0".parse().unwrap(), vec![model], pool)
}

/// Starts a server serving `dir` as `minilm` on a CPU pool.
pub fn start(dir: &Path) -> RunningServer {
    Server::start(config(dir, cpu_pool())).expect("the server starts")
}

/// An HTTP answer: status and body.
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub content_type: String,
    /// The `Connection` header, empty when absent.
    pub connection: String,
}

impl Answer {
    /// The body as JSON; fails the test when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// The status, body and headers of a response (error statuses included).
pub fn answer(result: Result<ureq::Response, ureq::Error>) -> Answer {
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("the request failed: {e}"),
    };
    let status = response.status();
    let content_type = response.header("content-type").unwrap_or_default().to_string();
    let connection = response.header("connection").unwrap_or_default().to_string();
    let body = response.into_string().unwrap();
    Answer { status, body, content_type, connection }
}

/// GET `path` on `server`, with `key` as bearer token when given.
pub fn get(server: &RunningServer, path: &str, key: Option<&str>) -> Answer {
    let mut request = ureq::get(&format!("http://{}{path}", server.addr())).timeout(Duration::from_secs(120));
    if let Some(key) = key {
        request = request.set("Authorization", &format!("Bearer {key}"));
    }
    answer(request.call())
}

/// POST `body` (raw) to `path` on `addr`.
pub fn post_to(addr: std::net::SocketAddr, path: &str, body: &str, key: Option<&str>) -> Answer {
    let mut request = ureq::post(&format!("http://{addr}{path}"))
        .timeout(Duration::from_secs(120))
        .set("Content-Type", "application/json");
    if let Some(key) = key {
        request = request.set("Authorization", &format!("Bearer {key}"));
    }
    answer(request.send_string(body))
}

/// POST raw bytes to `path` on `addr`; `None` when the connection failed
/// (which a test of robustness counts as a failure of its own).
pub fn post_bytes(addr: std::net::SocketAddr, path: &str, body: &[u8]) -> Option<Answer> {
    let request = ureq::post(&format!("http://{addr}{path}"))
        .timeout(Duration::from_secs(120))
        .set("Content-Type", "application/json");
    match request.send_bytes(body) {
        Ok(r) | Err(ureq::Error::Status(_, r)) => Some(answer(Ok(r))),
        Err(_) => None,
    }
}

/// POST `body` (raw) to `path` on `server`.
pub fn post(server: &RunningServer, path: &str, body: &str) -> Answer {
    post_to(server.addr(), path, body, None)
}

/// The largest element-wise difference between two sets of vectors.
pub fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

/// A real CPU worker that holds each request until the test opens its
/// gate, so tests can keep requests in flight for as long as they need.
pub struct GatedWorker {
    inner: LocalWorker,
    state: Mutex<(bool, usize)>,
    changed: Condvar,
}

impl GatedWorker {
    /// A closed gate in front of a CPU worker.
    pub fn new(id: &str) -> Arc<Self> {
        Arc::new(GatedWorker { inner: LocalWorker::cpu(id), state: Mutex::new((false, 0)), changed: Condvar::new() })
    }

    /// Lets every held and later request through.
    pub fn open(&self) {
        self.state.lock().unwrap().0 = true;
        self.changed.notify_all();
    }

    /// Waits until `n` requests are held at the gate.
    pub fn wait_for_waiting(&self, n: usize) {
        let state = self.state.lock().unwrap();
        let (state, timeout) =
            self.changed.wait_timeout_while(state, Duration::from_secs(60), |s| s.1 < n && !s.0).unwrap();
        assert!(!timeout.timed_out(), "only {} request(s) reached the worker", state.1);
    }
}

impl Worker for GatedWorker {
    fn id(&self) -> &str {
        self.inner.id()
    }

    fn kind(&self) -> WorkerKind {
        WorkerKind::NativeCpu
    }

    fn embed(&self, model_dir: &Path, texts: &[&str]) -> Result<Vec<Vec<f32>>, WorkerError> {
        let mut state = self.state.lock().unwrap();
        state.1 += 1;
        self.changed.notify_all();
        let state = self.changed.wait_while(state, |s| !s.0).unwrap();
        drop(state);
        self.inner.embed(model_dir, texts)
    }

    fn has_loaded(&self, model_dir: &Path) -> bool {
        self.inner.has_loaded(model_dir)
    }

    fn health(&self, timeout: Duration) -> Result<(), WorkerError> {
        self.inner.health(timeout)
    }
}
