//! `pool.toml`: the workers of a pool, how it queues and retries, its
//! circuit breakers, the warm-browser limits and the static latency priors.
//! Every field is optional except each worker's `kind`; durations are in
//! seconds. Unknown fields are errors (a typo must not be ignored).
//!
//! ```toml
//! journal = "/var/lib/ipfs-accelerate/journal.sqlite3"  # default: the data dir's
//!
//! [pool]
//! queue_capacity = 1024      # waiting requests before "busy"
//! dispatchers = 8            # requests in flight at once
//! max_attempts = 3           # workers tried per request
//! request_timeout = 120.0    # longest wait for an available worker
//! latency_smoothing = 0.2    # weight of the newest latency in the moving average
//! health_interval = 2.0      # how often running workers are pinged
//! health_timeout = 5.0       # a ping slower than this is a failure
//! health_failures = 3        # failed pings in a row before a slow worker is restarted
//! cold_start_ms = 3000.0     # scheduler cost of a worker not running yet
//! shards = 1                 # pipeline stages per request (embed --pool)
//!
//! [browsers]
//! min_warm = 1               # browsers kept running when idle
//! idle_timeout = 300.0       # an idle browser beyond min_warm closes after this
//!
//! [circuit]                  # see the circuit module
//! failure_threshold = 5
//! open_for = 10.0
//!
//! [[worker]]
//! kind = "cpu"               # cpu | webgpu | browser-webgpu | browser-webnn | remote
//! memory_budget_mb = 4096    # cpu/webgpu: unload least recently used models past this
//!
//! [[worker]]
//! kind = "browser-webgpu"
//! count = 2                  # two alike: ids browser-webgpu-0, browser-webgpu-1
//! browser = "chromium"       # chrome | chromium | edge | firefox | a path
//! headless = true
//! ephemeral = false          # true: a fresh profile (no weight cache) each start
//!
//! [[worker]]
//! kind = "remote"            # another server: ipfs-accelerate, OpenAI-compatible or TEI
//! url = "http://127.0.0.1:8001"  # its root (http or https); /v1/embeddings or /embed is appended
//! protocol = "openai"        # openai (POST /v1/embeddings) | tei (POST /embed)
//! api_key_env = "REMOTE_KEY" # or api_key = "…": sent as a bearer token
//! timeout = 60.0             # longest a request may take
//! connect_timeout = 5.0      # longest wait to connect
//! models = { "all-MiniLM-L6-v2" = "minilm" }  # local dir name -> remote name; only these
//!
//! [[prior]]                  # a starting guess, replaced by measurements
//! kind = "browser-webnn"
//! browser = "edge"
//! model_type = "text-embedding"
//! latency_ms = 5.0
//! ```

use crate::browser_worker::BrowserWorker;
use crate::circuit::CircuitConfig;
use crate::latency::Prior;
use crate::pool::PoolConfig;
use crate::remote_worker::{check_url, RemoteConfig, RemoteProtocol, RemoteWorker};
use crate::worker::{LocalWorker, Worker};
use ipfs_accelerate_browser::{BrowserBackend, BrowserLaunch};
use ipfs_accelerate_models::Precision;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A `pool.toml` that could not be used: which file, and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the pool config {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has a wrong or unknown field.
    #[error("pool config {origin}: {message}")]
    Invalid {
        /// The file (or `<string>`).
        origin: String,
        /// The parser's message, naming the field and line.
        message: String,
    },
}

/// The parsed file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolFile {
    /// The journal file; `None`: the default location.
    #[serde(default)]
    pub journal: Option<PathBuf>,
    /// Queueing, dispatching and health settings.
    #[serde(default)]
    pub pool: PoolSection,
    /// Warm-browser limits.
    #[serde(default)]
    pub browsers: BrowsersSection,
    /// Every worker's circuit breaker.
    #[serde(default)]
    pub circuit: Option<CircuitConfig>,
    /// The workers.
    #[serde(default, rename = "worker")]
    pub workers: Vec<WorkerSpec>,
    /// Starting latency guesses.
    #[serde(default, rename = "prior")]
    pub priors: Vec<Prior>,
}

