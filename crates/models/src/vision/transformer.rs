//! Building blocks shared by the vision transformers (ViT, both CLIP towers):
//! the patch embedding, the pre-norm encoder layer, and the weight loading
//! helpers they use.
//!
//! Both models follow the same layer as transformers writes it
//! (`ViTLayer`, `CLIPEncoderLayer`): `x + attn(norm1(x))`, then
//! `x + mlp(norm2(x))`. Only the weight names and the activation differ,
//! so the names come in as [`LayerNames`].

use crate::error::{Error, Result};
use crate::safetensors_file::SafetensorsFile;
use ipfs_accelerate_tensor::graph::{AttentionOptions, AttentionSegment};
use ipfs_accelerate_tensor::{GemmOptions, GraphBuilder, LayerNormOptions, Operand, Tensor};

/// A linear layer as PyTorch stores it: `weight [out, in]`, optional `bias [out]`.
pub(crate) struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

/// LayerNorm parameters.
pub(crate) struct Norm {
    pub weight: Tensor,
    pub bias: Tensor,
}

/// The feed-forward activation named by `hidden_act`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Activation {
    /// Exact (erf) GELU, transformers' `"gelu"`.
    Gelu,
    /// `x * sigmoid(1.702 x)`, transformers' `"quick_gelu"` (OpenAI CLIP).
    QuickGelu,
}

impl Activation {
    /// Parses `hidden_act` from `config.json`; `what` names the config for errors.
    pub fn parse(name: &str, what: &str) -> Result<Self> {
        match name {
            "gelu" => Ok(Activation::Gelu),
            "quick_gelu" => Ok(Activation::QuickGelu),
            other => Err(Error::InvalidOption(format!(
                "{what} hidden_act {other:?} is not supported (supported: gelu, quick_gelu)"
            ))),
        }
    }
}

/// One pre-norm encoder layer, Q, K and V fused into one `[3h, h]` linear.
pub(crate) struct EncoderLayer {
    norm1: Norm,
    qkv: Linear,
    out: Linear,
    norm2: Norm,
    fc1: Linear,
    fc2: Linear,
}

/// The names of a layer's weights, relative to the layer's prefix.
pub(crate) struct LayerNames {
    pub norm1: &'static str,
    pub q: &'static str,
    pub k: &'static str,
    pub v: &'static str,
    pub out: &'static str,
    pub norm2: &'static str,
    pub fc1: &'static str,
    pub fc2: &'static str,
}

/// How the layers of one encoder run.
pub(crate) struct EncoderSpec {
    pub hidden: usize,
    pub heads: usize,
    pub activation: Activation,
    pub eps: f32,
    pub causal: bool,
}

impl EncoderSpec {
    /// Checks that the heads divide the width (a config error otherwise).
    pub fn check(&self, what: &str) -> Result<()> {
        if self.heads == 0 || !self.hidden.is_multiple_of(self.heads) {
            return Err(Error::InvalidOption(format!(
                "{what} hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden, self.heads
            )));
        }
        Ok(())
    }
}

/// Reads weights by name from one safetensors file.
pub(crate) struct Loader<'a> {
    pub file: &'a SafetensorsFile,
}

