//! The operations a decoder-only transformer needs, as one trait each
//! backend implements.
//!
//! Why not the static-shape graph IR the encoders use: a decode step's
//! shapes change every token (the attention span grows), the KV cache is
//! state that lives across steps on the backend, and the weights stay in
//! their quantized blocks (4/8-bit) with dequantization fused into the
//! matrix-vector products. Compiling a graph per token would cost more than
//! the token itself. So each architecture (`llama.rs`, `gpt2.rs`) is written
//! once against this trait — a small, eager op vocabulary, WebNN-like in its
//! names — and the CPU (`cpu_ops.rs`) and WebGPU backends run it, keeping
//! activations, weights and the cache resident where they compute.
//!
//! Activations are row-major `[rows, cols]` matrices: one row per token.

use crate::error::{Error, Result};
use ipfs_accelerate_tensor::quant::QuantMatrix;

/// How rotary position embedding pairs the dimensions of each head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs `(2i, 2i+1)`: GGUF files (llama.cpp permutes the
    /// query and key weights at conversion so this pairing is correct).
    Interleaved,
    /// Halves `(i, i + d/2)`: Hugging Face checkpoints (`rotate_half`).
    Halves,
}

/// Rotary embedding of one model: the inverse frequency of each pair
/// (scaling variants already applied) and how pairs are formed.
#[derive(Clone, Debug, PartialEq)]
pub struct Rope {
    /// `head_dim / 2` inverse frequencies (fewer when only part of the head
    /// rotates; the remaining dimensions pass through).
    pub inv_freq: Vec<f32>,
    /// Pairing of dimensions.
    pub style: RopeStyle,
    /// Multiplier applied to cos and sin (YaRN's attention factor; 1.0 else).
    pub attention_factor: f32,
}

/// A backend that runs decoder-only transformers.
pub trait DecoderOps {
    /// An activation matrix resident on the backend.
    type Act;
    /// A weight matrix (quantized or not) resident on the backend.
    type Matrix;
    /// A weight vector (norm scales, biases) resident on the backend.
    type Vector;
    /// The key/value cache of one sequence, all layers.
    type Cache;

    /// Short name of the backend (`cpu`, `webgpu`).
    fn name(&self) -> String;

    /// Makes `weights` resident (the bytes are shared, not copied, where the
    /// backend can read them in place).
    fn matrix(&mut self, weights: &QuantMatrix) -> Result<Self::Matrix>;
    /// Makes a vector resident.
    fn vector(&mut self, values: &[f32]) -> Result<Self::Vector>;
    /// An empty cache for `layers` layers of `kv_heads × head_dim` keys and
    /// values, holding at most `capacity` positions.
    fn new_cache(&mut self, layers: usize, kv_heads: usize, head_dim: usize, capacity: usize) -> Result<Self::Cache>;