/// `[pool]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolSection {
    /// Waiting requests before "busy".
    pub queue_capacity: usize,
    /// Requests in flight at once.
    pub dispatchers: usize,
    /// Workers tried per request.
    pub max_attempts: usize,
    /// Longest wait for an available worker, seconds.
    pub request_timeout: f64,
    /// Weight of the newest latency in the moving average.
    pub latency_smoothing: f64,
    /// Seconds between health checks.
    pub health_interval: f64,
    /// Seconds a health check may take.
    pub health_timeout: f64,
    /// Failed health checks in a row before a worker not known dead is restarted.
    pub health_failures: u32,
    /// Scheduler cost of a worker not running yet, ms.
    pub cold_start_ms: f64,
    /// Pipeline stages per request for `embed --pool` (1: not sharded).
    pub shards: usize,
}

impl Default for PoolSection {
    fn default() -> Self {
        let d = PoolConfig::default();
        PoolSection {
            queue_capacity: d.queue_capacity,
            dispatchers: d.dispatchers,
            max_attempts: d.max_attempts,
            request_timeout: d.request_timeout.as_secs_f64(),
            latency_smoothing: d.latency_smoothing,
            health_interval: d.health_interval.as_secs_f64(),
            health_timeout: d.health_timeout.as_secs_f64(),
            health_failures: d.health_failures,
            cold_start_ms: d.cold_start_ms,
            shards: 1,
        }
    }
}

/// `[browsers]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrowsersSection {
    /// Browsers kept running when idle.
    pub min_warm: usize,
    /// Seconds before an idle browser beyond `min_warm` closes.
    pub idle_timeout: f64,
}

impl Default for BrowsersSection {
    fn default() -> Self {
        let d = PoolConfig::default();
        BrowsersSection { min_warm: d.min_warm_browsers, idle_timeout: d.browser_idle_timeout.as_secs_f64() }
    }
}

/// The kinds a `[[worker]]` may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkerSpecKind {
    /// The native CPU backend.
    Cpu,
    /// The native WebGPU backend.
    Webgpu,
    /// WebGPU in a browser.
    BrowserWebgpu,
    /// WebNN in a browser.
    BrowserWebnn,
    /// Another server, over HTTP.
    Remote,
}

/// One `[[worker]]` (or `count` alike).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSpec {
    /// What runs the models.
    pub kind: WorkerSpecKind,
    /// Its id (with `-N` appended when `count` > 1); default: the kind, numbered.
    #[serde(default)]
    pub id: Option<String>,
    /// How many alike.
    #[serde(default = "one")]
    pub count: usize,
    /// 32 or 16 (f16 weights on webgpu).
    #[serde(default)]
    pub precision: Option<u32>,
    /// cpu/webgpu: the most weight bytes kept loaded, in MiB.
    #[serde(default)]
    pub memory_budget_mb: Option<u64>,
    /// Browser kinds: chrome, chromium, edge, firefox or a path.
    #[serde(default)]
    pub browser: Option<String>,
    /// Browser kinds: run without a window (default true).
    #[serde(default = "yes")]
    pub headless: bool,
    /// Browser kinds: a fresh temporary profile on each start.
    #[serde(default)]
    pub ephemeral: bool,
    /// Remote: the server's root URL, `http://host:port` (required).
    #[serde(default)]
    pub url: Option<String>,
    /// Remote: the API it speaks (default openai).
    #[serde(default)]
    pub protocol: Option<RemoteProtocol>,
    /// Remote: the API key, sent as a bearer token.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Remote: the environment variable holding the API key (keeps it out of the file).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Remote: seconds a request may take (default 60).
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Remote: seconds to wait for a connection (default 5).
    #[serde(default)]
    pub connect_timeout: Option<f64>,
    /// Remote: local model directory name -> the remote's model name; when
    /// given, only these models are sent there.
    #[serde(default)]
    pub models: Option<BTreeMap<String, String>>,
}

