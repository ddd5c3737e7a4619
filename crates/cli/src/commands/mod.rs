//! One module per subcommand.

pub mod bench;
pub mod devices;
pub mod embed;
pub mod ipfs;
pub mod models;
pub mod pull;
pub mod similarity;

use crate::model_ref::ModelArgs;
use anyhow::Result;
use clap::Args;
use ipfs_accelerate_models::{BackendChoice, Precision, TextEmbedder};

/// Where a model runs, and at what precision.
#[derive(Args, Clone)]
pub struct BackendArgs {
    /// Backend: auto (a hardware GPU through WebGPU if there is one, else the CPU), cpu, or webgpu
    /// (any WebGPU adapter, software ones included; IPFS_ACCELERATE_ADAPTER picks one).
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// Weight precision: 32, or 16 (float16 weights on webgpu when the adapter has shader-f16,
    /// float32 arithmetic; the cpu backend runs float32 and says so).
    #[arg(long, default_value = "32")]
    pub precision: String,
}

/// Loads the text-embedding model `--model` names (see [`crate::model_ref`])
/// on the backend and precision asked for, printing any notice on stderr.
pub fn load_embedder(model: &ModelArgs, backend: &BackendArgs) -> Result<TextEmbedder> {
    let choice = BackendChoice::parse(&backend.backend)?;
    let precision = Precision::parse(&backend.precision)?;
    let dir = crate::model_ref::resolve(model)?;
    let embedder = TextEmbedder::load_with(&dir, choice, precision)?;
    if let Some(notice) = embedder.backend_notice() {
        eprintln!("{notice}");
    }
    Ok(embedder)
}
