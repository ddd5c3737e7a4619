//! The bridge: an HTTP + WebSocket server on 127.0.0.1 that browser pages
//! join as workers.
//!
//! It serves the worker page and its JS (embedded in the binary), the WGSL
//! kernels (`/kernels/{id}.wgsl`, the same text the native backend runs),
//! weight chunks by CID (the trustless-gateway routes over a
//! [`ChunkStore`]), and `/ws?token=…`, where each page speaks the
//! [`crate::protocol`]. A page without the bridge's token is refused.
//!
//! The bridge runs its own tokio runtime on background threads; its API is
//! synchronous, so models call it like any backend: [`Bridge::wait_for_worker`]
//! gives a [`WorkerHandle`] whose `load` and `run` block until the page
//! answers, the request times out, or the page goes away (then every request
//! in flight fails at once with an error).

use crate::chunks::ChunkStore;
use crate::error::{BridgeError, Result};
use crate::protocol::{frame, parse_frame, HostMessage, PageMessage, TensorDesc, PROTOCOL_VERSION};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use ipfs_accelerate_tensor::Tensor;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// How a bridge listens and whom it lets in.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// Address to listen on (default `127.0.0.1:0`: this machine only, any free port).
    pub addr: SocketAddr,
    /// Token pages must present; `None` generates a random one.
    pub token: Option<String>,
    /// How long one `load` or `run` may take.
    pub request_timeout: Duration,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: None,
            request_timeout: Duration::from_secs(300),
        }
    }
}

/// A running bridge; stops when dropped.
pub struct Bridge {
    shared: Arc<Shared>,
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    shutdown: Option<oneshot::Sender<()>>,
}

/// State shared by the server's tasks and the bridge's handles.
struct Shared {
    token: String,
    chunks: Arc<ChunkStore>,
    workers: Mutex<Vec<Arc<Connection>>>,
    joined: tokio::sync::Notify,
    next_worker: AtomicU32,
    timeout: Duration,
}

/// One page's connection, as the host sees it.
struct Connection {
    worker_id: u32,
    capabilities: serde_json::Value,
    outgoing: mpsc::UnboundedSender<Message>,
    pending: Mutex<HashMap<u32, Pending>>,
    next_request: AtomicU32,
    alive: AtomicBool,
}

/// A request waiting for its answer (a std channel: the waiter is
/// synchronous code, the sender the connection's task).
struct Pending {
    reply: std::sync::mpsc::Sender<std::result::Result<Reply, String>>,
    /// For a `result`: its outputs and the frames received so far.
    outputs: Option<(Vec<TensorDesc>, Vec<Option<bytes::Bytes>>)>,
}

/// What a page answered.
enum Reply {
    Loaded { hits: u32, misses: u32 },
    Outputs(Vec<(TensorDesc, bytes::Bytes)>),
    Pong,
}

/// The page and scripts served to browsers, embedded at build time.
const ASSETS: &[(&str, &str, &str)] = &[
    ("/", "text/html; charset=utf-8", include_str!("../web/index.html")),
    ("/worker.js", "text/javascript; charset=utf-8", include_str!("../web/worker.js")),
    ("/webgpu.js", "text/javascript; charset=utf-8", include_str!("../web/webgpu.js")),
    ("/webnn.js", "text/javascript; charset=utf-8", include_str!("../web/webnn.js")),
    ("/weights.js", "text/javascript; charset=utf-8", include_str!("../web/weights.js")),
    ("/capabilities.js", "text/javascript; charset=utf-8", include_str!("../web/capabilities.js")),
];

