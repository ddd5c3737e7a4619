//! A loaded decoder on one backend, and the sequences generated with it.
//!
//! [`LoadedDecoder::open`] reads a GGUF file or a Hugging Face directory
//! (`config.json` + `model.safetensors`), builds the architecture on the
//! chosen backend and hands out [`Sequence`]s: one per generation, each
//! owning its KV cache, which is freed when the sequence is dropped (a
//! finished, failed or cancelled generation).

use super::config::{DecoderArch, DecoderConfig};
use super::cpu_ops::CpuOps;
use super::gpt2::Gpt2;
use super::gpu_ops::GpuDecoderOps;
use super::llama::{Llama, Naming};
use super::ops::DecoderOps;
use super::weights::{WeightBits, WeightFile};
use super::{ActivationType, Decoder};
use crate::backend::{auto_wants_gpu, BackendChoice};
use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::safetensors_file::SafetensorsFile;
use ipfs_accelerate_gpu::GpuContext;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where a model's files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// A single GGUF file (weights, tokenizer and chat template inside).
    Gguf(PathBuf),
    /// A Hugging Face directory: `config.json`, `model.safetensors`,
    /// `tokenizer.json`, `tokenizer_config.json`.
    HuggingFace(PathBuf),
}

impl ModelSource {
    /// A `.gguf` file, a directory holding exactly one `.gguf` file, or a
    /// Hugging Face directory.
    pub fn locate(path: &Path) -> Result<Self> {
        if path.is_file() {
            return Ok(ModelSource::Gguf(path.to_path_buf()));
        }
        if !path.is_dir() {
            return Err(Error::MissingFile {
                path: path.to_path_buf(),
                hint: "pass a .gguf file or a directory with config.json and model.safetensors",
            });
        }
        if path.join("config.json").is_file() {
            return Ok(ModelSource::HuggingFace(path.to_path_buf()));
        }
        let ggufs: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|source| Error::Io { path: path.to_path_buf(), source })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")))
            .collect();
        match ggufs.as_slice() {
            [one] => Ok(ModelSource::Gguf(one.clone())),
            [] => Err(Error::MissingFile {
                path: path.join("config.json"),
                hint: "the directory has neither config.json nor a .gguf file",
            }),
            many => Err(Error::InvalidOption(format!(
                "{} holds {} .gguf files; pass the one to use",
                path.display(),
                many.len()
            ))),
        }
    }
}

/// A model resident on backend `O`, shared by its sequences.
struct Shared<O: DecoderOps> {
    ops: Mutex<O>,
    model: Box<dyn Decoder<O> + Send + Sync>,
}

/// Builds the architecture `config` names on `ops`.
fn build<O: DecoderOps + 'static>(
    mut ops: O,
    file: &WeightFile,
    config: &DecoderConfig,
    naming: Naming,
) -> Result<Arc<Shared<O>>>
where
    Llama<O>: Send + Sync,
    Gpt2<O>: Send + Sync,
{
    let model: Box<dyn Decoder<O> + Send + Sync> = match config.arch {
        DecoderArch::Llama => Box::new(Llama::load(&mut ops, file, config, naming)?),
        DecoderArch::Gpt2 => Box::new(Gpt2::load(&mut ops, file, config)?),
    };
    Ok(Arc::new(Shared { ops: Mutex::new(ops), model }))
}

/// A loaded decoder-only model.
pub struct LoadedDecoder {
    config: DecoderConfig,
    backend: Arc<dyn SequenceFactory>,
}

impl LoadedDecoder {
    /// Loads the weights of `source` onto the CPU backend at `bits`.
    pub fn open(source: &ModelSource, bits: WeightBits) -> Result<Self> {
        let (file, config, naming) = open_weights(source, bits)?;
        let shared = build(CpuOps, &file, &config, naming)?;
        Ok(LoadedDecoder { config, backend: Arc::new(Factory(shared)) })
    }

    /// Loads onto the backend `choice` names, with a one-line notice when
    /// `auto` wanted a GPU and fell back to the CPU, or when `activations`
    /// asked for f16 where it cannot apply. `auto` takes WebGPU only with a
    /// hardware adapter (software ones are far slower than the CPU
    /// backend); `webgpu` takes any adapter, software ones included.
    /// `activations` is how WebGPU stores activations and the KV cache: f16
    /// needs the adapter's `shader-f16` (else f32, with a notice); the CPU
    /// backend always computes and stores f32.
    pub fn open_with(
        source: &ModelSource,
        bits: WeightBits,
        choice: BackendChoice,
        activations: ActivationType,
    ) -> Result<(Self, Option<String>)> {
        let mut notices = Vec::new();
        let mut gpu = || -> Result<GpuDecoderOps> {
            let ctx = GpuContext::new().map_err(|e| Error::Backend(e.to_string()))?;
            let ops = GpuDecoderOps::new(&ctx)?;
            if activations == ActivationType::F16 && !ctx.has_shader_f16() {
                notices.push("notice: this GPU adapter has no shader-f16, so activations stay float32".to_string());
                return Ok(ops);
            }
            ops.with_activations(activations)
        };
        let ops = match choice {
            BackendChoice::Cpu => None,
            BackendChoice::WebGpu => Some(gpu()?),
            BackendChoice::Auto if !auto_wants_gpu() => None,
            BackendChoice::Auto => gpu()
                .map_err(|e| notices.push(format!("notice: the GPU could not be used ({e}); running on the CPU")))
                .ok(),
        };
        let on_gpu = ops.is_some();
        let decoder = match ops {
            Some(ops) => LoadedDecoder::open_on(source, bits, ops)?,
            None => LoadedDecoder::open(source, bits)?,
        };
        if activations == ActivationType::F16 && !on_gpu {
            notices.push("notice: f16 activations apply to the webgpu backend; the CPU backend runs float32".into());
        }
        Ok((decoder, (!notices.is_empty()).then(|| notices.join("\n"))))
    }

