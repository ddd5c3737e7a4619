//! Whisper's decoder on any [`DecoderOps`] backend (CPU, WebGPU), as
//! transformers' `WhisperForConditionalGeneration` computes it: token +
//! learned position embeddings, pre-norm layers of causal self-attention
//! over a KV cache, cross-attention to the encoder output and a GELU MLP, a
//! final LayerNorm and the output projection tied to the token embedding.
//! The encoder is a graph ([`super::encoder`]), so it runs on every graph
//! backend; its output is uploaded here once per window.

use super::config::WhisperConfig;
use crate::error::{Error, Result};
use crate::llm::ops::DecoderOps;
use crate::llm::weights::WeightFile;
use ipfs_accelerate_tensor::quant::{QuantMatrix, QuantType};

/// A Linear layer: weights `[out, in]` and an optional bias.
struct Linear<O: DecoderOps> {
    weight: O::Matrix,
    bias: Option<O::Vector>,
}

/// LayerNorm scale and shift.
struct Norm<O: DecoderOps> {
    weight: O::Vector,
    bias: O::Vector,
}

struct Mlp<O: DecoderOps> {
    norm: Norm<O>,
    fc1: Linear<O>,
    fc2: Linear<O>,
}

struct DecoderLayer<O: DecoderOps> {
    self_norm: Norm<O>,
    self_qkv: Linear<O>,
    self_out: Linear<O>,
    cross_norm: Norm<O>,
    cross_q: Linear<O>,
    /// Cross-attention K and V fused by rows, applied once per window.
    cross_kv: Linear<O>,
    cross_out: Linear<O>,
    mlp: Mlp<O>,
}

/// Whisper's decoder weights resident on backend `O`.
pub struct WhisperModel<O: DecoderOps> {
    config: WhisperConfig,
    tokens: O::Matrix,
    decoder_positions: O::Matrix,
    decoder_layers: Vec<DecoderLayer<O>>,
    decoder_norm: Norm<O>,
}

/// The decoder's state for one 30 s window: its self-attention KV cache,
/// the cross-attention keys and values of the window's encoder output, and
/// how many tokens it has seen.
pub struct WindowState<O: DecoderOps> {
    cache: O::Cache,
    cross: Vec<(O::Act, O::Act)>,
    position: usize,
}

impl<O: DecoderOps> WindowState<O> {
    /// Tokens decoded so far in this window (prompt included).
    pub fn position(&self) -> usize {
        self.position
    }
}

/// Reads weights by Hugging Face name into backend `O`.
struct Loader<'a, O: DecoderOps> {
    ops: &'a mut O,
    file: &'a WeightFile,
}

impl<O: DecoderOps> Loader<'_, O> {
    fn vector(&mut self, name: &str, len: usize) -> Result<O::Vector> {
        let values = self.file.vector(name, len)?;
        self.ops.vector(&values)
    }

    fn norm(&mut self, name: &str, d: usize) -> Result<Norm<O>> {
        Ok(Norm { weight: self.vector(&format!("{name}.weight"), d)?, bias: self.vector(&format!("{name}.bias"), d)? })
    }

    fn linear(&mut self, name: &str, out: usize, inp: usize) -> Result<Linear<O>> {
        let weight = self.ops.matrix(&self.file.matrix(&format!("{name}.weight"), out, inp, false)?)?;
        let bias_name = format!("{name}.bias");
        let bias = if self.file.has(&bias_name) { Some(self.vector(&bias_name, out)?) } else { None };
        Ok(Linear { weight, bias })
    }

    /// Linear layers with the same input fused by rows into one (`[Σ out, in]`);
    /// a part without a bias contributes zeros to the fused bias.
    fn fused(&mut self, names: &[String], out: usize, inp: usize) -> Result<Linear<O>> {
        let mut weights = Vec::with_capacity(names.len() * out * inp);
        let mut bias = Vec::with_capacity(names.len() * out);
        for name in names {
            weights.extend(self.f32_matrix(&format!("{name}.weight"), out, inp)?);
            let bias_name = format!("{name}.bias");
            if self.file.has(&bias_name) {
                bias.extend(self.file.vector(&bias_name, out)?);
            } else {
                bias.extend(std::iter::repeat_n(0.0, out));
            }
        }
        let matrix = QuantMatrix::quantize(self.storage(inp), names.len() * out, inp, &weights)?;
        Ok(Linear { weight: self.ops.matrix(&matrix)?, bias: Some(self.ops.vector(&bias)?) })
    }

    /// A position table as a float32 matrix (rows are read with `embed`).
    fn table(&mut self, name: &str, rows: usize, cols: usize) -> Result<O::Matrix> {
        let values = self.f32_matrix(name, rows, cols)?;
        self.ops.matrix(&QuantMatrix::quantize(QuantType::F32, rows, cols, &values)?)
    }

    fn f32_matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Vec<f32>> {
        let WeightFile::Safetensors { file, .. } = self.file else {
            return Err(Error::InvalidOption("Whisper weights are read from safetensors".into()));
        };
        let tensor = file.f32(name, &[rows, cols])?;
        tensor.as_f32().map(<[f32]>::to_vec).ok_or_else(|| Error::Backend(format!("{name} did not load as float32")))
    }

    /// The storage type fused matrices get: what the file's precision setting
    /// gives any other matrix of that width.
    fn storage(&self, cols: usize) -> QuantType {
        match self.file {
            WeightFile::Safetensors { bits, .. } => bits.storage(cols),
            WeightFile::Gguf { .. } => QuantType::F32,
        }
    }
}

