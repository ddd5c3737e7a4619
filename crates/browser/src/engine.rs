//! Models on a browser worker: a [`GraphRunner`] that compiles each graph on
//! the host (a WebGPU plan, or a WebNN graph with fused ops decomposed),
//! publishes the weights as CID-named chunks on the bridge, asks the page to
//! load them, and then sends runs.
//!
//! Several models can share one page: [`BrowserEngine::model_runner`] gives
//! each its own model number, which keys its graphs on the host and on the
//! page, while weights go by content (a weight's page key carries the CID of
//! its bytes), so models never see each other's graphs or weights.

use crate::bridge::{Bridge, WorkerHandle};
use crate::launch::BrowserProcess;
use crate::protocol::{HostMessage, KernelRef, WeightRef};
use ipfs_accelerate_gpu::plan::BufferRole;
use ipfs_accelerate_gpu::{compile_with, weight_tensor, BindingKind, CompileOptions};
use ipfs_accelerate_models::engine::GraphRunner;
use ipfs_accelerate_models::{BackendKind, Error, Result};
use ipfs_accelerate_tensor::graph::decompose::decompose_fused;
use ipfs_accelerate_tensor::graph::ConstantSource;
use ipfs_accelerate_tensor::{Graph, Tensor, Weights};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// Which browser API runs the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrowserBackend {
    /// WebGPU, running host-compiled plans with the shared WGSL kernels.
    WebGpu,
    /// WebNN, running the graph IR lowered to `MLGraphBuilder`.
    WebNn,
}

impl BrowserBackend {
    fn name(self) -> &'static str {
        match self {
            BrowserBackend::WebGpu => "webgpu",
            BrowserBackend::WebNn => "webnn",
        }
    }
}

/// Where and how [`BrowserEngine::launch`] starts its browser.
#[derive(Debug, Clone)]
pub struct BrowserLaunch {
    /// WebGPU or WebNN.
    pub backend: BrowserBackend,
    /// `chrome`, `chromium`, `edge`, `firefox` or a path (default: the
    /// first Chromium-family browser found); [`MANUAL`] launches none and
    /// waits for the user to open the worker URL in a browser of their own.
    pub browser: Option<String>,
    /// Run without a window.
    pub headless: bool,
    /// Keep the browser profile (its weight cache) under this data dir;
    /// `None` uses a fresh temporary profile.
    pub data_dir: Option<std::path::PathBuf>,
    /// Which kept profile under `data_dir` (several browsers at once need
    /// one each: a profile is locked by the browser using it).
    pub profile_slot: usize,
    /// Bridge address; a fixed port keeps the page's origin, and with it the
    /// browser's weight cache, the same across runs.
    pub bridge_addr: std::net::SocketAddr,
    /// How long the page may take to start and join.
    pub join_timeout: std::time::Duration,
}

/// `--browser manual`: print the worker URL and wait for someone to open it.
pub const MANUAL: &str = "manual";

/// How long [`BrowserEngine::launch`] waits for a person to open the URL.
pub const MANUAL_JOIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// The bridge port `launch` tries first (falling back to any free port).
pub const DEFAULT_BRIDGE_PORT: u16 = 47_470;

impl BrowserLaunch {
    /// Headless, default browser, the default bridge port, 60 s to join.
    pub fn new(backend: BrowserBackend) -> Self {
        BrowserLaunch {
            backend,
            browser: None,
            headless: true,
            data_dir: None,
            profile_slot: 0,
            bridge_addr: std::net::SocketAddr::from(([127, 0, 0, 1], DEFAULT_BRIDGE_PORT)),
            join_timeout: std::time::Duration::from_secs(60),
        }
    }
}

/// Model keys and output names loaded on the page, by model number (0 for
/// the engine used directly as a [`GraphRunner`]) and shape key.
type LoadedModels = Mutex<HashMap<(u32, Vec<usize>), (String, Vec<String>)>>;

/// A connected worker page running models on `backend`.
pub struct BrowserEngine {
    backend: BrowserBackend,
    bridge: Bridge,
    worker: WorkerHandle,
    /// Whatever keeps the browser alive (its process), dropped with the engine.
    _keep: Option<Box<dyn Send + Sync>>,
    /// The browser [`BrowserEngine::launch`] started, kept typed so a
    /// supervisor can check, stop or kill it.
    process: Option<BrowserProcess>,
    /// Model keys (and output names) already loaded on the page.
    loaded: LoadedModels,
    /// Held while a graph is loaded onto the page, so two threads that need
    /// the same new graph load it once.
    loading: Mutex<()>,
    /// The number the next [`BrowserEngine::model_runner`] gets (0 is the
    /// engine itself).
    next_model: AtomicU32,
    /// What the page last reported about weight chunks: (hits, misses).
    cache: Mutex<(u32, u32)>,
}

