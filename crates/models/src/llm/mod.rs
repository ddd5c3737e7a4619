//! Text generation: decoder-only language models (Llama family, GPT-2),
//! their tokenizers and chat templates, the KV cache, sampling and
//! streaming.
//!
//! Reading order: [`ops`] (the op vocabulary every backend implements),
//! [`llama`] and [`gpt2`] (the architectures, one file each), [`cpu_ops`]
//! (the CPU backend), [`model`] (loading, sequences with their KV cache),
//! [`sampler`], then the generation loop.

pub mod chat_template;
pub mod config;
pub mod cpu_ops;
pub mod detokenize;
pub mod generate;
pub mod gpt2;
pub mod gpu_ops;
pub mod llama;
pub mod model;
pub mod ops;
pub mod sampler;
pub mod stop;
pub mod text;
pub mod tokenizer;
pub mod weights;

pub use ipfs_accelerate_gpu::llm::params::ActivationType;

use crate::error::Result;
use config::DecoderConfig;
use ops::DecoderOps;

/// A decoder architecture resident on backend `O`.
pub trait Decoder<O: DecoderOps> {
    /// The hyperparameters.
    fn config(&self) -> &DecoderConfig;
    /// Runs `tokens` at positions `start..`, appending their keys and values
    /// to `cache`, and returns the logits after the last token.
    fn forward(&self, ops: &mut O, cache: &mut O::Cache, tokens: &[u32], start: usize) -> Result<Vec<f32>>;
}
