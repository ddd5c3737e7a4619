//! One module per subcommand.

pub mod bench;
pub mod devices;
pub mod embed;
pub mod ipfs;
pub mod models;
pub mod pull;
pub mod similarity;

use anyhow::Result;
use ipfs_accelerate_models::{BackendChoice, TextEmbedder};
use std::path::Path;

/// Loads a text-embedding model from a directory or a CID (see [`crate::model_ref`]).
pub fn load_embedder(model: &Path, backend: &str) -> Result<TextEmbedder> {
    let choice = BackendChoice::parse(backend)?;
    let dir = crate::model_ref::resolve(model)?;
    Ok(TextEmbedder::load(&dir, choice)?)
}
