//! A worker that is another server: an ipfs-accelerate `serve`, or any
//! OpenAI-compatible (`POST /v1/embeddings`) or text-embeddings-inference
//! (`POST /embed`) endpoint, reached over HTTP.
//!
//! This is how a deployment grows past one machine: the pool schedules,
//! retries and recovers a remote worker by the same rules as a local one.
//! The pool names models by their local directory; the remote side knows
//! them by name, so a remote worker maps a directory to the name of its
//! last path component (`…/all-MiniLM-L6-v2` → `all-MiniLM-L6-v2`), or
//! through the config's `models` table when one is given.
//!
//! Calls are blocking (`ureq`): a pool dispatcher thread waits on each
//! request anyway, and a blocking client needs no runtime here.

use crate::worker::{Worker, WorkerError, WorkerInfo, WorkerKind};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The most response bytes read from a remote: far above any real batch of
/// embeddings, and a bound on what a misbehaving server can make us buffer.
const MAX_RESPONSE_BYTES: u64 = 256 << 20;

/// How much of an unexpected response body an error quotes.
const EXCERPT_CHARS: usize = 200;

/// The HTTP API a remote worker speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteProtocol {
    /// OpenAI's `POST /v1/embeddings` (also ipfs-accelerate's own server).
    #[default]
    #[serde(rename = "openai")]
    OpenAi,
    /// text-embeddings-inference's `POST /embed`.
    Tei,
}

impl RemoteProtocol {
    /// The spelling in `pool.toml` and in the worker's capabilities.
    pub fn as_str(self) -> &'static str {
        match self {
            RemoteProtocol::OpenAi => "openai",
            RemoteProtocol::Tei => "tei",
        }
    }
}

/// How to reach a remote server and what to call its models.
#[derive(Clone)]
pub struct RemoteConfig {
    /// The server's root, `http://host:port` (no `/v1`): the protocol's
    /// paths are appended to it.
    pub url: String,
    /// The API it speaks.
    pub protocol: RemoteProtocol,
    /// Sent as `Authorization: Bearer KEY` when set.
    pub api_key: Option<String>,
    /// Longest wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest a whole request may take, connection included.
    pub timeout: Duration,
    /// Local model directory name → the remote's model name. `None`: every
    /// model, under its directory's name; `Some`: only the models listed.
    pub models: Option<BTreeMap<String, String>>,
}

// The API key must not end up in logs.
impl std::fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("url", &self.url)
            .field("protocol", &self.protocol)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("models", &self.models)
            .finish()
    }
}

impl RemoteConfig {
    /// An OpenAI-protocol server at `url` with the default timeouts
    /// (5 s to connect, 60 s per request) and no key or model map.
    pub fn new(url: impl Into<String>) -> Self {
        RemoteConfig {
            url: url.into(),
            protocol: RemoteProtocol::OpenAi,
            api_key: None,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(60),
            models: None,
        }
    }
}

/// Why `url` cannot be a remote worker's base URL, or `None` when it can.
/// Only `http://` and `https://` roots with a host are accepted, without a
/// query or fragment (the protocol's paths are appended to it).
pub fn check_url(url: &str) -> Option<String> {
    let rest = match url.split_once("://") {
        Some(("http" | "https", rest)) => rest,
        Some((scheme, _)) => return Some(format!("url {url:?} has the scheme {scheme:?}: use http:// or https://")),
        None => return Some(format!("url {url:?} is not a URL: write it as http://host:port")),
    };
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Some(format!("url {url:?} has no host: write it as http://host:port"));
    }
    if url.chars().any(|c| c.is_whitespace() || c == '?' || c == '#') {
        return Some(format!("url {url:?} has spaces, a query or a fragment: give only the server's root"));
    }
    if url.trim_end_matches('/').ends_with("/v1") {
        return Some(format!("url {url:?} ends in /v1: give the server's root; /v1/embeddings is appended to it"));
    }
    None
}

/// A worker that forwards embedding requests to another server.
pub struct RemoteWorker {
    id: String,
    config: RemoteConfig,
    /// `config.url` without a trailing slash.
    base: String,
    /// Why `config.url` cannot be used, when it cannot.
    broken: Option<String>,
    agent: ureq::Agent,
    /// Set when the server could not be reached at all (refused, no route,
    /// DNS), cleared by any HTTP answer: the pool then recovers it at the
    /// first failed health check instead of waiting for several.
    unreachable: AtomicBool,
    /// Models the remote has answered for, for `pool status` and the
    /// scheduler's preference for a loaded model.
    served: Mutex<BTreeSet<PathBuf>>,
}