impl Loader<'_> {
    /// Tensor `name` as float32 of exactly this shape.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.file.f32(name, shape)
    }

    /// `name.weight [out, in]` and, when `bias`, `name.bias [out]`.
    pub fn linear(&self, name: &str, out: usize, inp: usize, bias: bool) -> Result<Linear> {
        Ok(Linear {
            weight: self.tensor(&format!("{name}.weight"), &[out, inp])?,
            bias: if bias { Some(self.tensor(&format!("{name}.bias"), &[out])?) } else { None },
        })
    }

    /// `name.weight` and `name.bias`, both `[dim]`.
    pub fn norm(&self, name: &str, dim: usize) -> Result<Norm> {
        Ok(Norm {
            weight: self.tensor(&format!("{name}.weight"), &[dim])?,
            bias: self.tensor(&format!("{name}.bias"), &[dim])?,
        })
    }

    /// A conv2d patch embedding `[hidden, channels, patch, patch]` as the
    /// `[hidden, channels * patch²]` matrix the patches are multiplied by.
    pub fn patch_weight(&self, name: &str, hidden: usize, channels: usize, patch: usize) -> Result<Tensor> {
        let w = self.tensor(name, &[hidden, channels, patch, patch])?;
        Ok(w.reshape([hidden, channels * patch * patch])?)
    }

    /// The layer under `prefix` (which ends with a dot). Without `qkv_bias`
    /// the fused bias is zero, which is what a bias-free projection computes.
    pub fn layer(
        &self,
        prefix: &str,
        names: &LayerNames,
        hidden: usize,
        intermediate: usize,
        qkv_bias: bool,
    ) -> Result<EncoderLayer> {
        let h = hidden;
        let n = |s: &str| format!("{prefix}{s}");
        let q = self.linear(&n(names.q), h, h, qkv_bias)?;
        let k = self.linear(&n(names.k), h, h, qkv_bias)?;
        let v = self.linear(&n(names.v), h, h, qkv_bias)?;
        let mut weight = Vec::with_capacity(3 * h * h);
        let mut bias = vec![0.0f32; 3 * h];
        for (i, part) in [&q, &k, &v].into_iter().enumerate() {
            weight.extend_from_slice(f32s(&part.weight));
            if let Some(b) = &part.bias {
                bias[i * h..(i + 1) * h].copy_from_slice(f32s(b));
            }
        }
        Ok(EncoderLayer {
            norm1: self.norm(&n(names.norm1), h)?,
            qkv: Linear {
                weight: Tensor::from_f32([3 * h, h], &weight)?,
                bias: Some(Tensor::from_f32([3 * h], &bias)?),
            },
            out: self.linear(&n(names.out), h, h, true)?,
            norm2: self.norm(&n(names.norm2), h)?,
            fc1: self.linear(&n(names.fc1), intermediate, h, true)?,
            fc2: self.linear(&n(names.fc2), h, intermediate, true)?,
        })
    }
}

/// The float32 values of a loaded weight (always float32: see
/// [`SafetensorsFile::f32`]).
pub(crate) fn f32s(t: &Tensor) -> &[f32] {
    t.as_f32().expect("loaded weights are float32")
}

/// `x · Wᵀ (+ b)`, as WebNN `gemm` with `bTranspose`.
pub(crate) fn linear(b: &mut GraphBuilder, x: Operand, linear: &Linear, name: &str) -> Result<Operand> {
    let w = b.constant(&format!("{name}.weight"), linear.weight.clone())?;
    let c = match &linear.bias {
        Some(bias) => Some(b.constant(&format!("{name}.bias"), bias.clone())?),
        None => None,
    };
    Ok(b.gemm(x, w, GemmOptions { c, b_transpose: true, ..Default::default() })?)
}

/// LayerNorm over the last axis of a `[rows, dim]` operand.
pub(crate) fn norm(b: &mut GraphBuilder, x: Operand, norm: &Norm, eps: f32, name: &str) -> Result<Operand> {
    let scale = b.constant(&format!("{name}.weight"), norm.weight.clone())?;
    let bias = b.constant(&format!("{name}.bias"), norm.bias.clone())?;
    let axes = Some(vec![b.desc(x).shape.rank() - 1]);
    Ok(b.layer_normalization(x, LayerNormOptions { scale: Some(scale), bias: Some(bias), axes, epsilon: Some(eps) })?)
}

/// The activation on `x`.
fn activate(b: &mut GraphBuilder, x: Operand, activation: Activation) -> Result<Operand> {
    Ok(match activation {
        Activation::Gelu => b.gelu(x)?,
        Activation::QuickGelu => {
            let k = b.scalar(1.702);
            let scaled = b.mul(x, k)?;
            let gate = b.sigmoid(scaled)?;
            b.mul(x, gate)?
        }
    })
}

/// One encoder layer on the packed `[tokens, hidden]` operand `x`, whose
/// sequences have the lengths `seq_lens`; weight constants are named
/// `{name}.…` (unique per tower and layer, since the WebGPU engine shares
/// device weights by name).
pub(crate) fn encoder_layer(
    b: &mut GraphBuilder,
    x: Operand,
    layer: &EncoderLayer,
    spec: &EncoderSpec,
    seq_lens: &[usize],
    name: &str,
) -> Result<Operand> {
    let h = spec.hidden;
    let total: usize = seq_lens.iter().sum();
    let n = |s: &str| format!("{name}.{s}");
    let normed = norm(b, x, &layer.norm1, spec.eps, &n("norm1"))?;
    let qkv = linear(b, normed, &layer.qkv, &n("qkv"))?;
    let q = b.slice(qkv, &[0, 0], &[total, h])?;
    let k = b.slice(qkv, &[0, h], &[total, h])?;
    let v = b.slice(qkv, &[0, 2 * h], &[total, h])?;
    let head_dim = h / spec.heads;
    let options = AttentionOptions {
        num_heads: spec.heads,
        num_kv_heads: spec.heads,
        head_dim,
        scale: 1.0 / (head_dim as f32).sqrt(),
        causal: spec.causal,
        segments: seq_lens.iter().map(|&len| AttentionSegment { q_len: len, kv_len: len }).collect(),
        has_mask: false,
    };
    let context = b.attention(q, k, v, options)?;
    let attn = linear(b, context, &layer.out, &n("out"))?;
    let x = b.add(attn, x)?;
    let normed = norm(b, x, &layer.norm2, spec.eps, &n("norm2"))?;
    let inner = linear(b, normed, &layer.fc1, &n("fc1"))?;
    let inner = activate(b, inner, spec.activation)?;
    let out = linear(b, inner, &layer.fc2, &n("fc2"))?;
    Ok(b.add(out, x)?)
}