fn backend_error(e: impl std::fmt::Display) -> Error {
    Error::Backend(e.to_string())
}

impl BrowserEngine {
    /// An engine on `worker` of `bridge`; `keep` (e.g. the browser process)
    /// lives as long as the engine. Fails when the page lacks the backend.
    pub fn new(
        backend: BrowserBackend,
        bridge: Bridge,
        worker: WorkerHandle,
        keep: Option<Box<dyn Send + Sync>>,
    ) -> Result<Self> {
        let caps = worker.capabilities();
        let available = match backend {
            BrowserBackend::WebGpu => caps["webgpu"]["available"].as_bool() == Some(true),
            BrowserBackend::WebNn => caps["webnn"]["available"].as_bool() == Some(true),
        };
        if !available {
            let report = &caps[backend.name()];
            // WebNN reports per device type why createContext failed.
            let device_errors: Vec<String> = report["devices"]
                .as_object()
                .map(|d| d.iter().filter_map(|(k, v)| v["error"].as_str().map(|e| format!("{k}: {e}"))).collect())
                .unwrap_or_default();
            let reason = match report["reason"].as_str() {
                Some(r) => r.to_string(),
                None if !device_errors.is_empty() => device_errors.join("; "),
                None => "not reported".to_string(),
            };
            let hint = match backend {
                BrowserBackend::WebNn => {
                    "; Debian's chromium has no WebNN backend: scripts/install-webnn-chromium.sh installs a Chromium \
                     that has one, then pass its path with --browser"
                }
                BrowserBackend::WebGpu => "",
            };
            return Err(Error::Backend(format!(
                "the browser worker has no usable {} ({reason}){hint}",
                backend.name()
            )));
        }
        Ok(BrowserEngine {
            backend,
            bridge,
            worker,
            _keep: keep,
            process: None,
            loaded: Mutex::default(),
            loading: Mutex::default(),
            next_model: AtomicU32::new(1),
            cache: Mutex::default(),
        })
    }