impl RemoteWorker {
    /// A worker for the server `config` describes. A URL that is not a
    /// usable http(s) root ([`check_url`]; `pool.toml`'s parser rejects
    /// those up front) makes it refuse every model, saying why.
    pub fn new(id: impl Into<String>, config: RemoteConfig) -> Self {
        let agent = ureq::AgentBuilder::new().timeout_connect(config.connect_timeout).timeout(config.timeout).build();
        RemoteWorker {
            id: id.into(),
            broken: check_url(&config.url),
            base: config.url.trim_end_matches('/').to_string(),
            config,
            agent,
            unreachable: AtomicBool::new(false),
            served: Mutex::default(),
        }
    }

    /// The configuration it was made with.
    pub fn config(&self) -> &RemoteConfig {
        &self.config
    }

    /// The remote's name for the model in `model_dir`: its entry in the
    /// `models` map (looked up by the directory's last path component, or
    /// the whole path), or without a map that last component itself.
    pub fn remote_model(&self, model_dir: &Path) -> Option<String> {
        let name = model_dir.file_name()?.to_str()?;
        match &self.config.models {
            None => Some(name.to_string()),
            Some(map) => map.get(name).or_else(|| model_dir.to_str().and_then(|full| map.get(full))).cloned(),
        }
    }

    fn error(&self, message: impl Into<String>) -> WorkerError {
        WorkerError { worker: self.id.clone(), message: message.into() }
    }

    fn authorize(&self, request: ureq::Request) -> ureq::Request {
        match &self.config.api_key {
            Some(key) => request.set("Authorization", &format!("Bearer {key}")),
            None => request,
        }
    }

    /// Turns a ureq outcome into the response or a clear error, noting
    /// whether the server was reachable.
    fn answer(&self, what: &str, outcome: Result<ureq::Response, ureq::Error>) -> Result<String, WorkerError> {
        match outcome {
            Ok(response) => {
                self.unreachable.store(false, Ordering::SeqCst);
                let status = response.status();
                read_body(response)
                    .map_err(|e| self.error(format!("{what}: HTTP {status}, the body could not be read: {e}")))
            }
            Err(ureq::Error::Status(status, response)) => {
                self.unreachable.store(false, Ordering::SeqCst);
                let body = read_body(response).unwrap_or_default();
                Err(self.error(format!("{what}: HTTP {status}: {}", excerpt(&body))))
            }
            Err(ureq::Error::Transport(t)) => {
                let down = matches!(
                    t.kind(),
                    ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Dns | ureq::ErrorKind::ProxyConnect
                );
                if down {
                    self.unreachable.store(true, Ordering::SeqCst);
                }
                Err(self.error(format!("{what}: {}", transport_detail(&t))))
            }
        }
    }

    fn post(&self, path: &str, body: &serde_json::Value) -> Result<String, WorkerError> {
        let url = format!("{}{path}", self.base);
        let request = self.authorize(self.agent.post(&url)).set("Content-Type", "application/json");
        self.answer(&format!("POST {url}"), request.send_string(&body.to_string()))
    }

    /// Parses `body` as the protocol's answer for `count` texts.
    fn vectors(&self, url_path: &str, body: &str, count: usize) -> Result<Vec<Vec<f32>>, WorkerError> {
        let bad =
            |why: String| self.error(format!("POST {}{url_path}: {why}; the body began: {}", self.base, excerpt(body)));
        let vectors: Vec<Vec<f32>> = match self.config.protocol {
            RemoteProtocol::Tei => {
                serde_json::from_str(body).map_err(|e| bad(format!("not a TEI answer ([[number]]): {e}")))?
            }
            RemoteProtocol::OpenAi => {
                let answer: OpenAiAnswer =
                    serde_json::from_str(body).map_err(|e| bad(format!("not an OpenAI embeddings answer: {e}")))?;
                let mut slots: Vec<Option<Vec<f32>>> = vec![None; answer.data.len()];
                for item in answer.data {
                    let slot = slots
                        .get_mut(item.index)
                        .ok_or_else(|| bad(format!("index {} is out of range for {count} texts", item.index)))?;
                    if slot.replace(item.embedding).is_some() {
                        return Err(bad(format!("index {} appears twice", item.index)));
                    }
                }
                // Every slot is filled: as many items as slots, none twice.
                slots.into_iter().flatten().collect()
            }
        };
        if vectors.len() != count {
            return Err(bad(format!("{} vectors for {count} texts", vectors.len())));
        }
        let dim = vectors.first().map_or(0, Vec::len);
        if dim == 0 || vectors.iter().any(|v| v.len() != dim) {
            return Err(bad("vectors are empty or of different lengths".into()));
        }
        if vectors.iter().flatten().any(|x| !x.is_finite()) {
            return Err(bad("a vector holds a non-finite number".into()));
        }
        Ok(vectors)
    }
}