impl<O: DecoderOps> WhisperModel<O> {
    /// Loads the decoder weights of a Hugging Face
    /// `WhisperForConditionalGeneration` safetensors file (names under
    /// `model.decoder.`; `proj_out` is tied to the token embedding).
    pub fn load(ops: &mut O, file: &WeightFile, config: &WhisperConfig) -> Result<Self> {
        let c = config;
        let d = c.d_model;
        let mut l = Loader { ops, file };
        let tokens = l.ops.matrix(&file.matrix("model.decoder.embed_tokens.weight", c.vocab_size, d, false)?)?;
        let decoder_positions = l.table("model.decoder.embed_positions.weight", c.max_target_positions, d)?;
        let mut decoder_layers = Vec::with_capacity(c.decoder_layers);
        for i in 0..c.decoder_layers {
            let p = format!("model.decoder.layers.{i}");
            let attn = |module: &str, part: &str| format!("{p}.{module}.{part}_proj");
            decoder_layers.push(DecoderLayer {
                self_norm: l.norm(&format!("{p}.self_attn_layer_norm"), d)?,
                self_qkv: l.fused(&[attn("self_attn", "q"), attn("self_attn", "k"), attn("self_attn", "v")], d, d)?,
                self_out: l.linear(&attn("self_attn", "out"), d, d)?,
                cross_norm: l.norm(&format!("{p}.encoder_attn_layer_norm"), d)?,
                cross_q: l.linear(&attn("encoder_attn", "q"), d, d)?,
                cross_kv: l.fused(&[attn("encoder_attn", "k"), attn("encoder_attn", "v")], d, d)?,
                cross_out: l.linear(&attn("encoder_attn", "out"), d, d)?,
                mlp: Mlp {
                    norm: l.norm(&format!("{p}.final_layer_norm"), d)?,
                    fc1: l.linear(&format!("{p}.fc1"), c.decoder_ffn, d)?,
                    fc2: l.linear(&format!("{p}.fc2"), d, c.decoder_ffn)?,
                },
            });
        }
        let decoder_norm = l.norm("model.decoder.layer_norm", d)?;
        if file.has("proj_out.weight") {
            // Published checkpoints tie it; an untied one would be silently wrong.
            let proj = l.f32_matrix("proj_out.weight", c.vocab_size, d)?;
            let embed = l.f32_matrix("model.decoder.embed_tokens.weight", c.vocab_size, d)?;
            if proj != embed {
                return Err(Error::Weight {
                    name: "proj_out.weight".into(),
                    message:
                        "differs from model.decoder.embed_tokens.weight; only tied output projections are supported"
                            .into(),
                });
            }
        }
        Ok(WhisperModel { config: config.clone(), tokens, decoder_positions, decoder_layers, decoder_norm })
    }

