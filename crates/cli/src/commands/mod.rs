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
use ipfs_accelerate_models::{BackendChoice, TextEmbedder};

/// Loads the text-embedding model `--model` names (see [`crate::model_ref`]).
pub fn load_embedder(model: &ModelArgs, backend: &str) -> Result<TextEmbedder> {
    let choice = BackendChoice::parse(backend)?;
    let dir = crate::model_ref::resolve(model)?;
    let embedder = TextEmbedder::load(&dir, choice)?;
    if let Some(notice) = embedder.backend_notice() {
        eprintln!("{notice}");
    }
    Ok(embedder)
}
