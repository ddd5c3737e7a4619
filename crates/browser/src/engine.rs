//! Models on a browser worker: a [`GraphRunner`] that compiles each graph on
//! the host (a WebGPU plan, or a WebNN graph with fused ops decomposed),
//! publishes the weights as CID-named chunks on the bridge, asks the page to
//! load them, and then sends runs.

use crate::bridge::{Bridge, WorkerHandle};
use crate::protocol::{HostMessage, KernelRef, WeightRef};
use ipfs_accelerate_gpu::plan::BufferRole;
use ipfs_accelerate_gpu::{compile_with, weight_tensor, BindingKind, CompileOptions};
use ipfs_accelerate_models::engine::GraphRunner;
use ipfs_accelerate_models::{BackendKind, Error, Result};
use ipfs_accelerate_tensor::graph::decompose::decompose_fused;
use ipfs_accelerate_tensor::graph::ConstantSource;
use ipfs_accelerate_tensor::{Graph, Tensor, Weights};
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

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
            bridge_addr: std::net::SocketAddr::from(([127, 0, 0, 1], DEFAULT_BRIDGE_PORT)),
            join_timeout: std::time::Duration::from_secs(60),
        }
    }
}

/// Model keys and output names loaded on the page, by shape key.
type LoadedModels = Mutex<HashMap<Vec<usize>, (String, Vec<String>)>>;

/// A connected worker page running models on `backend`.
pub struct BrowserEngine {
    backend: BrowserBackend,
    bridge: Bridge,
    worker: WorkerHandle,
    /// Whatever keeps the browser alive (its process), dropped with the engine.
    _keep: Option<Box<dyn Send + Sync>>,
    /// Model keys (and output names) already loaded on the page, by shape key.
    loaded: LoadedModels,
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
        Ok(BrowserEngine { backend, bridge, worker, _keep: keep, loaded: Mutex::default(), cache: Mutex::default() })
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
            Some(dir) => Profile::Slot { data_dir: dir.clone(), slot: 0 },
            None => Profile::Ephemeral,
        };
        let launch_options = LaunchOptions { headless: options.headless, profile, extra_args: Vec::new() };
        let process = launch(&browser, &bridge.worker_url(), &launch_options).map_err(backend_error)?;
        let worker = bridge.wait_for_worker(options.join_timeout).map_err(|e| {
            let tail = process.output_tail(5).replace('\n', " | ");
            Error::Backend(format!("{e}; {browser} said: {tail}"))
        })?;
        BrowserEngine::new(options.backend, bridge, worker, Some(Box::new(process)))
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
                let plan = compile_with(graph, options).map_err(backend_error)?;
                let mut refs = Vec::new();
                let mut seen = BTreeSet::new();
                for buffer in &plan.buffers {
                    if let BufferRole::Weight { name, dtype, rows } = &buffer.role {
                        let key = plan_weight_key(name, dtype.name(), *rows);
                        if seen.insert(key.clone()) {
                            let tensor = weight_tensor(weights, name, *dtype, *rows).map_err(backend_error)?;
                            let bytes = tensor.as_bytes();
                            refs.push(WeightRef { key, bytes: bytes.len() as u64, chunks: chunks.add(bytes) });
                        }
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
        let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner()).get(shape_key).cloned();
        let (model, output_names) = match loaded {
            Some(entry) => entry,
            None => {
                let (graph, weights) = build()?;
                let model = format!("{}{shape_key:?}", self.backend.name());
                let id = self.worker.next_id();
                let message = self.load_message(id, &model, &graph, &weights)?;
                let stats = self.worker.load(message).map_err(backend_error)?;
                {
                    let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                    cache.0 += stats.cache_hits;
                    cache.1 += stats.cache_misses;
                }
                let names: Vec<String> = graph.outputs.iter().map(|o| o.name.clone()).collect();
                let entry = (model, names);
                self.loaded.lock().unwrap_or_else(|p| p.into_inner()).insert(shape_key.to_vec(), entry.clone());
                entry
            }
        };
        let mut outputs: HashMap<String, Tensor> =
            self.worker.run(&model, inputs).map_err(backend_error)?.into_iter().collect();
        output_names
            .iter()
            .map(|n| outputs.remove(n).ok_or_else(|| Error::Backend(format!("the page returned no output {n:?}"))))
            .collect()
    }
}
