//! Whisper's hyperparameters (`config.json`) and decoding settings
//! (`generation_config.json`), read from a Hugging Face directory.

use crate::error::{read_file, Error, Result};
use serde::Deserialize;
use std::path::Path;

/// The widest attention head the backends' kernels take.
const MAX_HEAD_DIM: usize = 256;
/// Bounds a hostile config cannot exceed (whisper-large is 1280 wide, 32
/// layers, 51866 tokens): they keep an absurd config from sizing huge
/// buffers before a weight is even read.
const MAX_WIDTH: usize = 16_384;
const MAX_LAYERS: usize = 256;
const MAX_VOCAB: usize = 1 << 20;
const MAX_POSITIONS: usize = 1 << 16;

/// A Whisper model's shape and special tokens.
#[derive(Clone, Debug, PartialEq)]
pub struct WhisperConfig {
    /// Width of every layer.
    pub d_model: usize,
    /// Encoder layers.
    pub encoder_layers: usize,
    /// Encoder attention heads.
    pub encoder_heads: usize,
    /// Encoder feed-forward width.
    pub encoder_ffn: usize,
    /// Decoder layers.
    pub decoder_layers: usize,
    /// Decoder attention heads.
    pub decoder_heads: usize,
    /// Decoder feed-forward width.
    pub decoder_ffn: usize,
    /// Tokens (text, special and timestamp tokens).
    pub vocab_size: usize,
    /// Mel bins of the input features (80, or 128 for large-v3).
    pub num_mel_bins: usize,
    /// Encoder positions (1500: 3000 frames halved by the strided conv).
    pub max_source_positions: usize,
    /// Decoder positions (448): prompt plus generated tokens.
    pub max_target_positions: usize,
    /// `<|startoftranscript|>`.
    pub decoder_start_token_id: u32,
    /// `<|endoftext|>`.
    pub eos_token_id: u32,
    /// Tokens never generated.
    pub suppress_tokens: Vec<u32>,
    /// Tokens not generated first.
    pub begin_suppress_tokens: Vec<u32>,
    /// `<|notimestamps|>`; timestamp tokens follow it.
    pub no_timestamps_token_id: u32,
    /// The latest first timestamp, in steps of 0.02 s after the window start.
    pub max_initial_timestamp_index: Option<u32>,
    /// Whether the model knows several languages (language and task tokens).
    pub is_multilingual: bool,
}

impl WhisperConfig {
    /// The first timestamp token, `<|0.00|>`.
    pub fn timestamp_begin(&self) -> u32 {
        self.no_timestamps_token_id + 1
    }