    /// Starts a bridge, launches a browser on its worker page, waits for the
    /// page to join, and checks it has the backend.
    pub fn launch(options: &BrowserLaunch) -> Result<Self> {
        use crate::discover::{find, resolve, BrowserKind};
        use crate::launch::{launch, LaunchOptions, Profile};
        if options.browser.as_deref() == Some(MANUAL) {
            let bridge = start_bridge(options.bridge_addr)?;
            eprintln!(
                "open {} in a browser with {} to join as a worker (waiting up to {} s)",
                bridge.worker_url(),
                options.backend.name(),
                MANUAL_JOIN_TIMEOUT.as_secs()
            );
            let worker = bridge.wait_for_worker(MANUAL_JOIN_TIMEOUT).map_err(backend_error)?;
            return BrowserEngine::new(options.backend, bridge, worker, None);
        }
        let browser = match &options.browser {
            Some(spec) => resolve(spec).map_err(backend_error)?,
            None => [BrowserKind::Chrome, BrowserKind::Chromium, BrowserKind::Edge]
                .into_iter()
                .find_map(find)
                .ok_or_else(|| {
                    Error::Backend(
                        "no Chrome, Chromium or Edge found: install one (apt-get install chromium), \
                         or pass --browser PATH"
                            .into(),
                    )
                })?,
        };
        let config = |addr| crate::BridgeConfig { addr, ..crate::BridgeConfig::default() };
        let bridge = match Bridge::start(config(options.bridge_addr)) {
            Ok(b) => b,
            Err(_) => {
                tracing::info!(
                    "bridge port {} is busy; using any free port (the browser's weight cache is per port)",
                    options.bridge_addr
                );
                Bridge::start(config(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))).map_err(backend_error)?
            }
        };
        let profile = match &options.data_dir {
            Some(dir) => Profile::Slot { data_dir: dir.clone(), slot: options.profile_slot },
            None => Profile::Ephemeral,
        };
        let launch_options = LaunchOptions { headless: options.headless, profile, extra_args: Vec::new() };
        let process = launch(&browser, &bridge.worker_url(), &launch_options).map_err(backend_error)?;
        let worker = bridge.wait_for_worker(options.join_timeout).map_err(|e| {
            let tail = process.output_tail(5).replace('\n', " | ");
            Error::Backend(format!("{e}; {browser} said: {tail}"))
        })?;
        let mut engine = BrowserEngine::new(options.backend, bridge, worker, None)?;
        engine.process = Some(process);
        Ok(engine)
    }

    /// The browser process [`BrowserEngine::launch`] started (`None` for an
    /// engine made with [`BrowserEngine::new`] or a manual browser).
    pub fn process(&self) -> Option<&BrowserProcess> {
        self.process.as_ref()
    }

    /// Whether the page is still connected and its browser (when this
    /// engine launched one) still running.
    pub fn is_alive(&self) -> bool {
        self.worker.is_alive() && self.process.as_ref().is_none_or(BrowserProcess::is_running)
    }

    /// Kills the browser's whole process group with SIGKILL, as a crash
    /// would (no clean shutdown); requests in flight fail once the page's
    /// socket closes. For fault-injection tests and `pool` chaos runs; does
    /// nothing for an engine that launched no browser, or off unix.
    pub fn kill_browser(&self) {
        #[cfg(unix)]
        if let Some(process) = &self.process {
            // Only while the leader is unreaped: its pid (the group id)
            // cannot have been given to another process yet.
            if let (true, Ok(pgid)) = (process.is_running(), libc::pid_t::try_from(process.pid())) {
                // SAFETY: killpg only signals the group the launcher created
                // for this browser (its leader's pid is the group id).
                unsafe { libc::killpg(pgid, libc::SIGKILL) };
            }
        }
    }

    /// A [`GraphRunner`] for one model on this engine's page. Each runner
    /// has its own model number, so its compiled graphs and page model keys
    /// never collide with another model's, even for equal shape keys; its
    /// graphs are unloaded from the page when it is dropped.
    pub fn model_runner(self: &Arc<Self>) -> BrowserModelRunner {
        let model = self.next_model.fetch_add(1, Ordering::Relaxed);
        BrowserModelRunner { engine: self.clone(), model }
    }

    /// The bridge the page is connected to.
    pub fn bridge(&self) -> &Bridge {
        &self.bridge
    }

    /// The worker page.
    pub fn worker(&self) -> &WorkerHandle {
        &self.worker
    }

    /// Weight chunks the page found in its cache and fetched, over all loads.
    pub fn cache_stats(&self) -> (u32, u32) {
        *self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `load` message for a graph: a plan (WebGPU) or the decomposed
    /// graph (WebNN), with every weight published as chunks.
    fn load_message(&self, id: u32, model: &str, graph: &Graph, weights: &Weights) -> Result<HostMessage> {
        let chunks = self.bridge.chunks();
        match self.backend {
            BrowserBackend::WebGpu => {
                let limits = &self.worker.capabilities()["webgpu"]["limits"];
                let options = CompileOptions {
                    // f32 on browsers for now: SwiftShader and many GPUs lack shader-f16.
                    f16_weights: false,
                    max_binding_bytes: limits["maxStorageBufferBindingSize"].as_u64(),
                };
                let mut plan = compile_with(graph, options).map_err(backend_error)?;
                let mut refs = Vec::new();
                // The page keeps weight buffers by key across all its models,
                // so each weight is renamed after its content: two models'
                // equal names never share a buffer, equal bytes always do.
                let mut renamed: HashMap<String, String> = HashMap::new();
                for buffer in &mut plan.buffers {
                    if let BufferRole::Weight { name, dtype, rows } = &mut buffer.role {
                        let key = plan_weight_key(name, dtype.name(), *rows);
                        let content_name = match renamed.get(&key) {
                            Some(n) => n.clone(),
                            None => {
                                let tensor = weight_tensor(weights, name, *dtype, *rows).map_err(backend_error)?;
                                let bytes = tensor.as_bytes();
                                let cids = chunks.add(bytes);
                                let content_name = format!("{name}@{}", content_tag(&cids));
                                let page_key = plan_weight_key(&content_name, dtype.name(), *rows);
                                refs.push(WeightRef { key: page_key, bytes: bytes.len() as u64, chunks: cids });
                                renamed.insert(key, content_name.clone());
                                content_name
                            }
                        };
                        *name = content_name;
                    }
                }
                let ids: BTreeSet<&str> = plan.dispatches.iter().map(|d| d.kernel.as_str()).collect();
                let mut kernels = Vec::new();
                for id in ids {
                    let spec = ipfs_accelerate_gpu::kernel(id).map_err(backend_error)?;
                    let bindings = spec
                        .bindings
                        .iter()
                        .map(|b| match b.kind {
                            BindingKind::Uniform => "uniform",
                            BindingKind::ReadStorage => "read-only-storage",
                            BindingKind::ReadWriteStorage => "storage",
                        })
                        .map(str::to_string)
                        .collect();
                    kernels.push(KernelRef { id: id.to_string(), bindings, shader_f16: spec.shader_f16 });
                }
                let plan = serde_json::to_value(&plan).map_err(backend_error)?;
                Ok(HostMessage::Load {
                    id,
                    model: model.to_string(),
                    backend: "webgpu".into(),
                    plan: Some(plan),
                    graph: None,
                    weights: refs,
                    kernels,
                })
            }
            BrowserBackend::WebNn => {
                let graph = decompose_fused(graph)?;
                let mut refs = Vec::new();
                for constant in &graph.constants {
                    if let ConstantSource::Weight(name) = &constant.source {
                        let tensor =
                            weights.get(name).ok_or_else(|| Error::Backend(format!("weight {name:?} is missing")))?;
                        // The page reads the name, dtype and shape back from the key.
                        let key = serde_json::to_string(&(name, tensor.dtype(), tensor.shape().dims()))
                            .map_err(backend_error)?;
                        let bytes = tensor.as_bytes();
                        refs.push(WeightRef { key, bytes: bytes.len() as u64, chunks: chunks.add(bytes) });
                    }
                }
                let graph = serde_json::to_value(&graph).map_err(backend_error)?;
                Ok(HostMessage::Load {
                    id,
                    model: model.to_string(),
                    backend: "webnn".into(),
                    plan: None,
                    graph: Some(graph),
                    weights: refs,
                    kernels: Vec::new(),
                })
            }
        }
    }
}

