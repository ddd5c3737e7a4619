//! The Llama family (SmolLM2, TinyLlama, Llama 2/3, Mistral, Qwen2):
//! pre-norm blocks of RMSNorm → grouped-query attention with rotary
//! positions → residual, RMSNorm → SwiGLU feed-forward → residual; a final
//! RMSNorm and the output projection (often tied to the embedding).

use super::config::DecoderConfig;
use super::ops::DecoderOps;
use super::weights::WeightFile;
use super::Decoder;
use crate::error::{Error, Result};
use ipfs_accelerate_tensor::quant::QuantMatrix;

/// Tensor naming of the file the weights come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    /// llama.cpp's GGUF names (`blk.0.attn_q.weight`).
    Gguf,
    /// Hugging Face names (`model.layers.0.self_attn.q_proj.weight`).
    HuggingFace,
}

/// One transformer block's weights.
struct Block<O: DecoderOps> {
    attn_norm: O::Vector,
    /// Q, K and V (with Qwen2's biases), fused where their types allow.
    qkv: Projections<O>,
    out: O::Matrix,
    ffn_norm: O::Vector,
    /// The SwiGLU gate and up projections, fused likewise.
    gate_up: Projections<O>,
    down: O::Matrix,
}

/// Projections of one input, concatenated by rows into as few matrices as
/// their storage types allow: one matrix-vector product instead of three
/// (Q, K, V) or two (gate, up) per token, then a split of the columns.
struct Projections<O: DecoderOps> {
    /// Each fused matrix, its bias, and the widths of the parts it holds.
    groups: Vec<FusedGroup<O>>,
}

impl<O: DecoderOps> Projections<O> {
    /// Fuses consecutive parts of the same type.
    fn new(ops: &mut O, parts: Vec<(QuantMatrix, Option<Vec<f32>>)>) -> Result<Self> {
        let mut groups = Vec::new();
        let mut pending: Vec<(QuantMatrix, Option<Vec<f32>>)> = Vec::new();
        let mut flush = |ops: &mut O, pending: &mut Vec<(QuantMatrix, Option<Vec<f32>>)>| -> Result<()> {
            if pending.is_empty() {
                return Ok(());
            }
            let widths: Vec<usize> = pending.iter().map(|(m, _)| m.rows()).collect();
            let matrices: Vec<&QuantMatrix> = pending.iter().map(|(m, _)| m).collect();
            let fused = concat_rows(&matrices)?;
            let bias = if pending.iter().any(|(_, b)| b.is_some()) {
                let mut all = Vec::new();
                for (m, b) in pending.iter() {
                    match b {
                        Some(b) => all.extend_from_slice(b),
                        None => all.extend(std::iter::repeat_n(0.0, m.rows())),
                    }
                }
                Some(ops.vector(&all)?)
            } else {
                None
            };
            groups.push((ops.matrix(&fused)?, bias, widths));
            pending.clear();
            Ok(())
        };
        for part in parts {
            if pending.last().is_some_and(|(m, _)| m.dtype() != part.0.dtype()) {
                flush(ops, &mut pending)?;
            }
            pending.push(part);
        }
        flush(ops, &mut pending)?;
        Ok(Projections { groups })
    }

    /// Every part applied to `x`, in order.
    fn apply(&self, ops: &mut O, x: &O::Act) -> Result<Vec<O::Act>> {
        let mut out = Vec::new();
        for (matrix, bias, widths) in &self.groups {
            let y = ops.linear(x, matrix, bias.as_ref())?;
            if widths.len() == 1 {
                out.push(y);
            } else {
                out.extend(ops.split_columns(&y, widths)?);
            }
        }
        Ok(out)
    }
}

/// One fused matrix, its bias, and the widths of the parts it holds.
type FusedGroup<O> = (<O as DecoderOps>::Matrix, Option<<O as DecoderOps>::Vector>, Vec<usize>);