#[derive(Deserialize)]
struct OpenAiAnswer {
    data: Vec<OpenAiItem>,
}

#[derive(Deserialize)]
struct OpenAiItem {
    embedding: Vec<f32>,
    index: usize,
}

/// A transport error without the URL its Display starts with (the caller
/// names it), and without the kind repeated when its cause repeats it.
fn transport_detail(t: &ureq::Transport) -> String {
    let text = t.to_string();
    let text = match t.url() {
        Some(url) => text.strip_prefix(&format!("{url}: ")).unwrap_or(&text).to_string(),
        None => text,
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split(": ") {
        if parts.last() != Some(&part) {
            parts.push(part);
        }
    }
    parts.join(": ")
}

/// The body as text, at most [`MAX_RESPONSE_BYTES`].
fn read_body(response: ureq::Response) -> std::io::Result<String> {
    let mut text = String::new();
    response.into_reader().take(MAX_RESPONSE_BYTES).read_to_string(&mut text)?;
    Ok(text)
}

/// The start of a body on one line, for error messages.
fn excerpt(body: &str) -> String {
    let line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return "(empty body)".into();
    }
    match line.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

impl Worker for RemoteWorker {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> WorkerKind {
        WorkerKind::Remote
    }

    fn info(&self) -> WorkerInfo {
        WorkerInfo {
            browser: None,
            capabilities: serde_json::json!({
                "url": self.base,
                "protocol": self.config.protocol.as_str(),
                "models": self.config.models,
            }),
            // Both protocols carry float32 vectors; what the remote computes
            // in is its own business.
            precision: "f32".into(),
        }
    }

    fn embed(&self, model_dir: &Path, texts: &[&str]) -> Result<Vec<Vec<f32>>, WorkerError> {
        if let Some(why) = &self.broken {
            return Err(self.error(why.clone()));
        }
        let model = self
            .remote_model(model_dir)
            .ok_or_else(|| self.error(format!("its models map has no entry for {}", model_dir.display())))?;
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (path, body) = match self.config.protocol {
            RemoteProtocol::OpenAi => {
                ("/v1/embeddings", serde_json::json!({"model": model, "input": texts, "encoding_format": "float"}))
            }
            RemoteProtocol::Tei => ("/embed", serde_json::json!({"inputs": texts})),
        };
        let answer = self.post(path, &body)?;
        let vectors = self.vectors(path, &answer, texts.len())?;
        self.served.lock().unwrap_or_else(|p| p.into_inner()).insert(model_dir.to_path_buf());
        Ok(vectors)
    }

    fn has_loaded(&self, model_dir: &Path) -> bool {
        self.served.lock().unwrap_or_else(|p| p.into_inner()).contains(model_dir)
    }

    fn loaded_models(&self) -> Vec<PathBuf> {
        self.served.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }

    fn unsupported(&self, model_dir: &Path) -> Option<String> {
        if let Some(why) = &self.broken {
            return Some(format!("it is a remote worker whose {why}"));
        }
        if self.remote_model(model_dir).is_some() {
            // Whether the remote really has it, only a request can tell.
            return None;
        }
        let known = self.config.models.as_ref().map(|m| m.keys().cloned().collect::<Vec<_>>().join(", "));
        Some(format!(
            "it is a remote worker ({}) whose models map has no entry for {} (it maps: {})",
            self.base,
            model_dir.display(),
            known.unwrap_or_default()
        ))
    }

    fn health(&self, timeout: Duration) -> Result<(), WorkerError> {
        if let Some(why) = &self.broken {
            return Err(self.error(why.clone()));
        }
        let path = match self.config.protocol {
            RemoteProtocol::OpenAi => "/v1/models",
            RemoteProtocol::Tei => "/health",
        };
        let url = format!("{}{path}", self.base);
        let request = self.authorize(self.agent.get(&url)).timeout(timeout.min(self.config.timeout));
        self.answer(&format!("GET {url}"), request.call()).map(|_| ())
    }

    fn is_down(&self) -> bool {
        self.unreachable.load(Ordering::SeqCst)
    }

    fn recover(&self) -> Result<(), WorkerError> {
        // Nothing here to restart: it is back when it answers again.
        self.health(self.config.timeout)
    }
}