/// A bridge on `addr`, or on any free port when `addr` is busy (the page's
/// origin, and with it the browser's weight cache, then differs).
fn start_bridge(addr: std::net::SocketAddr) -> Result<Bridge> {
    let config = |addr| crate::BridgeConfig { addr, ..crate::BridgeConfig::default() };
    match Bridge::start(config(addr)) {
        Ok(b) => Ok(b),
        Err(_) => {
            tracing::info!("bridge port {addr} is busy; using any free port (the browser's weight cache is per port)");
            Bridge::start(config(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))).map_err(backend_error)
        }
    }
}

/// A name for a weight's content: the CID (raw, SHA-256) of its chunks'
/// CID list, so it changes with any byte of the weight.
fn content_tag(chunk_cids: &[String]) -> String {
    use ipfs_accelerate_ipfs::{block::RAW, cid_for, CidVersion};
    cid_for(CidVersion::V1, RAW, chunk_cids.join(",").as_bytes()).to_string()
}

/// The key `web/webgpu.js` (`weightKey`) gives a plan's weight buffer.
fn plan_weight_key(name: &str, dtype: &str, rows: Option<[usize; 2]>) -> String {
    let rows = rows.map(|[a, b]| format!("{a}:{b}")).unwrap_or_default();
    format!("{name}|{dtype}|{rows}")
}

impl GraphRunner for BrowserEngine {
    fn kind(&self) -> BackendKind {
        match self.backend {
            BrowserBackend::WebGpu => BackendKind::BrowserWebGpu,
            BrowserBackend::WebNn => BackendKind::BrowserWebNn,
        }
    }

    fn describe(&self) -> String {
        let caps = self.worker.capabilities();
        let browser = caps["userAgent"].as_str().unwrap_or("unknown browser");
        let browser =
            browser.split_whitespace().find(|p| p.contains("Chrome/") || p.starts_with("Firefox/")).unwrap_or(browser);
        match self.backend {
            BrowserBackend::WebGpu => {
                let a = &caps["webgpu"]["adapter"];
                let adapter = [a["vendor"].as_str(), a["architecture"].as_str(), a["description"].as_str()]
                    .into_iter()
                    .flatten()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                format!("browser-webgpu ({browser}, {adapter})")
            }
            BrowserBackend::WebNn => format!("browser-webnn ({browser})"),
        }
    }