/// The bridge port of the pool's first browser; the next ones count up.
pub const POOL_BRIDGE_PORT: u16 = ipfs_accelerate_browser::DEFAULT_BRIDGE_PORT + 1;

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

/// A TOML error as one line: "line L, column C: message" (the parser's own
/// text spans several lines with a drawing of the spot).
fn one_line(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

fn secs(field: &str, value: f64, origin: &str) -> Result<Duration, ConfigError> {
    Duration::try_from_secs_f64(value).map_err(|_| ConfigError::Invalid {
        origin: origin.to_string(),
        message: format!("{field} = {value} is not a usable number of seconds (finite, >= 0)"),
    })
}

impl PoolFile {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<PoolFile, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks the text of a config; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<PoolFile, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { origin: origin.to_string(), message };
        let file: PoolFile = toml::from_str(text).map_err(|e| invalid(one_line(text, &e)))?;
        if file.workers.is_empty() {
            return Err(invalid("no [[worker]] is listed: add at least one, e.g. [[worker]] kind = \"cpu\"".into()));
        }
        let mut ids = std::collections::HashSet::new();
        for spec in &file.workers {
            // First, so a remote worker with a browser's field hears why it has no such field.
            check_remote(spec, origin)?;
            if spec.count == 0 {
                return Err(invalid(format!("a {:?} worker has count = 0: use 1 or more", spec.kind)));
            }
            if let Some(p) = spec.precision.filter(|p| *p != 32 && *p != 16) {
                return Err(invalid(format!("precision = {p}: use 32 or 16")));
            }
            let browser = matches!(spec.kind, WorkerSpecKind::BrowserWebgpu | WorkerSpecKind::BrowserWebnn);
            if !browser && (spec.browser.is_some() || spec.ephemeral) {
                return Err(invalid(format!(
                    "browser and ephemeral apply to browser workers, not {}",
                    spec.kind.name()
                )));
            }
            if browser && spec.memory_budget_mb.is_some() {
                return Err(invalid("memory_budget_mb applies to cpu and webgpu workers".into()));
            }
        }
        for id in file.worker_ids() {
            if !ids.insert(id.clone()) {
                return Err(invalid(format!("two workers have the id {id:?}: ids must be unique")));
            }
        }
        let p = &file.pool;
        if p.queue_capacity == 0 || p.dispatchers == 0 || p.max_attempts == 0 || p.shards == 0 {
            return Err(invalid("queue_capacity, dispatchers, max_attempts and shards must each be at least 1".into()));
        }
        if !(p.latency_smoothing > 0.0 && p.latency_smoothing <= 1.0) {
            return Err(invalid(format!("latency_smoothing = {} must be in (0, 1]", p.latency_smoothing)));
        }
        if !(p.cold_start_ms.is_finite() && p.cold_start_ms >= 0.0) {
            return Err(invalid(format!("cold_start_ms = {} must be a finite number >= 0", p.cold_start_ms)));
        }
        for prior in &file.priors {
            if !(prior.latency_ms.is_finite() && prior.latency_ms >= 0.0) {
                return Err(invalid(format!("a prior's latency_ms = {} must be finite and >= 0", prior.latency_ms)));
            }
        }
        for (field, value) in [
            ("request_timeout", p.request_timeout),
            ("health_interval", p.health_interval),
            ("health_timeout", p.health_timeout),
            ("browsers.idle_timeout", file.browsers.idle_timeout),
        ] {
            secs(field, value, origin)?;
        }
        Ok(file)
    }

    /// The remote-worker settings of `spec` (a `kind = "remote"` worker
    /// that parse() accepted), with the API key read from its variable.
    fn remote_config(spec: &WorkerSpec) -> RemoteConfig {
        let defaults = RemoteConfig::new(String::new());
        // parse() checked every duration.
        let secs = |v: Option<f64>, d: Duration| v.and_then(|v| Duration::try_from_secs_f64(v).ok()).unwrap_or(d);
        RemoteConfig {
            url: spec.url.clone().unwrap_or_default(),
            protocol: spec.protocol.unwrap_or_default(),
            api_key: spec.api_key.clone().or_else(|| spec.api_key_env.as_ref().and_then(|v| std::env::var(v).ok())),
            connect_timeout: secs(spec.connect_timeout, defaults.connect_timeout),
            timeout: secs(spec.timeout, defaults.timeout),
            models: spec.models.clone(),
        }
    }

    /// The ids the workers will have, in order.
    pub fn worker_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        let mut numbered = std::collections::HashMap::<&str, usize>::new();
        for spec in &self.workers {
            let kind = spec.kind.name();
            for i in 0..spec.count {
                let id = match (&spec.id, spec.count) {
                    (Some(id), 1) => id.clone(),
                    (Some(id), _) => format!("{id}-{i}"),
                    (None, _) => {
                        let n = numbered.entry(kind).or_default();
                        *n += 1;
                        format!("{kind}-{}", *n - 1)
                    }
                };
                ids.push(id);
            }
        }
        ids
    }

    /// The pool settings.
    pub fn pool_config(&self) -> PoolConfig {
        let p = &self.pool;
        // parse() checked every duration.
        let secs = |v: f64| Duration::try_from_secs_f64(v).unwrap_or_default();
        PoolConfig {
            queue_capacity: p.queue_capacity,
            dispatchers: p.dispatchers,
            max_attempts: p.max_attempts,
            request_timeout: secs(p.request_timeout),
            circuit: self.circuit.clone().unwrap_or_default(),
            latency_smoothing: p.latency_smoothing,
            priors: self.priors.clone(),
            health_interval: secs(p.health_interval),
            health_timeout: secs(p.health_timeout),
            health_failures: p.health_failures,
            min_warm_browsers: self.browsers.min_warm,
            browser_idle_timeout: secs(self.browsers.idle_timeout),
            cold_start_ms: p.cold_start_ms,
        }
    }

    /// The workers, not started yet (browsers launch on warm-up or their
    /// first request); browser profiles persist under `data_dir`.
    pub fn build_workers(&self, data_dir: &Path) -> Vec<Arc<dyn Worker>> {
        let ids = self.worker_ids();
        let mut ids = ids.into_iter();
        let mut workers: Vec<Arc<dyn Worker>> = Vec::new();
        let mut browser_slot = 0;
        for spec in &self.workers {
            let precision = if spec.precision == Some(16) { Precision::F16 } else { Precision::F32 };
            for _ in 0..spec.count {
                let id = ids.next().expect("one id per worker");
                let budget = |w: LocalWorker| match spec.memory_budget_mb {
                    Some(mb) => w.with_memory_budget(mb << 20),
                    None => w,
                };
                let worker: Arc<dyn Worker> = match spec.kind {
                    WorkerSpecKind::Remote => Arc::new(RemoteWorker::new(id, Self::remote_config(spec))),
                    WorkerSpecKind::Cpu => Arc::new(budget(LocalWorker::cpu(id))),
                    WorkerSpecKind::Webgpu => Arc::new(budget(LocalWorker::wgpu(id, precision))),
                    WorkerSpecKind::BrowserWebgpu | WorkerSpecKind::BrowserWebnn => {
                        let backend = if spec.kind == WorkerSpecKind::BrowserWebgpu {
                            BrowserBackend::WebGpu
                        } else {
                            BrowserBackend::WebNn
                        };
                        let launch = BrowserLaunch {
                            browser: spec.browser.clone(),
                            headless: spec.headless,
                            data_dir: (!spec.ephemeral).then(|| data_dir.to_path_buf()),
                            profile_slot: browser_slot,
                            // A port of its own per browser, the same on every run, so each
                            // page's origin (and so its weight cache) persists; launch falls
                            // back to a free port when it is taken.
                            bridge_addr: std::net::SocketAddr::from((
                                [127, 0, 0, 1],
                                POOL_BRIDGE_PORT.saturating_add(browser_slot as u16),
                            )),
                            ..BrowserLaunch::new(backend)
                        };
                        browser_slot += 1;
                        Arc::new(BrowserWorker::new(id, backend, launch))
                    }
                };
                workers.push(worker);
            }
        }
        workers
    }

    /// Pipeline stages per request.
    pub fn shards(&self) -> usize {
        self.pool.shards
    }
}

