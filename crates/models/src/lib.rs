//! Model architectures, weight formats and tokenization for ipfs-accelerate.
//!
//! A model directory (Hugging Face / sentence-transformers layout) is
//! classified from its `config.json` ([`ModelConfig`]), its weights are
//! memory-mapped from safetensors ([`SafetensorsFile`]), and the architecture
//! builds a graph of standard ops ([`BertModel::graph`]) that any backend of
//! `ipfs-accelerate-tensor` runs. [`TextEmbedder`] is the whole
//! sentence-embedding pipeline on top; [`TextEmbedder::embed_stage`] runs a
//! range of its encoder layers, one stage of a pipeline sharded across
//! workers ([`split_layers`]).
//!
//! ```no_run
//! use ipfs_accelerate_models::{BackendChoice, TextEmbedder};
//! let model = TextEmbedder::load("models/all-MiniLM-L6-v2".as_ref(), BackendChoice::Auto)?;
//! let v = model.embed(&["a sentence", "another one"], 32)?;
//! let cosine: f32 = v[0].iter().zip(&v[1]).map(|(a, b)| a * b).sum();
//! # Ok::<(), ipfs_accelerate_models::Error>(())
//! ```
#![deny(missing_docs)]

pub mod audio;
mod backend;
pub mod bert;
pub mod config;
mod embedder;
pub mod engine;
mod error;
pub mod gguf;
pub mod llm;
mod safetensors_file;
pub mod sentence_transformers;
mod shard;
mod tokenizer;
pub mod vision;
pub mod whisper;

pub use backend::{BackendChoice, BackendKind, Precision};
pub use bert::BertModel;
pub use config::{Architecture, ModelConfig, ModelType};
pub use embedder::TextEmbedder;
pub use engine::{CpuEngine, Engine};
pub use error::{Error, Result};
pub use safetensors_file::SafetensorsFile;
pub use shard::{split_layers, LayerRange, StageOutput};
pub use tokenizer::{Encoded, TextTokenizer};