/// Matrices of one type and width stacked by rows (rows are independent
/// runs of blocks, so the bytes simply concatenate).
fn concat_rows(parts: &[&QuantMatrix]) -> Result<QuantMatrix> {
    if let [one] = parts {
        return Ok((*one).clone());
    }
    let first = parts[0];
    let mut bytes = Vec::with_capacity(parts.iter().map(|m| m.bytes().len()).sum());
    for m in parts {
        if m.cols() != first.cols() || m.dtype() != first.dtype() {
            return Err(Error::Backend("fused projections must share their type and width".into()));
        }
        bytes.extend_from_slice(m.bytes());
    }
    let rows = parts.iter().map(|m| m.rows()).sum();
    Ok(QuantMatrix::new(first.dtype(), rows, first.cols(), bytes.into())?)
}

/// A Llama-family model resident on backend `O`.
pub struct Llama<O: DecoderOps> {
    config: DecoderConfig,
    embedding: O::Matrix,
    blocks: Vec<Block<O>>,
    final_norm: O::Vector,
    /// `None` when the output projection is tied to the embedding.
    output: Option<O::Matrix>,
}

impl<O: DecoderOps> Llama<O> {
    /// Loads the weights of `config` from `file` onto `ops`.
    pub fn load(ops: &mut O, file: &WeightFile, config: &DecoderConfig, naming: Naming) -> Result<Self> {
        let c = config;
        let (d, q_width, kv_width, ff) =
            (c.hidden_size, c.heads * c.head_dim, c.kv_heads * c.head_dim, c.intermediate_size);
        let name = |layer: Option<usize>, part: &str| tensor_name(naming, layer, part);
        let matrix = |ops: &mut O, n: String, rows: usize, cols: usize| -> Result<O::Matrix> {
            ops.matrix(&file.matrix(&n, rows, cols, false)?)
        };
        let embedding = matrix(ops, name(None, "embed"), c.vocab_size, d)?;
        // Not preallocated: the layer count comes from the file, and a missing
        // tensor ends the loop long before a lying count matters.
        let mut blocks = Vec::new();
        for l in 0..c.layers {
            let at = Some(l);
            let bias = |part: &str, width: usize| -> Result<Option<Vec<f32>>> {
                let n = name(at, part);
                if file.has(&n) {
                    Ok(Some(file.vector(&n, width)?))
                } else {
                    Ok(None)
                }
            };
            let qkv = vec![
                (file.matrix(&name(at, "q"), q_width, d, false)?, bias("q_bias", q_width)?),
                (file.matrix(&name(at, "k"), kv_width, d, false)?, bias("k_bias", kv_width)?),
                (file.matrix(&name(at, "v"), kv_width, d, false)?, bias("v_bias", kv_width)?),
            ];
            let gate_up = vec![
                (file.matrix(&name(at, "gate"), ff, d, false)?, None),
                (file.matrix(&name(at, "up"), ff, d, false)?, None),
            ];
            blocks.push(Block {
                attn_norm: ops.vector(&file.vector(&name(at, "attn_norm"), d)?)?,
                qkv: Projections::new(ops, qkv)?,
                out: matrix(ops, name(at, "o"), d, q_width)?,
                ffn_norm: ops.vector(&file.vector(&name(at, "ffn_norm"), d)?)?,
                gate_up: Projections::new(ops, gate_up)?,
                down: matrix(ops, name(at, "down"), d, ff)?,
            });
        }
        let final_norm = ops.vector(&file.vector(&name(None, "norm"), d)?)?;
        let output_name = name(None, "output");
        let output = if file.has(&output_name) { Some(matrix(ops, output_name, c.vocab_size, d)?) } else { None };
        Ok(Llama { config: config.clone(), embedding, blocks, final_norm, output })
    }
}

impl<O: DecoderOps> Decoder<O> for Llama<O> {
    fn config(&self) -> &DecoderConfig {
        &self.config
    }

