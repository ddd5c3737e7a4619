//! GPT-2: learned position embeddings; pre-norm blocks of LayerNorm →
//! multi-head attention (one fused QKV projection with biases) → residual,
//! LayerNorm → GELU (tanh) MLP → residual; a final LayerNorm and the output
//! projection tied to the token embedding.

use super::config::DecoderConfig;
use super::ops::DecoderOps;
use super::weights::WeightFile;
use super::Decoder;
use crate::error::Result;

struct Block<O: DecoderOps> {
    ln1: (O::Vector, O::Vector),
    qkv: O::Matrix,
    qkv_bias: O::Vector,
    proj: O::Matrix,
    proj_bias: O::Vector,
    ln2: (O::Vector, O::Vector),
    fc: O::Matrix,
    fc_bias: O::Vector,
    fc_proj: O::Matrix,
    fc_proj_bias: O::Vector,
}

/// A GPT-2 model resident on backend `O`.
pub struct Gpt2<O: DecoderOps> {
    config: DecoderConfig,
    tokens: O::Matrix,
    positions: O::Matrix,
    blocks: Vec<Block<O>>,
    final_norm: (O::Vector, O::Vector),
}

impl<O: DecoderOps> Gpt2<O> {
    /// Loads GPT-2 weights from a Hugging Face safetensors file (names with
    /// or without the `transformer.` prefix; Conv1D weights are stored
    /// `[in, out]`).
    pub fn load(ops: &mut O, file: &WeightFile, config: &DecoderConfig) -> Result<Self> {
        let c = config;
        let d = c.hidden_size;
        let prefix = if file.has("transformer.wte.weight") { "transformer." } else { "" };
        let n = |s: String| format!("{prefix}{s}");
        let vector = |ops: &mut O, name: String, len: usize| ops.vector(&file.vector(&n(name), len)?);
        let norm = |ops: &mut O, name: &str| -> Result<(O::Vector, O::Vector)> {
            Ok((vector(ops, format!("{name}.weight"), d)?, vector(ops, format!("{name}.bias"), d)?))
        };
        let conv = |ops: &mut O, name: String, inputs: usize, outputs: usize| -> Result<O::Matrix> {
            ops.matrix(&file.matrix(&n(name), outputs, inputs, true)?)
        };
        let tokens = ops.matrix(&file.matrix(&n("wte.weight".into()), c.vocab_size, d, false)?)?;
        let positions = ops.matrix(&file.matrix(&n("wpe.weight".into()), c.context_length, d, false)?)?;
        let ff = c.intermediate_size;
        // Not preallocated: the layer count comes from the file, and a missing
        // tensor ends the loop long before a lying count matters.
        let mut blocks = Vec::new();
        for l in 0..c.layers {
            let h = format!("h.{l}");
            blocks.push(Block {
                ln1: norm(ops, &format!("{h}.ln_1"))?,
                qkv: conv(ops, format!("{h}.attn.c_attn.weight"), d, 3 * d)?,
                qkv_bias: ops.vector(&file.vector(&n(format!("{h}.attn.c_attn.bias")), 3 * d)?)?,
                proj: conv(ops, format!("{h}.attn.c_proj.weight"), d, d)?,
                proj_bias: ops.vector(&file.vector(&n(format!("{h}.attn.c_proj.bias")), d)?)?,
                ln2: norm(ops, &format!("{h}.ln_2"))?,
                fc: conv(ops, format!("{h}.mlp.c_fc.weight"), d, ff)?,
                fc_bias: ops.vector(&file.vector(&n(format!("{h}.mlp.c_fc.bias")), ff)?)?,
                fc_proj: conv(ops, format!("{h}.mlp.c_proj.weight"), ff, d)?,
                fc_proj_bias: ops.vector(&file.vector(&n(format!("{h}.mlp.c_proj.bias")), d)?)?,
            });
        }
        let final_norm = norm(ops, "ln_f")?;
        Ok(Gpt2 { config: config.clone(), tokens, positions, blocks, final_norm })
    }
}

impl<O: DecoderOps> Decoder<O> for Gpt2<O> {
    fn config(&self) -> &DecoderConfig {
        &self.config
    }

    fn forward(&self, ops: &mut O, cache: &mut O::Cache, tokens: &[u32], start: usize) -> Result<Vec<f32>> {
        let c = &self.config;
        let eps = c.norm_eps;
        let d = c.hidden_size;
        let mut x = ops.embed(&self.tokens, tokens)?;
        let positions: Vec<u32> = (start..start + tokens.len()).map(|p| p as u32).collect();
        let pos = ops.embed(&self.positions, &positions)?;
        ops.add_assign(&mut x, &pos)?;
        for (layer, b) in self.blocks.iter().enumerate() {
            let h = ops.layer_norm(&x, &b.ln1.0, &b.ln1.1, eps)?;
            let qkv = ops.linear(&h, &b.qkv, Some(&b.qkv_bias))?;
            let parts = ops.split_columns(&qkv, &[d, d, d])?;
            let attended = ops.attention(&parts[0], &parts[1], &parts[2], cache, layer, start, c.heads)?;
            let projected = ops.linear(&attended, &b.proj, Some(&b.proj_bias))?;
            ops.add_assign(&mut x, &projected)?;
            let h = ops.layer_norm(&x, &b.ln2.0, &b.ln2.1, eps)?;
            let up = ops.linear(&h, &b.fc, Some(&b.fc_bias))?;
            let activated = ops.gelu_tanh(&up)?;
            let down = ops.linear(&activated, &b.fc_proj, Some(&b.fc_proj_bias))?;
            ops.add_assign(&mut x, &down)?;
        }
        let last = ops.last_row(&x)?;
        let normed = ops.layer_norm(&last, &self.final_norm.0, &self.final_norm.1, eps)?;
        ops.logits(&normed, &self.tokens)
    }
}