    /// Loads onto any backend implementing [`DecoderOps`].
    pub fn open_on<O>(source: &ModelSource, bits: WeightBits, ops: O) -> Result<Self>
    where
        O: DecoderOps + Send + 'static,
        O::Cache: Send,
        Llama<O>: Send + Sync,
        Gpt2<O>: Send + Sync,
    {
        let (file, config, naming) = open_weights(source, bits)?;
        let shared = build(ops, &file, &config, naming)?;
        Ok(LoadedDecoder { config, backend: Arc::new(Factory(shared)) })
    }

    /// The model's hyperparameters.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// The backend's name.
    pub fn backend_name(&self) -> String {
        self.backend.backend_name()
    }

    /// A new, empty sequence with room for `capacity` positions.
    pub fn sequence(&self, capacity: usize) -> Result<Box<dyn Sequence>> {
        if capacity > self.config.context_length {
            return Err(Error::InvalidOption(format!(
                "{capacity} positions exceed the model's context of {}",
                self.config.context_length
            )));
        }
        self.backend.sequence(&self.config, capacity)
    }
}

/// One sequence being generated: its KV cache and position.
pub trait Sequence: Send {
    /// Runs `tokens` at the next positions and returns the logits after the
    /// last of them (`vocab_size` values).
    fn feed(&mut self, tokens: &[u32]) -> Result<Vec<f32>>;
    /// Positions filled so far.
    fn len(&self) -> usize;
    /// Whether nothing has been fed yet.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Positions the cache can hold.
    fn capacity(&self) -> usize;
}

/// Makes sequences; hides the backend type behind a trait object.
trait SequenceFactory: Send + Sync {
    fn backend_name(&self) -> String;
    fn sequence(&self, config: &DecoderConfig, capacity: usize) -> Result<Box<dyn Sequence>>;
}

/// The factory of backend `O`: the model shared by its sequences.
struct Factory<O: DecoderOps>(Arc<Shared<O>>);

impl<O> SequenceFactory for Factory<O>
where
    O: DecoderOps + Send + 'static,
    O::Cache: Send,
{
    fn backend_name(&self) -> String {
        self.0.ops.lock().unwrap_or_else(|p| p.into_inner()).name()
    }

    fn sequence(&self, config: &DecoderConfig, capacity: usize) -> Result<Box<dyn Sequence>> {
        let cache = self.0.ops.lock().unwrap_or_else(|p| p.into_inner()).new_cache(
            config.layers,
            config.kv_heads,
            config.head_dim,
            capacity,
        )?;
        Ok(Box::new(BackendSequence { shared: self.0.clone(), cache, len: 0, capacity }))
    }
}

/// A sequence on backend `O`.
struct BackendSequence<O: DecoderOps> {
    shared: Arc<Shared<O>>,
    cache: O::Cache,
    len: usize,
    capacity: usize,
}

impl<O> Sequence for BackendSequence<O>
where
    O: DecoderOps + Send + 'static,
    O::Cache: Send,
{
    fn feed(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Err(Error::InvalidOption("nothing to feed: the prompt has no tokens".into()));
        }
        if self.len + tokens.len() > self.capacity {
            return Err(Error::InvalidOption(format!(
                "{} more tokens do not fit: {} of {} positions are used",
                tokens.len(),
                self.len,
                self.capacity
            )));
        }
        // One step at a time per backend: steps of concurrent sequences interleave.
        let mut ops = self.shared.ops.lock().unwrap_or_else(|p| p.into_inner());
        let logits = self.shared.model.forward(&mut ops, &mut self.cache, tokens, self.len)?;
        self.len += tokens.len();
        Ok(logits)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn capacity(&self) -> usize {
        self.capacity
    }
}

/// Opens the weight file of `source` and reads its hyperparameters.
fn open_weights(source: &ModelSource, bits: WeightBits) -> Result<(WeightFile, DecoderConfig, Naming)> {
    match source {
        ModelSource::Gguf(path) => {
            let file = GgufFile::open(path)?;
            let rope_freqs = match file.tensor("rope_freqs.weight") {
                Some(_) => Some(file.tensor_f32("rope_freqs.weight")?),
                None => None,
            };
            let config = DecoderConfig::from_gguf(&file, path, rope_freqs.as_deref())?;
            Ok((WeightFile::Gguf { file, path: path.clone() }, config, Naming::Gguf))
        }
        ModelSource::HuggingFace(dir) => {
            let config_path = dir.join("config.json");
            let text = std::fs::read_to_string(&config_path)
                .map_err(|source| Error::Io { path: config_path.clone(), source })?;
            let raw: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Config {
                path: config_path.clone(),
                what: "config.json",
                message: e.to_string(),
            })?;
            let config = DecoderConfig::from_hf_json(&raw, &config_path)?;
            let weights = dir.join("model.safetensors");
            if !weights.is_file() {
                return Err(Error::MissingFile {
                    path: weights,
                    hint: "the model needs its weights as a single model.safetensors",
                });
            }
            let file = SafetensorsFile::open(&weights)?;
            Ok((WeightFile::Safetensors { file, bits }, config, Naming::HuggingFace))
        }
    }
}
