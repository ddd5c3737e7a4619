//! Sentence embeddings: tokenize, run the encoder on packed batches, pool, normalize.

use crate::backend::{BackendChoice, BackendKind, Precision};
use crate::bert::BertModel;
use crate::config::{Architecture, ModelConfig, ModelType};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::safetensors_file::SafetensorsFile;
use crate::sentence_transformers::{l2_normalize, pool, SentencePipeline};
use crate::tokenizer::{Encoded, TextTokenizer};
use ipfs_accelerate_tensor::Tensor;
use std::path::{Path, PathBuf};

/// A text-embedding model ready to run, loaded from a directory in
/// sentence-transformers (or plain transformers) layout.
///
/// ```no_run
/// use ipfs_accelerate_models::{TextEmbedder, BackendChoice};
/// let model = TextEmbedder::load("all-MiniLM-L6-v2".as_ref(), BackendChoice::Auto)?;
/// let vectors = model.embed(&["Hello, world!"], 32)?;
/// assert_eq!(vectors[0].len(), model.dim());
/// # Ok::<(), ipfs_accelerate_models::Error>(())
/// ```
pub struct TextEmbedder {
    dir: PathBuf,
    model: BertModel,
    tokenizer: TextTokenizer,
    pipeline: SentencePipeline,
    max_seq_length: usize,
    engine: Engine,
    notice: Option<String>,
}

impl TextEmbedder {
    /// Loads the model in `dir` onto the chosen backend, in float32.
    pub fn load(dir: &Path, backend: BackendChoice) -> Result<Self> {
        Self::load_with(dir, backend, Precision::F32)
    }

    /// Loads the model in `dir` onto the chosen backend at `precision`.
    pub fn load_with(dir: &Path, backend: BackendChoice, precision: Precision) -> Result<Self> {
        let (engine, notice) = backend.open(precision)?;
        Self::load_on(dir, engine, notice)
    }

    /// Loads the model in `dir` onto an engine made elsewhere (a browser
    /// worker), with the notice to show, if any.
    pub fn load_on(dir: &Path, engine: Engine, notice: Option<String>) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::ModelDirMissing(dir.to_path_buf()));
        }
        let config = ModelConfig::load(dir)?;
        let Architecture::BertFamily(variant) = config.architecture;
        let bert_config = config.bert(dir)?;
        let weights_path = dir.join("model.safetensors");
        if !weights_path.exists() {
            return Err(Error::MissingFile {
                path: weights_path,
                hint: "the model's weights must be in model.safetensors (convert pytorch_model.bin with safetensors' convert script)",
            });
        }
        let pipeline = SentencePipeline::load(dir)?;
        let file = SafetensorsFile::open(&weights_path)?;
        let model = BertModel::load(bert_config, variant, &file)?;
        let max_seq_length = pipeline.max_seq_length.unwrap_or(512).min(model.max_tokens());
        let tokenizer = TextTokenizer::load(dir, max_seq_length)?;
        tracing::debug!(dir = %dir.display(), variant = ?variant, max_seq_length, "loaded text embedder");
        Ok(TextEmbedder { dir: dir.to_path_buf(), model, tokenizer, pipeline, max_seq_length, engine, notice })
    }

    /// The directory the model came from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Length of the embedding vectors.
    pub fn dim(&self) -> usize {
        self.model.hidden_size()
    }

    /// What the model does.
    pub fn model_type(&self) -> ModelType {
        ModelType::TextEmbedding
    }

    /// The backend it runs on.
    pub fn backend(&self) -> BackendKind {
        self.engine.kind()
    }

    /// The backend and device, in one line (`webgpu (NVIDIA H100, vulkan, DiscreteGpu)`).
    pub fn backend_description(&self) -> String {
        self.engine.describe()
    }

    /// The encoder, for the pipeline stages in `shard.rs`.
    pub(crate) fn model(&self) -> &BertModel {
        &self.model
    }

    /// The engine the encoder runs on.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Set when `--backend auto` wanted a GPU but fell back to the CPU: why.
    pub fn backend_notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    /// Texts are truncated to this many tokens (special tokens included).
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// The pooling and normalization after the encoder.
    pub fn pipeline(&self) -> &SentencePipeline {
        &self.pipeline
    }

    /// Tokenizes texts as `embed` does.
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Encoded>> {
        self.tokenizer.encode_batch(texts)
    }

    /// One embedding per text, computed `batch_size` texts at a time.
    pub fn embed(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Err(Error::EmptyInput);
        }
        let encoded = self.tokenize(texts)?;
        self.embed_encoded(&encoded, batch_size)
    }

    /// Embeddings of already tokenized texts.
    pub fn embed_encoded(&self, encoded: &[Encoded], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        if batch_size == 0 {
            return Err(Error::InvalidOption("batch size must be at least 1".into()));
        }
        let mut out = Vec::with_capacity(encoded.len());
        for batch in encoded.chunks(batch_size) {
            let hidden = self.hidden_states(batch)?;
            self.pool_batch(batch, &hidden, &mut out);
        }
        Ok(out)
    }

    /// Pools the packed hidden states of `batch` into one vector per
    /// sequence (normalized when the pipeline says so), appended to `out`.
    /// Shared by [`Self::embed_encoded`] and the last pipeline stage, so a
    /// sharded model pools exactly as the whole one does.
    pub(crate) fn pool_batch(&self, batch: &[Encoded], hidden: &Tensor, out: &mut Vec<Vec<f32>>) {
        let dim = self.dim();
        let hidden = hidden.as_f32().expect("the encoder outputs float32");
        let mut start = 0;
        for e in batch {
            let tokens = &hidden[start * dim..(start + e.ids.len()) * dim];
            let mut v = vec![0.0; dim];
            pool(self.pipeline.pooling, tokens, dim, &mut v);
            if self.pipeline.normalize {
                l2_normalize(&mut v);
            }
            out.push(v);
            start += e.ids.len();
        }
    }

    /// Runs the encoder once on a packed batch; returns the last hidden
    /// states, `[total_tokens, hidden]`.
    pub fn hidden_states(&self, batch: &[Encoded]) -> Result<Tensor> {
        self.model.forward(&self.engine, batch)
    }
}