/// The shape of a patch embedding: square images cut into square patches.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Patches {
    pub channels: usize,
    pub image_size: usize,
    pub patch_size: usize,
}

impl Patches {
    /// Checks the sizes from `config.json` (`what` names the config).
    pub fn check(&self, what: &str) -> Result<()> {
        if self.patch_size == 0 || self.image_size == 0 || !self.image_size.is_multiple_of(self.patch_size) {
            return Err(Error::InvalidOption(format!(
                "{what} image_size {} is not a positive multiple of patch_size {}",
                self.image_size, self.patch_size
            )));
        }
        if self.channels == 0 {
            return Err(Error::InvalidOption(format!("{what} num_channels must be at least 1")));
        }
        Ok(())
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Tokens per image: one per patch plus the class token.
    pub fn tokens(&self) -> usize {
        self.grid() * self.grid() + 1
    }

    /// The embedded tokens of `n` images, `[n * tokens, hidden]`: the conv
    /// with kernel = stride = patch (cut into patches by reshape/transpose,
    /// then one gemm), the class token in front of each image's patches,
    /// and the position embeddings added.
    ///
    /// `pixels` is `[n, channels, image, image]`; `weight` is
    /// `[hidden, channels * patch²]` ([`Loader::patch_weight`]), `cls`
    /// `[hidden]` and `positions` `[tokens, hidden]`.
    #[allow(clippy::too_many_arguments)]
    pub fn embed(
        &self,
        b: &mut GraphBuilder,
        pixels: Operand,
        n: usize,
        hidden: usize,
        projection: &Linear,
        cls: &Tensor,
        positions: &Tensor,
        name: &str,
    ) -> Result<Operand> {
        let (c, g, p) = (self.channels, self.grid(), self.patch_size);
        // [n, c, gy, py, gx, px] → [n, gy, gx, c, py, px]: each row one patch,
        // in the (c, py, px) order of the conv weight, patches row-major as
        // the conv output flattens them.
        let x = b.reshape(pixels, &[n, c, g, p, g, p])?;
        let x = b.transpose(x, &[0, 2, 4, 1, 3, 5])?;
        let x = b.reshape(x, &[n * g * g, c * p * p])?;
        let x = linear(b, x, projection, &format!("{name}.patch"))?;
        // The class token goes in front of each image's patches. WebGPU
        // concatenates only along the outermost axis, so the class row is
        // appended once after all patch rows and a gather puts every row in
        // place: row `i * tokens` is the class token, then image i's patches.
        let cls = b.constant(&format!("{name}.cls"), cls.reshape([1, hidden])?)?;
        let rows = b.concat(&[x, cls], 0)?;
        let patches = g * g;
        let order: Vec<i32> = (0..n)
            .flat_map(|i| std::iter::once(n * patches).chain(i * patches..(i + 1) * patches))
            .map(|r| r as i32)
            .collect();
        let order = b.constant_inline(Tensor::from_i32([order.len()], &order)?);
        let x = b.gather(rows, order, 0)?;
        let x = b.reshape(x, &[n, self.tokens(), hidden])?;
        let pos = b.constant(&format!("{name}.positions"), positions.clone())?;
        let x = b.add(x, pos)?;
        Ok(b.reshape(x, &[n * self.tokens(), hidden])?)
    }
}

/// The class-token rows of `n` images of `tokens` rows each: `[n, hidden]`.
pub(crate) fn class_rows(b: &mut GraphBuilder, x: Operand, n: usize, tokens: usize, hidden: usize) -> Result<Operand> {
    let x = b.reshape(x, &[n, tokens, hidden])?;
    let x = b.slice(x, &[0, 0, 0], &[n, 1, hidden])?;
    Ok(b.reshape(x, &[n, hidden])?)
}

/// The softmax of `logits`, computed in float64 for stability.
pub(crate) fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|&e| (e / sum) as f32).collect()
}