    fn run(
        &self,
        shape_key: &[usize],
        build: &mut dyn FnMut() -> Result<(Graph, Weights)>,
        inputs: &[(&str, &Tensor)],
    ) -> Result<Vec<Tensor>> {
        self.run_model(0, shape_key, build, inputs)
    }
}

impl BrowserEngine {
    /// Runs model number `number`'s graph for `shape_key`, loading it onto
    /// the page first when it is not there yet.
    fn run_model(
        &self,
        number: u32,
        shape_key: &[usize],
        build: &mut dyn FnMut() -> Result<(Graph, Weights)>,
        inputs: &[(&str, &Tensor)],
    ) -> Result<Vec<Tensor>> {
        let key = (number, shape_key.to_vec());
        let lookup = || self.loaded.lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
        let (model, output_names) = match lookup() {
            Some(entry) => entry,
            None => {
                let _loading = self.loading.lock().unwrap_or_else(|p| p.into_inner());
                match lookup() {
                    // Another thread loaded it while this one waited.
                    Some(entry) => entry,
                    None => {
                        let entry = self.load_graph(number, shape_key, build)?;
                        self.loaded.lock().unwrap_or_else(|p| p.into_inner()).insert(key, entry.clone());
                        entry
                    }
                }
            }
        };
        let mut outputs: HashMap<String, Tensor> =
            self.worker.run(&model, inputs).map_err(backend_error)?.into_iter().collect();
        output_names
            .iter()
            .map(|n| outputs.remove(n).ok_or_else(|| Error::Backend(format!("the page returned no output {n:?}"))))
            .collect()
    }

    /// Builds and loads one graph onto the page; returns its page model key
    /// and output names.
    fn load_graph(
        &self,
        number: u32,
        shape_key: &[usize],
        build: &mut dyn FnMut() -> Result<(Graph, Weights)>,
    ) -> Result<(String, Vec<String>)> {
        let (graph, weights) = build()?;
        // Model 0 keeps the key pages have always seen; `#` cannot appear in
        // a shape key's debug form, so the two forms never meet.
        let model = match number {
            0 => format!("{}{shape_key:?}", self.backend.name()),
            n => format!("{}#{n}{shape_key:?}", self.backend.name()),
        };
        let id = self.worker.next_id();
        let message = self.load_message(id, &model, &graph, &weights)?;
        let stats = self.worker.load(message).map_err(backend_error)?;
        {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.0 += stats.cache_hits;
            cache.1 += stats.cache_misses;
        }
        let names: Vec<String> = graph.outputs.iter().map(|o| o.name.clone()).collect();
        Ok((model, names))
    }

    /// Forgets model number `number`'s graphs and frees them on the page.
    fn unload_model(&self, number: u32) {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let keys: Vec<(u32, Vec<usize>)> = loaded.keys().filter(|(n, _)| *n == number).cloned().collect();
        for key in keys {
            if let Some((model, _)) = loaded.remove(&key) {
                if self.worker.is_alive() {
                    self.worker.unload(&model);
                }
            }
        }
    }
}

/// One model's view of a shared [`BrowserEngine`] (see
/// [`BrowserEngine::model_runner`]): several models run on one page, each
/// under its own model number.
pub struct BrowserModelRunner {
    engine: Arc<BrowserEngine>,
    model: u32,
}

impl BrowserModelRunner {
    /// The engine this runner runs on.
    pub fn engine(&self) -> &Arc<BrowserEngine> {
        &self.engine
    }
}

impl GraphRunner for BrowserModelRunner {
    fn kind(&self) -> BackendKind {
        self.engine.kind()
    }

    fn describe(&self) -> String {
        self.engine.describe()
    }

    fn run(
        &self,
        shape_key: &[usize],
        build: &mut dyn FnMut() -> Result<(Graph, Weights)>,
        inputs: &[(&str, &Tensor)],
    ) -> Result<Vec<Tensor>> {
        self.engine.run_model(self.model, shape_key, build, inputs)
    }
}

impl Drop for BrowserModelRunner {
    fn drop(&mut self) {
        // The model is gone; its graphs would only hold page memory.
        self.engine.unload_model(self.model);
    }
}
