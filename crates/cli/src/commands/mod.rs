//! One module per subcommand.

pub mod bench;
pub mod browsers;
pub mod classify;
pub mod devices;
pub mod embed;
pub mod generate;
pub mod ipfs;
pub mod models;
pub mod pool;
pub mod pull;
pub mod serve;
pub mod similarity;
pub mod stats;
pub mod transcribe;

use crate::model_ref::ModelArgs;
use anyhow::Result;
use clap::Args;
use ipfs_accelerate_browser::{BrowserBackend, BrowserEngine, BrowserLaunch};
use ipfs_accelerate_models::engine::Engine;
use ipfs_accelerate_models::{BackendChoice, Precision, TextEmbedder};
use std::path::PathBuf;

/// Where browser profiles live: `$IPFS_ACCELERATE_DATA_DIR`, else
/// `~/.local/share/ipfs-accelerate`.
pub fn data_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("IPFS_ACCELERATE_DATA_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| anyhow::anyhow!("cannot find a data directory: set IPFS_ACCELERATE_DATA_DIR"))?;
    Ok(PathBuf::from(home).join(".local/share/ipfs-accelerate"))
}

/// Where a model runs, and at what precision.
#[derive(Args, Clone)]
pub struct BackendArgs {
    /// Backend: auto (a hardware GPU through WebGPU if there is one, else the CPU), cpu, webgpu
    /// (any WebGPU adapter, software ones included; IPFS_ACCELERATE_ADAPTER picks one), or
    /// browser-webgpu / browser-webnn (a browser started as a worker).
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// Browser for the browser-* backends: chrome, chromium, edge, firefox, a path, or manual
    /// (start none: print the worker URL and wait for you to open it in any browser)
    /// [default: the first Chrome, Chromium or Edge found].
    #[arg(long, value_name = "NAME|PATH")]
    pub browser: Option<String>,
    /// Run the browser without a window (the default).
    #[arg(long, overrides_with = "no_headless")]
    pub headless: bool,
    /// Show the browser window.
    #[arg(long, overrides_with = "headless")]
    pub no_headless: bool,
    /// Use a fresh temporary browser profile instead of the kept one (whose weight cache
    /// makes the next start faster).
    #[arg(long)]
    pub ephemeral: bool,
    /// Weight precision: 32, or 16 (float16 weights on webgpu when the adapter has shader-f16,
    /// float32 arithmetic; the cpu backend runs float32 and says so).
    #[arg(long, default_value = "32")]
    pub precision: String,
}

/// The browser API `--backend` names (browser-webgpu or browser-webnn), if any.
pub fn browser_backend(backend: &BackendArgs) -> Option<BrowserBackend> {
    match backend.backend.as_str() {
        "browser-webgpu" => Some(BrowserBackend::WebGpu),
        "browser-webnn" => Some(BrowserBackend::WebNn),
        _ => None,
    }
}

/// Starts a browser worker for `kind` as `--browser`, `--headless` and
/// `--ephemeral` say: the engine, and the notice to show (if any).
pub fn browser_engine(
    kind: BrowserBackend,
    backend: &BackendArgs,
    precision: Precision,
) -> Result<(Engine, Option<String>)> {
    let launch = BrowserLaunch {
        browser: backend.browser.clone(),
        headless: !backend.no_headless,
        data_dir: if backend.ephemeral { None } else { Some(data_dir()?) },
        ..BrowserLaunch::new(kind)
    };
    let engine = BrowserEngine::launch(&launch)?;
    let notice = (precision == Precision::F16)
        .then(|| "notice: browser workers run float32 for now; --precision 16 is ignored".to_string());
    Ok((Engine::External(Box::new(engine)), notice))
}

/// Loads the text-embedding model `--model` names (see [`crate::model_ref`])
/// on the backend and precision asked for, printing any notice on stderr.
pub fn load_embedder(model: &ModelArgs, backend: &BackendArgs) -> Result<TextEmbedder> {
    let precision = Precision::parse(&backend.precision)?;
    let embedder = match browser_backend(backend) {
        Some(kind) => {
            // The model first: a bad --model fails before a browser starts.
            let dir = crate::model_ref::resolve(model)?;
            let (engine, notice) = browser_engine(kind, backend, precision)?;
            TextEmbedder::load_on(&dir, engine, notice)?
        }
        None => {
            let choice = BackendChoice::parse(&backend.backend).map_err(|_| {
                anyhow::anyhow!(
                    "unknown backend {:?}: use auto, cpu, webgpu, browser-webgpu or browser-webnn",
                    backend.backend
                )
            })?;
            let dir = crate::model_ref::resolve(model)?;
            TextEmbedder::load_with(&dir, choice, precision)?
        }
    };
    if let Some(notice) = embedder.backend_notice() {
        eprintln!("{notice}");
    }
    Ok(embedder)
}