    /// The hyperparameters.
    pub fn config(&self) -> &WhisperConfig {
        &self.config
    }

    /// A fresh decoder state for a window whose encoder output is `encoded`:
    /// computes every layer's cross-attention keys and values once.
    pub fn start_window(&self, ops: &mut O, encoded: &O::Act) -> Result<WindowState<O>> {
        let c = &self.config;
        let d = c.d_model;
        let head_dim = d / c.decoder_heads;
        let cache = ops.new_cache(c.decoder_layers, c.decoder_heads, head_dim, c.max_target_positions)?;
        let mut cross = Vec::with_capacity(self.decoder_layers.len());
        for layer in &self.decoder_layers {
            let kv = self.linear(ops, encoded, &layer.cross_kv)?;
            let mut parts = ops.split_columns(&kv, &[d, d])?;
            let v = parts.pop().expect("two parts");
            let k = parts.pop().expect("two parts");
            cross.push((k, v));
        }
        Ok(WindowState { cache, cross, position: 0 })
    }

    /// Feeds `tokens` to the decoder at the window's next positions and
    /// returns the logits after the last one (`vocab_size` values).
    pub fn decode(&self, ops: &mut O, state: &mut WindowState<O>, tokens: &[u32]) -> Result<Vec<f32>> {
        let c = &self.config;
        let d = c.d_model;
        let start = state.position;
        if tokens.is_empty() {
            return Err(Error::InvalidOption("no tokens to decode".into()));
        }
        if start + tokens.len() > c.max_target_positions {
            return Err(Error::InvalidOption(format!(
                "{} decoder positions exceed the model's {}",
                start + tokens.len(),
                c.max_target_positions
            )));
        }
        let mut x = ops.embed(&self.tokens, tokens)?;
        let ids: Vec<u32> = (start..start + tokens.len()).map(|p| p as u32).collect();
        let pos = ops.embed(&self.decoder_positions, &ids)?;
        ops.add_assign(&mut x, &pos)?;
        for (index, layer) in self.decoder_layers.iter().enumerate() {
            let normed = self.norm(ops, &x, &layer.self_norm)?;
            let qkv = self.linear(ops, &normed, &layer.self_qkv)?;
            let parts = ops.split_columns(&qkv, &[d, d, d])?;
            let attended =
                ops.attention(&parts[0], &parts[1], &parts[2], &mut state.cache, index, start, c.decoder_heads)?;
            let out = self.linear(ops, &attended, &layer.self_out)?;
            ops.add_assign(&mut x, &out)?;

            let normed = self.norm(ops, &x, &layer.cross_norm)?;
            let q = self.linear(ops, &normed, &layer.cross_q)?;
            let (k, v) = &state.cross[index];
            let attended = ops.full_attention(&q, k, v, c.decoder_heads)?;
            let out = self.linear(ops, &attended, &layer.cross_out)?;
            ops.add_assign(&mut x, &out)?;

            let out = self.mlp(ops, &x, &layer.mlp)?;
            ops.add_assign(&mut x, &out)?;
        }
        state.position += tokens.len();
        let last = ops.last_row(&x)?;
        let last = self.norm(ops, &last, &self.decoder_norm)?;
        ops.logits(&last, &self.tokens)
    }

    fn linear(&self, ops: &mut O, x: &O::Act, layer: &Linear<O>) -> Result<O::Act> {
        ops.linear(x, &layer.weight, layer.bias.as_ref())
    }

    fn norm(&self, ops: &mut O, x: &O::Act, norm: &Norm<O>) -> Result<O::Act> {
        ops.layer_norm(x, &norm.weight, &norm.bias, 1e-5)
    }

    fn mlp(&self, ops: &mut O, x: &O::Act, mlp: &Mlp<O>) -> Result<O::Act> {
        let normed = self.norm(ops, x, &mlp.norm)?;
        let hidden = self.linear(ops, &normed, &mlp.fc1)?;
        let hidden = ops.gelu(&hidden)?;
        self.linear(ops, &hidden, &mlp.fc2)
    }
}