    /// Reads `dir/config.json` and, when present, `dir/generation_config.json`
    /// (whose decoding settings win, as in transformers).
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        if !path.is_file() {
            return Err(Error::MissingFile { path, hint: "a Whisper directory needs its config.json" });
        }
        let model: RawModel = parse(&path, "Whisper config")?;
        let generation_path = dir.join("generation_config.json");
        let generation: RawGeneration =
            if generation_path.is_file() { parse(&generation_path, "generation config")? } else { Default::default() };
        let config_error = |message: String| Error::Config { path: path.clone(), what: "Whisper config", message };
        if model.model_type.as_deref() != Some("whisper") {
            return Err(config_error(format!("model_type is {:?}, not \"whisper\"", model.model_type)));
        }
        if let Some(act) = model.activation_function.as_deref() {
            if act != "gelu" {
                return Err(config_error(format!("activation_function {act:?} is not supported (only \"gelu\")")));
            }
        }
        if model.scale_embedding.unwrap_or(false) {
            return Err(config_error("scale_embedding true is not supported".into()));
        }
        let no_timestamps = generation
            .no_timestamps_token_id
            .or(model.no_timestamps_token_id)
            .ok_or_else(|| config_error("no no_timestamps_token_id in generation_config.json or config.json".into()))?;
        let config = WhisperConfig {
            d_model: model.d_model,
            encoder_layers: model.encoder_layers,
            encoder_heads: model.encoder_attention_heads,
            encoder_ffn: model.encoder_ffn_dim,
            decoder_layers: model.decoder_layers,
            decoder_heads: model.decoder_attention_heads,
            decoder_ffn: model.decoder_ffn_dim,
            vocab_size: model.vocab_size,
            num_mel_bins: model.num_mel_bins,
            max_source_positions: model.max_source_positions,
            max_target_positions: model.max_target_positions,
            decoder_start_token_id: generation.decoder_start_token_id.unwrap_or(model.decoder_start_token_id),
            eos_token_id: first_id(&generation.eos_token_id).unwrap_or(model.eos_token_id),
            suppress_tokens: generation.suppress_tokens.or(model.suppress_tokens).unwrap_or_default(),
            begin_suppress_tokens: generation.begin_suppress_tokens.or(model.begin_suppress_tokens).unwrap_or_default(),
            no_timestamps_token_id: no_timestamps,
            max_initial_timestamp_index: generation.max_initial_timestamp_index,
            is_multilingual: generation.is_multilingual.unwrap_or(model.vocab_size >= 51865),
        };
        config.validate().map_err(config_error)?;
        Ok(config)
    }

    /// Checks the sizes are plausible and consistent.
    fn validate(&self) -> std::result::Result<(), String> {
        let within = |name: &str, value: usize, max: usize| {
            if value == 0 || value > max {
                Err(format!("{name} is {value}; expected 1..={max}"))
            } else {
                Ok(())
            }
        };
        within("d_model", self.d_model, MAX_WIDTH)?;
        within("encoder_ffn_dim", self.encoder_ffn, 4 * MAX_WIDTH)?;
        within("decoder_ffn_dim", self.decoder_ffn, 4 * MAX_WIDTH)?;
        within("encoder_layers", self.encoder_layers, MAX_LAYERS)?;
        within("decoder_layers", self.decoder_layers, MAX_LAYERS)?;
        within("vocab_size", self.vocab_size, MAX_VOCAB)?;
        within("num_mel_bins", self.num_mel_bins, 512)?;
        within("max_source_positions", self.max_source_positions, MAX_POSITIONS)?;
        within("max_target_positions", self.max_target_positions, MAX_POSITIONS)?;
        for (name, heads) in [("encoder", self.encoder_heads), ("decoder", self.decoder_heads)] {
            if heads == 0 || !self.d_model.is_multiple_of(heads) || self.d_model / heads > MAX_HEAD_DIM {
                return Err(format!(
                    "{name}_attention_heads {heads} does not split d_model {} into heads of at most {MAX_HEAD_DIM}",
                    self.d_model
                ));
            }
        }
        let vocab = self.vocab_size as u32;
        for (name, id) in [
            ("decoder_start_token_id", self.decoder_start_token_id),
            ("eos_token_id", self.eos_token_id),
            ("no_timestamps_token_id", self.no_timestamps_token_id),
        ] {
            if id >= vocab {
                return Err(format!("{name} {id} is outside the vocabulary of {vocab}"));
            }
        }
        Ok(())
    }
}

fn parse<T: for<'de> Deserialize<'de>>(path: &Path, what: &'static str) -> Result<T> {
    serde_json::from_slice(&read_file(path)?).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        what,
        message: e.to_string(),
    })
}

/// `eos_token_id` may be one id or a list.
fn first_id(value: &Option<serde_json::Value>) -> Option<u32> {
    match value.as_ref()? {
        serde_json::Value::Number(n) => n.as_u64().and_then(|v| u32::try_from(v).ok()),
        serde_json::Value::Array(items) => items.first()?.as_u64().and_then(|v| u32::try_from(v).ok()),
        _ => None,
    }
}

#[derive(Deserialize)]
struct RawModel {
    model_type: Option<String>,
    activation_function: Option<String>,
    scale_embedding: Option<bool>,
    d_model: usize,
    encoder_layers: usize,
    encoder_attention_heads: usize,
    encoder_ffn_dim: usize,
    decoder_layers: usize,
    decoder_attention_heads: usize,
    decoder_ffn_dim: usize,
    vocab_size: usize,
    num_mel_bins: usize,
    max_source_positions: usize,
    max_target_positions: usize,
    decoder_start_token_id: u32,
    eos_token_id: u32,
    suppress_tokens: Option<Vec<u32>>,
    begin_suppress_tokens: Option<Vec<u32>>,
    no_timestamps_token_id: Option<u32>,
}

#[derive(Default, Deserialize)]
struct RawGeneration {
    decoder_start_token_id: Option<u32>,
    eos_token_id: Option<serde_json::Value>,
    suppress_tokens: Option<Vec<u32>>,
    begin_suppress_tokens: Option<Vec<u32>>,
    no_timestamps_token_id: Option<u32>,
    max_initial_timestamp_index: Option<u32>,
    is_multilingual: Option<bool>,
}