    /// An activation from host values, row-major `[rows, cols]` (an encoder's
    /// output handed to a decoder).
    fn upload(&mut self, values: &[f32], rows: usize, cols: usize) -> Result<Self::Act>;
    /// Rows `ids` of `table` (token or position embeddings): `[ids.len(), cols]`.
    fn embed(&mut self, table: &Self::Matrix, ids: &[u32]) -> Result<Self::Act>;
    /// `x / rms(x) * weight` per row.
    fn rms_norm(&mut self, x: &Self::Act, weight: &Self::Vector, eps: f32) -> Result<Self::Act>;
    /// `(x - mean) / sqrt(var + eps) * weight + bias` per row.
    fn layer_norm(&mut self, x: &Self::Act, weight: &Self::Vector, bias: &Self::Vector, eps: f32) -> Result<Self::Act>;
    /// `x · Wᵀ (+ bias)`: `[rows, W.cols] → [rows, W.rows]`.
    fn linear(&mut self, x: &Self::Act, weights: &Self::Matrix, bias: Option<&Self::Vector>) -> Result<Self::Act>;
    /// Splits columns into consecutive parts of the given widths (a fused
    /// QKV projection into Q, K and V).
    fn split_columns(&mut self, x: &Self::Act, widths: &[usize]) -> Result<Vec<Self::Act>>;
    /// Rotates each of `heads` heads of every row; row `r` is at position
    /// `start + r`.
    fn rope(&mut self, x: &mut Self::Act, heads: usize, rope: &Rope, start: usize) -> Result<()>;
    /// Causal attention of `q` (`[n, heads·head_dim]`) over the cache of
    /// `layer` after appending `k` and `v` (`[n, kv_heads·head_dim]`) at
    /// positions `start..start+n`. Grouped-query: query head `h` reads key
    /// head `h / (heads / kv_heads)`. Scale `1/sqrt(head_dim)`.
    // The span (layer, start) and the head count are what every backend
    // needs; a struct for them would only move the same fields.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &mut self,
        q: &Self::Act,
        k: &Self::Act,
        v: &Self::Act,
        cache: &mut Self::Cache,
        layer: usize,
        start: usize,
        heads: usize,
    ) -> Result<Self::Act>;
    /// Attention of every row of `q` (`[n, heads·head_dim]`) over all rows
    /// of `k` and `v` (`[m, kv_heads·head_dim]`), with no mask: an encoder's
    /// self-attention, or a decoder's cross-attention to the encoder output.
    /// Scale `1/sqrt(head_dim)`.
    fn full_attention(&mut self, q: &Self::Act, k: &Self::Act, v: &Self::Act, heads: usize) -> Result<Self::Act>;
    /// `silu(gate) * up`, elementwise (SwiGLU).
    fn silu_mul(&mut self, gate: &Self::Act, up: &Self::Act) -> Result<Self::Act>;
    /// GELU with the tanh approximation (GPT-2's `gelu_new`).
    fn gelu_tanh(&mut self, x: &Self::Act) -> Result<Self::Act>;
    /// Exact GELU, `x · Φ(x)` with the error function (Whisper's, BERT's).
    fn gelu(&mut self, x: &Self::Act) -> Result<Self::Act>;
    /// `x += y`.
    fn add_assign(&mut self, x: &mut Self::Act, y: &Self::Act) -> Result<()>;
    /// The last row, `[1, cols]`.
    fn last_row(&mut self, x: &Self::Act) -> Result<Self::Act>;
    /// Copies an activation to the host, row-major.
    fn read(&mut self, x: &Self::Act) -> Result<Vec<f32>>;
    /// The output projection `x · Wᵀ` read to the host: the logits. A backend
    /// that stores activations narrower than f32 writes these as f32, since
    /// the sampler compares them to each other.
    fn logits(&mut self, x: &Self::Act, weights: &Self::Matrix) -> Result<Vec<f32>> {
        let logits = self.linear(x, weights, None)?;
        self.read(&logits)
    }
}

/// Checks the operands of [`DecoderOps::full_attention`] — `q` `[n, heads ·
/// head_dim]`, `k` and `v` `[m, kv_heads · head_dim]` with `kv_heads`
/// dividing `heads`, `m ≥ 1` — and returns `(head_dim, kv_heads)`.
/// Shapes are `(rows, cols)`.
pub(crate) fn full_attention_dims(
    q: (usize, usize),
    k: (usize, usize),
    v: (usize, usize),
    heads: usize,
) -> Result<(usize, usize)> {
    let head_dim = q.1.checked_div(heads).unwrap_or(0);
    let kv_heads = k.1.checked_div(head_dim).unwrap_or(0);
    let fits = head_dim > 0
        && q.1 == heads * head_dim
        && kv_heads > 0
        && k.1 == kv_heads * head_dim
        && heads.is_multiple_of(kv_heads)
        && v == k
        && k.0 > 0;
    if !fits {
        return Err(shape_error(
            "full_attention",
            format!("q [{}, {}], k [{}, {}], v [{}, {}] do not fit {heads} heads", q.0, q.1, k.0, k.1, v.0, v.1),
        ));
    }
    Ok((head_dim, kv_heads))
}

/// The error every backend reports for operands that do not fit an op.
pub(crate) fn shape_error(op: &str, detail: String) -> Error {
    Error::Backend(format!("{op}: {detail}"))
}

/// `have` columns where an op needs `want`.
pub(crate) fn check_width(op: &str, have: usize, want: usize) -> Result<()> {
    if have != want {
        return Err(shape_error(op, format!("{have} columns where {want} are expected")));
    }
    Ok(())
}

/// Elementwise operands must have the same `[rows, cols]`.
pub(crate) fn check_same_shape(op: &str, a: (usize, usize), b: (usize, usize)) -> Result<()> {
    if a != b {
        return Err(shape_error(op, format!("[{}, {}] and [{}, {}] differ", a.0, a.1, b.0, b.1)));
    }
    Ok(())
}
