//! Whisper's encoder as a graph of WebNN ops, so it runs on every graph
//! backend: the CPU, native WebGPU and browser workers (WebGPU and WebNN).
//!
//! Two 1-D convolutions are `conv2d` over a `[1, mel bins, 1, frames]`
//! input (the second of stride 2: 3000 frames become 1500 positions), each
//! followed by exact GELU; then the sinusoidal positions are added and
//! pre-norm layers of unmasked self-attention and a GELU MLP run, and a final
//! LayerNorm. The output, `[positions, d_model]`, is what the decoder's
//! cross-attention reads.

use super::config::WhisperConfig;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::safetensors_file::SafetensorsFile;
use ipfs_accelerate_tensor::graph::{AttentionOptions, AttentionSegment};
use ipfs_accelerate_tensor::{
    Conv2dOptions, DType, GemmOptions, Graph, GraphBuilder, LayerNormOptions, Operand, Tensor, Weights,
};

/// Weights and bias of one layer (a Linear's, or a conv's as `[out, in, 1, 3]`).
struct Param {
    weight: Tensor,
    bias: Tensor,
}

struct Layer {
    attn_norm: Param,
    /// Q, K and V fused by rows (`[3 · d, d]`; K has no bias: zeros there).
    qkv: Param,
    out: Param,
    mlp_norm: Param,
    fc1: Param,
    fc2: Param,
}

/// Whisper's encoder, built as a graph and run on an [`Engine`].
pub struct WhisperEncoder {
    config: WhisperConfig,
    conv1: Param,
    conv2: Param,
    positions: Tensor,
    layers: Vec<Layer>,
    norm: Param,
}

impl WhisperEncoder {
    /// Reads the encoder's weights (`model.encoder.*`) from `file`.
    pub fn load(file: &SafetensorsFile, config: &WhisperConfig) -> Result<Self> {
        let (d, ffn, bins) = (config.d_model, config.encoder_ffn, config.num_mel_bins);
        let param = |name: &str, shape: &[usize]| -> Result<Param> {
            let out = shape[0];
            Ok(Param {
                weight: file.f32(&format!("{name}.weight"), shape)?,
                bias: file.f32(&format!("{name}.bias"), &[out])?,
            })
        };
        let conv = |name: &str, inputs: usize| -> Result<Param> {
            let p = param(name, &[d, inputs, 3])?;
            Ok(Param { weight: p.weight.reshape([d, inputs, 1, 3])?, bias: p.bias })
        };
        let mut layers = Vec::with_capacity(config.encoder_layers);
        for i in 0..config.encoder_layers {
            let p = format!("model.encoder.layers.{i}");
            let attn = |part: &str| format!("{p}.self_attn.{part}_proj");
            // K has no bias in Whisper: the fused bias holds zeros for it.
            let mut weights = Vec::with_capacity(3 * d * d);
            let mut bias = Vec::with_capacity(3 * d);
            for part in ["q", "k", "v"] {
                weights.extend_from_slice(values(&file.f32(&format!("{}.weight", attn(part)), &[d, d])?)?);
                let bias_name = format!("{}.bias", attn(part));
                if file.contains(&bias_name) {
                    bias.extend_from_slice(values(&file.f32(&bias_name, &[d])?)?);
                } else {
                    bias.extend(std::iter::repeat_n(0.0, d));
                }
            }
            layers.push(Layer {
                attn_norm: param(&format!("{p}.self_attn_layer_norm"), &[d])?,
                qkv: Param { weight: Tensor::from_f32([3 * d, d], &weights)?, bias: Tensor::from_f32([3 * d], &bias)? },
                out: param(&attn("out"), &[d, d])?,
                mlp_norm: param(&format!("{p}.final_layer_norm"), &[d])?,
                fc1: param(&format!("{p}.fc1"), &[ffn, d])?,
                fc2: param(&format!("{p}.fc2"), &[d, ffn])?,
            });
        }
        Ok(WhisperEncoder {
            config: config.clone(),
            conv1: conv("model.encoder.conv1", bins)?,
            conv2: conv("model.encoder.conv2", d)?,
            positions: file.f32("model.encoder.embed_positions.weight", &[config.max_source_positions, d])?,
            layers,
            norm: param("model.encoder.layer_norm", &[d])?,
        })
    }

    /// Mel frames one window holds (3000).
    pub fn window_frames(&self) -> usize {
        2 * self.config.max_source_positions
    }