    fn forward(&self, ops: &mut O, cache: &mut O::Cache, tokens: &[u32], start: usize) -> Result<Vec<f32>> {
        let c = &self.config;
        let rope = c.rope.as_ref().ok_or_else(|| Error::Backend("a Llama model needs rotary embeddings".into()))?;
        let mut x = ops.embed(&self.embedding, tokens)?;
        for (layer, b) in self.blocks.iter().enumerate() {
            // Attention.
            let h = ops.rms_norm(&x, &b.attn_norm, c.norm_eps)?;
            let mut qkv = b.qkv.apply(ops, &h)?.into_iter();
            let (Some(mut q), Some(mut k), Some(v)) = (qkv.next(), qkv.next(), qkv.next()) else {
                return Err(Error::Backend("the QKV projection did not give three parts".into()));
            };
            ops.rope(&mut q, c.heads, rope, start)?;
            ops.rope(&mut k, c.kv_heads, rope, start)?;
            let attended = ops.attention(&q, &k, &v, cache, layer, start, c.heads)?;
            let projected = ops.linear(&attended, &b.out, None)?;
            ops.add_assign(&mut x, &projected)?;
            // Feed-forward (SwiGLU).
            let h = ops.rms_norm(&x, &b.ffn_norm, c.norm_eps)?;
            let mut gate_up = b.gate_up.apply(ops, &h)?.into_iter();
            let (Some(gate), Some(up)) = (gate_up.next(), gate_up.next()) else {
                return Err(Error::Backend("the gate/up projection did not give two parts".into()));
            };
            let activated = ops.silu_mul(&gate, &up)?;
            let down = ops.linear(&activated, &b.down, None)?;
            ops.add_assign(&mut x, &down)?;
        }
        // Only the last position's logits are needed to choose the next token.
        let last = ops.last_row(&x)?;
        let normed = ops.rms_norm(&last, &self.final_norm, c.norm_eps)?;
        ops.logits(&normed, self.output.as_ref().unwrap_or(&self.embedding))
    }
}

/// The file's name for a tensor: `layer` is `None` for the model-level ones
/// (`embed`, `norm`, `output`).
fn tensor_name(naming: Naming, layer: Option<usize>, part: &str) -> String {
    match naming {
        Naming::Gguf => {
            let short = match part {
                "embed" => return "token_embd.weight".into(),
                "norm" => return "output_norm.weight".into(),
                "output" => return "output.weight".into(),
                "attn_norm" => "attn_norm.weight",
                "q" => "attn_q.weight",
                "k" => "attn_k.weight",
                "v" => "attn_v.weight",
                "q_bias" => "attn_q.bias",
                "k_bias" => "attn_k.bias",
                "v_bias" => "attn_v.bias",
                "o" => "attn_output.weight",
                "ffn_norm" => "ffn_norm.weight",
                "gate" => "ffn_gate.weight",
                "up" => "ffn_up.weight",
                "down" => "ffn_down.weight",
                other => other,
            };
            format!("blk.{}.{short}", layer.unwrap_or(0))
        }
        Naming::HuggingFace => {
            let short = match part {
                "embed" => return "model.embed_tokens.weight".into(),
                "norm" => return "model.norm.weight".into(),
                "output" => return "lm_head.weight".into(),
                "attn_norm" => "input_layernorm.weight",
                "q" => "self_attn.q_proj.weight",
                "k" => "self_attn.k_proj.weight",
                "v" => "self_attn.v_proj.weight",
                "q_bias" => "self_attn.q_proj.bias",
                "k_bias" => "self_attn.k_proj.bias",
                "v_bias" => "self_attn.v_proj.bias",
                "o" => "self_attn.o_proj.weight",
                "ffn_norm" => "post_attention_layernorm.weight",
                "gate" => "mlp.gate_proj.weight",
                "up" => "mlp.up_proj.weight",
                "down" => "mlp.down_proj.weight",
                other => other,
            };
            format!("model.layers.{}.{short}", layer.unwrap_or(0))
        }
    }
}
