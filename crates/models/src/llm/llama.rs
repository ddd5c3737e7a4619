//! The Llama family (SmolLM2, TinyLlama, Llama 2/3, Mistral, Qwen2):
//! pre-norm blocks of RMSNorm → grouped-query attention with rotary
//! positions → residual, RMSNorm → SwiGLU feed-forward → residual; a final
//! RMSNorm and the output projection (often tied to the embedding).

use super::config::DecoderConfig;
use super::ops::DecoderOps;
use super::weights::WeightFile;
use super::Decoder;
use crate::error::{Error, Result};

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
    q: O::Matrix,
    k: O::Matrix,
    v: O::Matrix,
    /// Qwen2 has biases on the Q, K and V projections.
    qkv_bias: Option<[O::Vector; 3]>,
    out: O::Matrix,
    ffn_norm: O::Vector,
    gate: O::Matrix,
    up: O::Matrix,
    down: O::Matrix,
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
        let mut blocks = Vec::with_capacity(c.layers);
        for l in 0..c.layers {
            let at = Some(l);
            let qkv_bias = if file.has(&name(at, "q_bias")) {
                Some([
                    ops.vector(&file.vector(&name(at, "q_bias"), q_width)?)?,
                    ops.vector(&file.vector(&name(at, "k_bias"), kv_width)?)?,
                    ops.vector(&file.vector(&name(at, "v_bias"), kv_width)?)?,
                ])
            } else {
                None
            };
            blocks.push(Block {
                attn_norm: ops.vector(&file.vector(&name(at, "attn_norm"), d)?)?,
                q: matrix(ops, name(at, "q"), q_width, d)?,
                k: matrix(ops, name(at, "k"), kv_width, d)?,
                v: matrix(ops, name(at, "v"), kv_width, d)?,
                qkv_bias,
                out: matrix(ops, name(at, "o"), d, q_width)?,
                ffn_norm: ops.vector(&file.vector(&name(at, "ffn_norm"), d)?)?,
                gate: matrix(ops, name(at, "gate"), ff, d)?,
                up: matrix(ops, name(at, "up"), ff, d)?,
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
            let bias = |i: usize| b.qkv_bias.as_ref().map(|biases| &biases[i]);
            let mut q = ops.linear(&h, &b.q, bias(0))?;
            let mut k = ops.linear(&h, &b.k, bias(1))?;
            let v = ops.linear(&h, &b.v, bias(2))?;
            ops.rope(&mut q, c.heads, rope, start)?;
            ops.rope(&mut k, c.kv_heads, rope, start)?;
            let attended = ops.attention(&q, &k, &v, cache, layer, start, c.heads)?;
            let projected = ops.linear(&attended, &b.out, None)?;
            ops.add_assign(&mut x, &projected)?;
            // Feed-forward (SwiGLU).
            let h = ops.rms_norm(&x, &b.ffn_norm, c.norm_eps)?;
            let gate = ops.linear(&h, &b.gate, None)?;
            let up = ops.linear(&h, &b.up, None)?;
            let activated = ops.silu_mul(&gate, &up)?;
            let down = ops.linear(&activated, &b.down, None)?;
            ops.add_assign(&mut x, &down)?;
        }
        // Only the last position's logits are needed to choose the next token.
        let last = ops.last_row(&x)?;
        let normed = ops.rms_norm(&last, &self.final_norm, c.norm_eps)?;
        let logits = ops.linear(&normed, self.output.as_ref().unwrap_or(&self.embedding), None)?;
        ops.read(&logits)
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