    /// The encoder graph: input `mel` `[1, bins, 1, frames]`, output
    /// `encoded` `[positions, d_model]`.
    pub fn graph(&self) -> Result<(Graph, Weights)> {
        let c = &self.config;
        let (d, heads, positions) = (c.d_model, c.encoder_heads, c.max_source_positions);
        let mut b = GraphBuilder::new();
        let mel = b.input("mel", DType::Float32, [1, c.num_mel_bins, 1, self.window_frames()])?;
        // Kernel 3, padding 1 along the frames; the height of 1 is not padded.
        let conv = |b: &mut GraphBuilder, x: Operand, p: &Param, name: &str, stride: usize| -> Result<Operand> {
            let w = b.constant(&format!("{name}.weight"), p.weight.clone())?;
            let bias = b.constant(&format!("{name}.bias"), p.bias.clone())?;
            let options = Conv2dOptions { padding: [0, 0, 1, 1], strides: [1, stride], ..Default::default() };
            let y = b.conv2d(x, w, Some(bias), options)?;
            Ok(b.gelu(y)?)
        };
        let x = conv(&mut b, mel, &self.conv1, "conv1", 1)?;
        let x = conv(&mut b, x, &self.conv2, "conv2", 2)?;
        // [1, d, 1, positions] → [positions, d].
        let x = b.reshape(x, &[d, positions])?;
        let x = b.transpose(x, &[1, 0])?;
        let pos = b.constant("positions", self.positions.clone())?;
        let mut x = b.add(x, pos)?;
        let attention = AttentionOptions {
            num_heads: heads,
            num_kv_heads: heads,
            head_dim: d / heads,
            scale: 1.0 / ((d / heads) as f32).sqrt(),
            causal: false,
            segments: vec![AttentionSegment { q_len: positions, kv_len: positions }],
            has_mask: false,
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let name = |s: &str| format!("layer{i}.{s}");
            let normed = norm(&mut b, x, &layer.attn_norm, &name("attn_norm"))?;
            let qkv = linear(&mut b, normed, &layer.qkv, &name("qkv"))?;
            let q = b.slice(qkv, &[0, 0], &[positions, d])?;
            let k = b.slice(qkv, &[0, d], &[positions, d])?;
            let v = b.slice(qkv, &[0, 2 * d], &[positions, d])?;
            let attended = b.attention(q, k, v, attention.clone())?;
            let out = linear(&mut b, attended, &layer.out, &name("out"))?;
            x = b.add(x, out)?;
            let normed = norm(&mut b, x, &layer.mlp_norm, &name("mlp_norm"))?;
            let hidden = linear(&mut b, normed, &layer.fc1, &name("fc1"))?;
            let hidden = b.gelu(hidden)?;
            let out = linear(&mut b, hidden, &layer.fc2, &name("fc2"))?;
            x = b.add(x, out)?;
        }
        let encoded = norm(&mut b, x, &self.norm, "norm")?;
        Ok(b.build(&[("encoded", encoded)])?)
    }

    /// Encodes one window of features, row-major `[bins][window_frames]`;
    /// returns `[positions · d_model]` values, row-major.
    pub fn encode(&self, engine: &Engine, mel: &[f32]) -> Result<Vec<f32>> {
        let (bins, frames) = (self.config.num_mel_bins, self.window_frames());
        if mel.len() != bins * frames {
            return Err(Error::InvalidOption(format!(
                "{} feature values do not make a [{bins}, {frames}] window",
                mel.len()
            )));
        }
        let input = Tensor::from_f32([1, bins, 1, frames], mel)?;
        let mut out = engine.run(&[frames], || self.graph(), &[("mel", &input)])?;
        out.remove(0).to_f32_vec().map_err(Error::from)
    }
}

/// `x · Wᵀ + bias`, as WebNN `gemm` with `bTranspose`.
fn linear(b: &mut GraphBuilder, x: Operand, p: &Param, name: &str) -> Result<Operand> {
    let w = b.constant(&format!("{name}.weight"), p.weight.clone())?;
    let bias = b.constant(&format!("{name}.bias"), p.bias.clone())?;
    Ok(b.gemm(x, w, GemmOptions { c: Some(bias), b_transpose: true, ..Default::default() })?)
}

/// LayerNorm over the last axis, Whisper's epsilon 1e-5.
fn norm(b: &mut GraphBuilder, x: Operand, p: &Param, name: &str) -> Result<Operand> {
    let scale = b.constant(&format!("{name}.weight"), p.weight.clone())?;
    let bias = b.constant(&format!("{name}.bias"), p.bias.clone())?;
    let options = LayerNormOptions { scale: Some(scale), bias: Some(bias), axes: Some(vec![1]), epsilon: Some(1e-5) };
    Ok(b.layer_normalization(x, options)?)
}

fn values(tensor: &Tensor) -> Result<&[f32]> {
    tensor.as_f32().ok_or_else(|| Error::Backend("a Whisper weight did not load as float32".into()))
}