impl Bridge {
    /// Starts a bridge.
    pub fn start(config: BridgeConfig) -> Result<Bridge> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("bridge")
            .build()
            .map_err(|e| BridgeError::Io(format!("cannot start the bridge's runtime: {e}")))?;
        let token = config.token.clone().unwrap_or_else(random_token);
        let shared = Arc::new(Shared {
            token,
            chunks: Arc::new(ChunkStore::new()),
            workers: Mutex::default(),
            joined: tokio::sync::Notify::new(),
            next_worker: AtomicU32::new(1),
            timeout: config.request_timeout,
        });
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(config.addr))
            .map_err(|e| BridgeError::Io(format!("cannot listen on {}: {e}", config.addr)))?;
        let addr = listener.local_addr().map_err(|e| BridgeError::Io(e.to_string()))?;
        let app = router(shared.clone());
        let (shutdown, stop) = oneshot::channel::<()>();
        // A run is a JSON message and then small binary frames: without
        // TCP_NODELAY, Nagle's algorithm holds each frame back until the
        // page acknowledges the previous one (tens of ms per request).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY on a bridge connection: {e}");
            }
        });
        runtime.spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stop.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!("the bridge server stopped: {e}");
            }
        });
        tracing::info!(%addr, "browser bridge listening");
        Ok(Bridge { shared, addr, runtime: Some(runtime), shutdown: Some(shutdown) })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL a browser opens to join as a worker (token included).
    pub fn worker_url(&self) -> String {
        format!("http://{}/?token={}", self.addr, self.shared.token)
    }

    /// The token pages must present.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The store weight chunks are served from.
    pub fn chunks(&self) -> &ChunkStore {
        &self.shared.chunks
    }

    /// Pages connected now.
    pub fn workers(&self) -> Vec<WorkerHandle> {
        let workers = self.shared.workers.lock().unwrap_or_else(|p| p.into_inner());
        workers.iter().map(|c| WorkerHandle { conn: c.clone(), shared: self.shared.clone() }).collect()
    }

    /// Waits up to `timeout` for a page to connect and say hello.
    pub fn wait_for_worker(&self, timeout: Duration) -> Result<WorkerHandle> {
        let deadline = Instant::now() + timeout;
        let runtime = self.runtime.as_ref().expect("running");
        loop {
            if let Some(w) = self.workers().into_iter().next() {
                return Ok(w);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(BridgeError::NoWorker(timeout));
            }
            let wait = left.min(Duration::from_millis(200));
            runtime.block_on(async {
                let _ = tokio::time::timeout(wait, self.shared.joined.notified()).await;
            });
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        for w in self.workers() {
            let _ = w.conn.outgoing.send(text(&HostMessage::Bye));
        }
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// A connected page.
#[derive(Clone)]
pub struct WorkerHandle {
    conn: Arc<Connection>,
    shared: Arc<Shared>,
}

/// What a `load` reported about the weight chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadStats {
    /// Chunks the page had in its Cache Storage.
    pub cache_hits: u32,
    /// Chunks it fetched from the bridge.
    pub cache_misses: u32,
}

impl WorkerHandle {
    /// The bridge's number for this page.
    pub fn id(&self) -> u32 {
        self.conn.worker_id
    }

    /// What the page reported it can do.
    pub fn capabilities(&self) -> &serde_json::Value {
        &self.conn.capabilities
    }

    /// Whether the connection is still open.
    pub fn is_alive(&self) -> bool {
        self.conn.alive.load(Ordering::SeqCst)
    }

    /// A fresh request id.
    pub fn next_id(&self) -> u32 {
        self.conn.next_request.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a `load` (built with [`WorkerHandle::next_id`]'s id) and waits
    /// for `loaded`.
    pub fn load(&self, message: HostMessage) -> Result<LoadStats> {
        let HostMessage::Load { id, .. } = &message else {
            return Err(BridgeError::Protocol("load() takes a load message".into()));
        };
        match self.request(*id, vec![text(&message)], None)? {
            Reply::Loaded { hits, misses } => Ok(LoadStats { cache_hits: hits, cache_misses: misses }),
            _ => Err(BridgeError::Protocol("the page answered a load with something else".into())),
        }
    }

    /// Runs a loaded `model` on `inputs`; returns the outputs in the page's order.
    pub fn run(&self, model: &str, inputs: &[(&str, &Tensor)]) -> Result<Vec<(String, Tensor)>> {
        let id = self.next_id();
        let descs: Vec<TensorDesc> = inputs
            .iter()
            .map(|(name, t)| TensorDesc { name: name.to_string(), dtype: t.dtype(), shape: t.shape().dims().to_vec() })
            .collect();
        let mut messages = vec![text(&HostMessage::Run { id, model: model.to_string(), inputs: descs })];
        for (i, (_, t)) in inputs.iter().enumerate() {
            messages.push(Message::Binary(frame(id, i as u32, t.as_bytes()).into()));
        }
        match self.request(id, messages, None)? {
            Reply::Outputs(outputs) => outputs
                .into_iter()
                .map(|(desc, data)| {
                    let tensor = Tensor::copy_from_bytes(desc.dtype, desc.shape.clone(), &data)
                        .map_err(|e| BridgeError::Protocol(format!("output {:?}: {e}", desc.name)))?;
                    Ok((desc.name, tensor))
                })
                .collect(),
            _ => Err(BridgeError::Protocol("the page answered a run with something else".into())),
        }
    }

    /// Pings the page; fails if it does not answer within `timeout`.
    pub fn ping(&self, timeout: Duration) -> Result<Duration> {
        let id = self.next_id();
        let start = Instant::now();
        self.request(id, vec![text(&HostMessage::Ping { id })], Some(timeout))?;
        Ok(start.elapsed())
    }

    /// Asks the page to free a model.
    pub fn unload(&self, model: &str) {
        let _ = self.conn.outgoing.send(text(&HostMessage::Unload { model: model.to_string() }));
    }

    fn request(&self, id: u32, messages: Vec<Message>, timeout: Option<Duration>) -> Result<Reply> {
        if !self.is_alive() {
            return Err(BridgeError::Disconnected(self.id()));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        self.conn.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id, Pending { reply: tx, outputs: None });
        // The page may have gone between the check above and the insert; the
        // connection drains `pending` only after marking itself dead, so
        // checking again here means no request waits for a page that left.
        if !self.is_alive() {
            self.conn.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            return Err(BridgeError::Disconnected(self.id()));
        }
        for m in messages {
            if self.conn.outgoing.send(m).is_err() {
                self.conn.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                return Err(BridgeError::Disconnected(self.id()));
            }
        }
        let timeout = timeout.unwrap_or(self.shared.timeout);
        match rx.recv_timeout(timeout) {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(message)) if !self.is_alive() => {
                Err(BridgeError::Page { worker: self.id(), message: format!("{message} (the page is gone)") })
            }
            Ok(Err(message)) => Err(BridgeError::Page { worker: self.id(), message }),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(BridgeError::Disconnected(self.id())),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                self.conn.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                Err(BridgeError::Timeout { worker: self.id(), after: timeout })
            }
        }
    }
}

fn text(message: &HostMessage) -> Message {
    Message::Text(serde_json::to_string(message).expect("host messages serialize").into())
}

/// 32 random hex characters: from /dev/urandom, else from the randomly
/// keyed hashers std seeds from the OS (Windows).
fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut bytes = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if filled.is_err() {
        for half in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(Instant::now().elapsed().as_nanos());
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn router(shared: Arc<Shared>) -> Router {
    let mut app: Router<Arc<Shared>> =
        Router::new().route("/ws", get(upgrade)).route("/kernels/{file}", get(kernel_source));
    for &(path, content_type, body) in ASSETS {
        app = app.route(path, get(move || async move { ([(header::CONTENT_TYPE, content_type)], body) }));
    }
    app.merge(ipfs_accelerate_ipfs::gateway::routes(shared.chunks.clone())).with_state(shared)
}

async fn kernel_source(Path(file): Path<String>) -> Response {
    let id = file.strip_suffix(".wgsl").unwrap_or(&file);
    match ipfs_accelerate_gpu::kernel(id) {
        Ok(k) => ([(header::CONTENT_TYPE, "text/wgsl; charset=utf-8")], k.source).into_response(),
        Err(_) => (StatusCode::NOT_FOUND, format!("no kernel {id:?}")).into_response(),
    }
}

async fn upgrade(
    ws: WebSocketUpgrade,
    Query(query): Query<HashMap<String, String>>,
    State(shared): State<Arc<Shared>>,
) -> Response {
    if query.get("token").map(String::as_str) != Some(shared.token.as_str()) {
        return (StatusCode::UNAUTHORIZED, "wrong or missing token: open the worker URL the bridge printed")
            .into_response();
    }
    // Weights travel as chunks over HTTP; frames carry only activations.
    ws.max_message_size(1 << 30).on_upgrade(move |socket| serve_page(socket, shared))
}

/// One page's connection: `hello` first, then answers to requests.
async fn serve_page(socket: WebSocket, shared: Arc<Shared>) {
    let (mut sink, mut stream) = socket.split();
    // The hello must come first (and soon).
    let hello = tokio::time::timeout(Duration::from_secs(30), stream.next()).await;
    let capabilities = match hello {
        Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<PageMessage>(&t) {
            Ok(PageMessage::Hello { version, capabilities }) if version == PROTOCOL_VERSION => capabilities,
            Ok(PageMessage::Hello { version, .. }) => {
                tracing::warn!(version, "a page speaks another protocol version; refused");
                let _ = sink.close().await;
                return;
            }
            _ => {
                tracing::warn!("a page did not start with hello; connection closed");
                let _ = sink.close().await;
                return;
            }
        },
        _ => return,
    };
    let (outgoing, mut queue) = mpsc::unbounded_channel::<Message>();
    let conn = Arc::new(Connection {
        worker_id: shared.next_worker.fetch_add(1, Ordering::Relaxed),
        capabilities,
        outgoing,
        pending: Mutex::default(),
        next_request: AtomicU32::new(1),
        alive: AtomicBool::new(true),
    });
    shared.workers.lock().unwrap_or_else(|p| p.into_inner()).push(conn.clone());
    shared.joined.notify_waiters();
    tracing::info!(worker = conn.worker_id, "a browser worker joined");

    // `bye` needs no special case: the bridge shuts its runtime down right
    // after sending it, which closes every connection.
    let writer = tokio::spawn(async move {
        while let Some(m) = queue.recv().await {
            if sink.send(m).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    while let Some(message) = stream.next().await {
        let ok = match message {
            Ok(Message::Text(t)) => handle_text(&conn, &t),
            Ok(Message::Binary(b)) => handle_frame(&conn, b),
            Ok(Message::Close(_)) | Err(_) => false,
            Ok(_) => true,
        };
        if !ok {
            break;
        }
    }
    // Gone: fail everything in flight, forget the worker.
    conn.alive.store(false, Ordering::SeqCst);
    let pending: Vec<Pending> =
        conn.pending.lock().unwrap_or_else(|p| p.into_inner()).drain().map(|(_, p)| p).collect();
    for p in pending {
        let _ = p.reply.send(Err("the browser worker disconnected".into()));
    }
    shared.workers.lock().unwrap_or_else(|p| p.into_inner()).retain(|c| !Arc::ptr_eq(c, &conn));
    writer.abort();
    tracing::info!(worker = conn.worker_id, "a browser worker left");
}

/// Handles a control message; `false` closes the connection (malformed).
fn handle_text(conn: &Connection, raw: &str) -> bool {
    let message = match serde_json::from_str::<PageMessage>(raw) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(worker = conn.worker_id, "malformed message from a page ({e}); connection closed");
            return false;
        }
    };
    let mut pending = conn.pending.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(id) = message.answer_id() {
        if !pending.contains_key(&id) {
            // A late answer to a request that timed out is harmless; one to
            // a request never sent means the page is confused or hostile.
            return answered_before(conn, id);
        }
    }
    match message {
        PageMessage::Loaded { id, cache_hits, cache_misses } => {
            if let Some(p) = pending.remove(&id) {
                let _ = p.reply.send(Ok(Reply::Loaded { hits: cache_hits, misses: cache_misses }));
            }
        }
        PageMessage::Result { id, outputs } => {
            let Some(p) = pending.get_mut(&id) else { return true };
            if outputs.is_empty() {
                let p = pending.remove(&id).expect("present");
                let _ = p.reply.send(Ok(Reply::Outputs(Vec::new())));
            } else {
                let n = outputs.len();
                p.outputs = Some((outputs, vec![None; n]));
            }
        }
        PageMessage::Error { id, message } => {
            if let Some(p) = pending.remove(&id) {
                let _ = p.reply.send(Err(message));
            }
        }
        PageMessage::Pong { id } => {
            if let Some(p) = pending.remove(&id) {
                let _ = p.reply.send(Ok(Reply::Pong));
            }
        }
        PageMessage::Ping { id } => {
            let _ = conn.outgoing.send(text(&HostMessage::Pong { id }));
        }
        PageMessage::Hello { .. } => return false,
        PageMessage::Bye => return false,
    }
    true
}

/// Whether an answer to `id`, which is not pending, may stay: only when the
/// host sent that id before (the request timed out and was forgotten). An
/// answer to an id never sent closes the connection, failing what is in
/// flight there so the pool retries it elsewhere.
fn answered_before(conn: &Connection, id: u32) -> bool {
    if id < conn.next_request.load(Ordering::SeqCst) {
        return true;
    }
    tracing::warn!(
        worker = conn.worker_id,
        id,
        "a page answered request {id}, which it was never sent; connection closed"
    );
    false
}

/// Handles a tensor frame of a pending result; `false` closes the connection.
fn handle_frame(conn: &Connection, data: bytes::Bytes) -> bool {
    let Some((id, index, _)) = parse_frame(&data) else { return false };
    let mut pending = conn.pending.lock().unwrap_or_else(|p| p.into_inner());
    let Some(p) = pending.get_mut(&id) else { return answered_before(conn, id) };
    let Some((descs, frames)) = p.outputs.as_mut() else { return false };
    let Some(desc) = descs.get(index as usize) else { return false };
    let want = desc.dtype.storage_bytes(desc.shape.iter().product::<usize>()).unwrap_or(usize::MAX);
    let payload = data.slice(crate::protocol::FRAME_HEADER..);
    if payload.len() != want {
        // Garbage: fail this request with what was wrong, then close the
        // connection (a page that sends malformed tensors is not trusted).
        let message = format!("output {:?} arrived with {} bytes, expected {want}", desc.name, payload.len());
        tracing::warn!(worker = conn.worker_id, "{message}; connection closed");
        let p = pending.remove(&id).expect("present");
        let _ = p.reply.send(Err(message));
        return false;
    }
    let slot = &mut frames[index as usize];
    *slot = Some(payload);
    if frames.iter().all(Option::is_some) {
        let p = pending.remove(&id).expect("present");
        let (descs, frames) = p.outputs.expect("set");
        let outputs = descs.into_iter().zip(frames.into_iter().map(|f| f.expect("all present"))).collect();
        let _ = p.reply.send(Ok(Reply::Outputs(outputs)));
    }
    true
}