impl WorkerSpecKind {
    /// The spelling in the file.
    pub fn name(self) -> &'static str {
        match self {
            WorkerSpecKind::Cpu => "cpu",
            WorkerSpecKind::Webgpu => "webgpu",
            WorkerSpecKind::BrowserWebgpu => "browser-webgpu",
            WorkerSpecKind::BrowserWebnn => "browser-webnn",
            WorkerSpecKind::Remote => "remote",
        }
    }
}

/// Checks the remote-worker fields of `spec`: required and well-formed on a
/// `remote` worker, absent on every other kind (a url on a cpu worker is a
/// mistake, not something to ignore).
fn check_remote(spec: &WorkerSpec, origin: &str) -> Result<(), ConfigError> {
    let invalid = |message: String| ConfigError::Invalid { origin: origin.to_string(), message };
    let kind = spec.kind.name();
    let remote_fields = [
        ("url", spec.url.is_some()),
        ("protocol", spec.protocol.is_some()),
        ("api_key", spec.api_key.is_some()),
        ("api_key_env", spec.api_key_env.is_some()),
        ("timeout", spec.timeout.is_some()),
        ("connect_timeout", spec.connect_timeout.is_some()),
        ("models", spec.models.is_some()),
    ];
    if spec.kind != WorkerSpecKind::Remote {
        if let Some((field, _)) = remote_fields.iter().find(|(_, set)| *set) {
            return Err(invalid(format!("{field} applies to remote workers, not {kind}")));
        }
        return Ok(());
    }
    let local_fields = [
        ("precision", spec.precision.is_some()),
        ("memory_budget_mb", spec.memory_budget_mb.is_some()),
        ("browser", spec.browser.is_some()),
        ("ephemeral", spec.ephemeral),
        ("headless", !spec.headless),
    ];
    if let Some((field, _)) = local_fields.iter().find(|(_, set)| *set) {
        return Err(invalid(format!("{field} does not apply to a remote worker (the remote server decides that)")));
    }
    let url = spec.url.as_deref().ok_or_else(|| {
        invalid("a remote worker needs url = \"http://host:port\", the root of the server it forwards to".into())
    })?;
    if let Some(why) = check_url(url) {
        return Err(invalid(format!("a remote worker's {why}")));
    }
    if spec.api_key.is_some() && spec.api_key_env.is_some() {
        return Err(invalid("a remote worker takes api_key or api_key_env, not both".into()));
    }
    if let Some(var) = &spec.api_key_env {
        if std::env::var(var).map_or(true, |v| v.is_empty()) {
            return Err(invalid(format!(
                "api_key_env = {var:?} names an environment variable that is not set: export it, or remove api_key_env"
            )));
        }
    }
    for (field, value) in [("timeout", spec.timeout), ("connect_timeout", spec.connect_timeout)] {
        if let Some(v) = value {
            if !(v.is_finite() && v > 0.0) || Duration::try_from_secs_f64(v).is_err() {
                return Err(invalid(format!("{field} = {v} must be a positive number of seconds")));
            }
        }
    }
    if let Some(models) = &spec.models {
        if models.is_empty() {
            return Err(invalid(
                "models = {} maps nothing, so the remote worker could serve no model: list some, or remove models"
                    .into(),
            ));
        }
        if let Some((local, _)) = models.iter().find(|(k, v)| k.trim().is_empty() || v.trim().is_empty()) {
            return Err(invalid(format!("models has an empty name in the entry {local:?}")));
        }
    }
    Ok(())
}
