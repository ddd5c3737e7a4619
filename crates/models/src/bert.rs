//! BERT-family encoders (BERT, MiniLM, RoBERTa, XLM-RoBERTa) as graphs.
//!
//! Mirrors `BertModel` of Hugging Face transformers
//! (`models/bert/modeling_bert.py`): embeddings (word + position + token type,
//! then LayerNorm) and `num_hidden_layers` post-norm encoder layers. RoBERTa
//! and XLM-R differ only in where position ids start (after the padding id).
//!
//! The graph runs on a packed batch: the tokens of all sequences concatenated,
//! `[total_tokens, hidden]`, so the linear layers never compute on padding and
//! only attention is per sequence (as text-embeddings-inference does).

use crate::config::{BertConfig, BertVariant};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::safetensors_file::SafetensorsFile;
use crate::shard::{self, LayerRange};
use crate::tokenizer::Encoded;
use ipfs_accelerate_tensor::graph::{AttentionOptions, AttentionSegment};
use ipfs_accelerate_tensor::{DType, GemmOptions, Graph, GraphBuilder, LayerNormOptions, Operand, Tensor, Weights};

/// Feed-forward activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Activation {
    Gelu,
    Relu,
}

struct Linear {
    weight: Tensor, // [out, in], as PyTorch stores it
    bias: Tensor,   // [out]
}

struct Norm {
    weight: Tensor,
    bias: Tensor,
}

struct Layer {
    qkv: Linear, // query, key and value fused: [3 * hidden, hidden]
    attn_out: Linear,
    attn_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

/// A loaded BERT-family encoder.
pub struct BertModel {
    cfg: BertConfig,
    variant: BertVariant,
    activation: Activation,
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    embed_norm: Norm,
    layers: Vec<Layer>,
}

/// Weight-name prefixes seen in published checkpoints (task heads add one).
const PREFIXES: [&str; 4] = ["", "bert.", "roberta.", "model."];

struct Loader<'a> {
    file: &'a SafetensorsFile,
    prefix: &'static str,
}

impl Loader<'_> {
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.file.f32(&format!("{}{name}", self.prefix), shape)
    }

    fn linear(&self, name: &str, out: usize, inp: usize) -> Result<Linear> {
        Ok(Linear {
            weight: self.tensor(&format!("{name}.weight"), &[out, inp])?,
            bias: self.tensor(&format!("{name}.bias"), &[out])?,
        })
    }

    /// LayerNorm parameters, named `weight`/`bias` or (old TF ports) `gamma`/`beta`.
    fn norm(&self, name: &str, dim: usize) -> Result<Norm> {
        let full = |s: &str| format!("{}{name}.{s}", self.prefix);
        let (w, b) = if self.file.contains(&full("gamma")) { ("gamma", "beta") } else { ("weight", "bias") };
        Ok(Norm {
            weight: self.tensor(&format!("{name}.{w}"), &[dim])?,
            bias: self.tensor(&format!("{name}.{b}"), &[dim])?,
        })
    }
}

fn concat_rows(parts: &[&Tensor]) -> Result<Tensor> {
    let mut data = Vec::new();
    let mut rows = 0;
    let cols = parts[0].shape().dims().get(1).copied();
    for p in parts {
        data.extend_from_slice(p.as_f32().expect("loaded weights are float32"));
        rows += p.shape().dims()[0];
    }
    let shape: Vec<usize> = match cols {
        Some(c) => vec![rows, c],
        None => vec![rows],
    };
    Ok(Tensor::from_f32(shape, &data)?)
}

impl BertModel {
    /// Loads the weights named by `cfg` from `file`, fusing Q, K and V.
    pub fn load(cfg: BertConfig, variant: BertVariant, file: &SafetensorsFile) -> Result<Self> {
        let activation = match cfg.hidden_act.as_str() {
            "gelu" => Activation::Gelu,
            "relu" => Activation::Relu,
            other => {
                return Err(Error::InvalidOption(format!(
                    "config.json hidden_act {other:?} is not supported yet (supported: gelu, relu)"
                )))
            }
        };
        if cfg.position_embedding_type != "absolute" {
            return Err(Error::InvalidOption(format!(
                "config.json position_embedding_type {:?} is not supported (only \"absolute\")",
                cfg.position_embedding_type
            )));
        }
        if cfg.num_attention_heads == 0 || !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads) {
            return Err(Error::InvalidOption(format!(
                "config.json hidden_size {} is not a multiple of num_attention_heads {}",
                cfg.hidden_size, cfg.num_attention_heads
            )));
        }
        let prefix = PREFIXES
            .into_iter()
            .find(|p| file.contains(&format!("{p}embeddings.word_embeddings.weight")))
            .ok_or_else(|| Error::Weight {
                name: "embeddings.word_embeddings.weight".into(),
                message: format!("not found in {} (under any of the prefixes {PREFIXES:?})", file.path().display()),
            })?;
        let l = Loader { file, prefix };
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for n in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{n}");
            let q = l.linear(&format!("{p}.attention.self.query"), h, h)?;
            let k = l.linear(&format!("{p}.attention.self.key"), h, h)?;
            let v = l.linear(&format!("{p}.attention.self.value"), h, h)?;
            layers.push(Layer {
                qkv: Linear {
                    weight: concat_rows(&[&q.weight, &k.weight, &v.weight])?,
                    bias: concat_rows(&[&q.bias, &k.bias, &v.bias])?,
                },
                attn_out: l.linear(&format!("{p}.attention.output.dense"), h, h)?,
                attn_norm: l.norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                intermediate: l.linear(&format!("{p}.intermediate.dense"), i, h)?,
                output: l.linear(&format!("{p}.output.dense"), h, i)?,
                output_norm: l.norm(&format!("{p}.output.LayerNorm"), h)?,
            });
        }
        Ok(BertModel {
            word: l.tensor("embeddings.word_embeddings.weight", &[cfg.vocab_size, h])?,
            position: l.tensor("embeddings.position_embeddings.weight", &[cfg.max_position_embeddings, h])?,
            token_type: l.tensor("embeddings.token_type_embeddings.weight", &[cfg.type_vocab_size, h])?,
            embed_norm: l.norm("embeddings.LayerNorm", h)?,
            layers,
            activation,
            variant,
            cfg,
        })
    }

    /// Width of the hidden states.
    pub fn hidden_size(&self) -> usize {
        self.cfg.hidden_size
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }

    /// Number of token types.
    pub fn type_vocab_size(&self) -> usize {
        self.cfg.type_vocab_size
    }

    /// Position id of a sequence's first token: 0 for BERT, `pad_token_id + 1`
    /// for RoBERTa-style models.
    pub fn position_offset(&self) -> usize {
        match self.variant {
            BertVariant::Bert => 0,
            BertVariant::Roberta => self.cfg.pad_token_id.unwrap_or(1) + 1,
        }
    }

    /// The longest sequence the position table allows.
    pub fn max_tokens(&self) -> usize {
        self.cfg.max_position_embeddings.saturating_sub(self.position_offset())
    }

    /// Number of encoder layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// All encoder layers: the range the unsharded model runs.
    pub fn all_layers(&self) -> LayerRange {
        LayerRange { start: 0, end: self.layers.len() }
    }

    /// The encoder graph for a packed batch of sequences of these lengths.
    ///
    /// Inputs (all `int32 [total_tokens]`): `input_ids`, `token_type_ids`,
    /// `position_ids`. Output: `last_hidden_state`, `float32 [total_tokens, hidden]`.
    pub fn graph(&self, seq_lens: &[usize]) -> Result<(Graph, Weights)> {
        self.stage_graph(seq_lens, self.all_layers())
    }

    /// The encoder graph for `batch` sequences padded to `len` tokens each:
    /// the inputs of [`Self::graph`] for `batch * len` tokens, plus
    /// `attention_mask`, `float32 [batch, len]`, 0 for a real token and
    /// [`MASKED`] for padding. One graph serves every batch of up to `batch`
    /// sequences of up to `len` tokens, which is what lets the WebGPU backend
    /// reuse one compiled plan for many batches.
    pub fn padded_graph(&self, batch: usize, len: usize) -> Result<(Graph, Weights)> {
        self.padded_stage_graph(batch, len, self.all_layers())
    }

    /// The graph of one pipeline stage, encoder layers `range`, for a packed
    /// batch of sequences of these lengths. A stage starting at layer 0 has
    /// the inputs of [`Self::graph`] (it runs the embeddings); a later stage
    /// has one input, `hidden_in`, `float32 [total_tokens, hidden]`: the
    /// previous stage's `last_hidden_state`. The full range is exactly
    /// [`Self::graph`].
    pub fn stage_graph(&self, seq_lens: &[usize], range: LayerRange) -> Result<(Graph, Weights)> {
        self.encoder_graph(seq_lens, false, range)
    }

    /// [`Self::stage_graph`] for `batch` sequences padded to `len` tokens,
    /// with the `attention_mask` input of [`Self::padded_graph`]; `hidden_in`
    /// is then `float32 [batch * len, hidden]`.
    pub fn padded_stage_graph(&self, batch: usize, len: usize, range: LayerRange) -> Result<(Graph, Weights)> {
        self.encoder_graph(&vec![len; batch], true, range)
    }

    /// Rejects a layer range this model cannot run, before any graph is built.
    pub(crate) fn check_range(&self, range: LayerRange) -> Result<()> {
        let layers = self.layers.len();
        // The whole model is always runnable, even one without layers
        // (embeddings only), as it was before stages existed.
        if range == self.all_layers() {
            return Ok(());
        }
        if range.start >= range.end {
            return Err(Error::InvalidOption(format!(
                "layer range {range} is empty: a pipeline stage must run at least one of the model's {layers} encoder layers"
            )));
        }
        if range.end > layers {
            return Err(Error::InvalidOption(format!(
                "layer range {range} goes past the model's {layers} encoder layers (valid ranges lie within 0..{layers})"
            )));
        }
        Ok(())
    }

    /// Embeddings (only when `range` starts at layer 0, else the input
    /// `hidden_in`) followed by the layers of `range`. One builder for the
    /// whole model and for every stage, so a sharded pipeline computes
    /// exactly what the unsharded model does.
    fn encoder_graph(&self, seq_lens: &[usize], masked: bool, range: LayerRange) -> Result<(Graph, Weights)> {
        self.check_range(range)?;
        let total: usize = seq_lens.iter().sum();
        let h = self.cfg.hidden_size;
        let heads = self.cfg.num_attention_heads;
        let mut b = GraphBuilder::new();
        let embedded = if range.start == 0 {
            let ids = b.input("input_ids", DType::Int32, [total])?;
            let types = b.input("token_type_ids", DType::Int32, [total])?;
            let positions = b.input("position_ids", DType::Int32, [total])?;
            Embedded::Tokens { ids, types, positions }
        } else {
            Embedded::Hidden(b.input("hidden_in", DType::Float32, [total, h])?)
        };
        let longest = seq_lens.iter().copied().max().unwrap_or(0);
        let mask =
            if masked { Some(b.input("attention_mask", DType::Float32, [seq_lens.len(), longest])?) } else { None };

        let mut hidden = match embedded {
            Embedded::Tokens { ids, types, positions } => {
                let word = b.constant("embeddings.word", self.word.clone())?;
                let position = b.constant("embeddings.position", self.position.clone())?;
                let token_type = b.constant("embeddings.token_type", self.token_type.clone())?;
                let x = b.gather(word, ids, 0)?;
                let p = b.gather(position, positions, 0)?;
                let t = b.gather(token_type, types, 0)?;
                let x = b.add(x, p)?;
                let x = b.add(x, t)?;
                self.norm(&mut b, x, &self.embed_norm, "embeddings.norm")?
            }
            Embedded::Hidden(x) => x,
        };

        let attention = AttentionOptions {
            num_heads: heads,
            num_kv_heads: heads,
            head_dim: h / heads,
            scale: 1.0 / ((h / heads) as f32).sqrt(),
            causal: false,
            segments: seq_lens.iter().map(|&n| AttentionSegment { q_len: n, kv_len: n }).collect(),
            has_mask: masked,
        };
        for (n, layer) in self.layers.iter().enumerate().take(range.end).skip(range.start) {
            let name = |s: &str| format!("layer{n}.{s}");
            let qkv = linear(&mut b, hidden, &layer.qkv, &name("qkv"))?;
            let q = b.slice(qkv, &[0, 0], &[total, h])?;
            let k = b.slice(qkv, &[0, h], &[total, h])?;
            let v = b.slice(qkv, &[0, 2 * h], &[total, h])?;
            let context = match mask {
                Some(mask) => b.attention_masked(q, k, v, mask, attention.clone())?,
                None => b.attention(q, k, v, attention.clone())?,
            };
            let attn = linear(&mut b, context, &layer.attn_out, &name("attn_out"))?;
            let attn = b.add(attn, hidden)?;
            let attn = self.norm(&mut b, attn, &layer.attn_norm, &name("attn_norm"))?;
            let inter = linear(&mut b, attn, &layer.intermediate, &name("intermediate"))?;
            let inter = match self.activation {
                Activation::Gelu => b.gelu(inter)?,
                Activation::Relu => b.relu(inter)?,
            };
            let out = linear(&mut b, inter, &layer.output, &name("output"))?;
            let out = b.add(out, attn)?;
            hidden = self.norm(&mut b, out, &layer.output_norm, &name("output_norm"))?;
        }
        Ok(b.build(&[("last_hidden_state", hidden)])?)
    }

    /// Runs the encoder on a packed batch of tokenized sequences; returns the
    /// last hidden states, `[total_tokens, hidden]`. Position ids restart at
    /// [`Self::position_offset`] for each sequence.
    ///
    /// The CPU runs the packed graph (no compute on padding). The WebGPU
    /// backend runs the padded graph for the batch rounded up to a bucket of
    /// sequences and tokens ([`bucket_sequences`], [`bucket_tokens`]), so a
    /// new batch shape rarely compiles a new plan; the real rows are copied
    /// out afterwards.
    pub fn forward(&self, engine: &Engine, batch: &[Encoded]) -> Result<Tensor> {
        self.forward_stage(engine, batch, self.all_layers(), None)
    }

    /// Runs encoder layers `range` on a batch, as [`Self::forward`] does for
    /// all of them. `hidden` is the packed `float32 [total_tokens, hidden]`
    /// output of the previous stage: required when `range.start > 0`, refused
    /// at 0 (the stage then embeds the tokens itself). Returns this stage's
    /// packed hidden states. Bad ranges and shapes are errors, never panics,
    /// because `hidden` comes from another worker.
    pub fn forward_stage(
        &self,
        engine: &Engine,
        batch: &[Encoded],
        range: LayerRange,
        hidden: Option<&Tensor>,
    ) -> Result<Tensor> {
        self.check_range(range)?;
        for e in batch {
            self.check_tokens(e)?;
        }
        let lens: Vec<usize> = batch.iter().map(|e| e.ids.len()).collect();
        let hidden = match (range.start, hidden) {
            (0, Some(_)) => {
                return Err(Error::InvalidOption(format!(
                    "layer range {range} starts with the embeddings, so it takes no hidden states: pass None"
                )))
            }
            (0, None) => None,
            (_, None) => {
                return Err(Error::InvalidOption(format!(
                    "layer range {range} continues a pipeline: pass the previous stage's hidden states (float32 [total_tokens, {}])",
                    self.cfg.hidden_size
                )))
            }
            (_, Some(t)) => Some(shard::packed_rows(t, &lens, self.cfg.hidden_size, range)?),
        };
        if engine.prefers_padded() {
            self.forward_padded(engine, batch, range, hidden)
        } else {
            self.forward_packed(engine, batch, range, hidden)
        }
    }

    fn check_tokens(&self, e: &Encoded) -> Result<()> {
        if e.ids.len() > self.max_tokens() {
            return Err(Error::InvalidOption(format!(
                "a sequence of {} tokens is longer than the model's {} positions",
                e.ids.len(),
                self.max_tokens()
            )));
        }
        for (&id, &ty) in e.ids.iter().zip(&e.type_ids) {
            if id as usize >= self.cfg.vocab_size || ty as usize >= self.cfg.type_vocab_size {
                return Err(Error::Tokenizer(format!(
                    "token {id} (type {ty}) is outside the model's vocabulary of {}: tokenizer.json does not belong to this model",
                    self.cfg.vocab_size
                )));
            }
        }
        Ok(())
    }

    /// The shape key of a graph of `range` for these dims: the dims alone for
    /// the whole model (as before sharding, so its cached plans keep their
    /// keys), else prefixed by a marker no dim can equal and the range, so a
    /// stage's plan never collides with the model's or another stage's.
    fn shape_key(&self, range: LayerRange, dims: &[usize]) -> Vec<usize> {
        if range == self.all_layers() {
            dims.to_vec()
        } else {
            [&[STAGE_KEY, range.start, range.end][..], dims].concat()
        }
    }

    fn forward_packed(
        &self,
        engine: &Engine,
        batch: &[Encoded],
        range: LayerRange,
        hidden: Option<&[f32]>,
    ) -> Result<Tensor> {
        let lens: Vec<usize> = batch.iter().map(|e| e.ids.len()).collect();
        let total: usize = lens.iter().sum();
        let key = self.shape_key(range, &lens);
        let build = || self.stage_graph(&lens, range);
        let mut out = if let Some(hidden) = hidden {
            let hidden = Tensor::from_f32([total, self.cfg.hidden_size], hidden)?;
            engine.run(&key, build, &[("hidden_in", &hidden)])?
        } else {
            let mut ids = Vec::with_capacity(total);
            let mut types = Vec::with_capacity(total);
            let mut positions = Vec::with_capacity(total);
            let offset = self.position_offset();
            for e in batch {
                ids.extend(e.ids.iter().map(|&id| id as i32));
                types.extend(e.type_ids.iter().map(|&t| t as i32));
                positions.extend((0..e.ids.len()).map(|i| (offset + i) as i32));
            }
            let ids = Tensor::from_i32([total], &ids)?;
            let types = Tensor::from_i32([total], &types)?;
            let positions = Tensor::from_i32([total], &positions)?;
            engine.run(&key, build, &[("input_ids", &ids), ("token_type_ids", &types), ("position_ids", &positions)])?
        };
        Ok(out.remove(0))
    }

    fn forward_padded(
        &self,
        engine: &Engine,
        batch: &[Encoded],
        range: LayerRange,
        hidden: Option<&[f32]>,
    ) -> Result<Tensor> {
        let lens: Vec<usize> = batch.iter().map(|e| e.ids.len()).collect();
        let longest = lens.iter().copied().max().unwrap_or(0);
        let (seqs, len) = (bucket_sequences(batch.len()), bucket_tokens(longest).min(self.max_tokens()));
        let h = self.cfg.hidden_size;
        let mut mask = vec![MASKED; seqs * len];
        for (s, &n) in lens.iter().enumerate() {
            mask[s * len..s * len + n].fill(0.0);
        }
        let mask = Tensor::from_f32([seqs, len], &mask)?;
        let key = self.shape_key(range, &[seqs, len]);
        let build = || self.padded_stage_graph(seqs, len, range);
        let hidden = if let Some(hidden) = hidden {
            // Padding rows are zero and masked out of every attention; the
            // row-wise ops give finite values on them (LayerNorm of a zero
            // row is its bias), dropped below with the other padding rows.
            let padded = shard::pad_rows(hidden, &lens, h, seqs, len);
            let padded = Tensor::from_f32([seqs * len, h], &padded)?;
            engine.run(&key, build, &[("hidden_in", &padded), ("attention_mask", &mask)])?.remove(0)
        } else {
            let offset = self.position_offset();
            // Padding: token 0, type 0 and the first position (all valid rows of
            // their tables), masked out of every attention.
            let mut ids = vec![0i32; seqs * len];
            let mut types = vec![0i32; seqs * len];
            let mut positions = vec![offset as i32; seqs * len];
            for (s, e) in batch.iter().enumerate() {
                let row = s * len;
                for (i, (&id, &ty)) in e.ids.iter().zip(&e.type_ids).enumerate() {
                    ids[row + i] = id as i32;
                    types[row + i] = ty as i32;
                    positions[row + i] = (offset + i) as i32;
                }
            }
            let ids = Tensor::from_i32([seqs * len], &ids)?;
            let types = Tensor::from_i32([seqs * len], &types)?;
            let positions = Tensor::from_i32([seqs * len], &positions)?;
            let inputs = [
                ("input_ids", &ids),
                ("token_type_ids", &types),
                ("position_ids", &positions),
                ("attention_mask", &mask),
            ];
            engine.run(&key, build, &inputs)?.remove(0)
        };
        // Keep the rows of real tokens, packed.
        let all = hidden.as_f32().expect("the encoder outputs float32");
        let packed = shard::unpad_rows(all, &lens, h, len);
        Ok(Tensor::from_f32([packed.len() / h, h], &packed)?)
    }

    fn norm(&self, b: &mut GraphBuilder, x: Operand, norm: &Norm, name: &str) -> Result<Operand> {
        let scale = b.constant(&format!("{name}.weight"), norm.weight.clone())?;
        let bias = b.constant(&format!("{name}.bias"), norm.bias.clone())?;
        Ok(b.layer_normalization(
            x,
            LayerNormOptions {
                scale: Some(scale),
                bias: Some(bias),
                axes: Some(vec![1]),
                epsilon: Some(self.cfg.layer_norm_eps),
            },
        )?)
    }
}

/// The first entry of a pipeline stage's shape key: no sequence length,
/// batch size or token count can equal it.
const STAGE_KEY: usize = usize::MAX;

/// What a graph starts from: token ids (the embeddings run in it) or the
/// previous pipeline stage's hidden states.
enum Embedded {
    Tokens { ids: Operand, types: Operand, positions: Operand },
    Hidden(Operand),
}

/// `x · Wᵀ + b`, as WebNN `gemm` with `bTranspose` (weights stay as stored).
fn linear(b: &mut GraphBuilder, x: Operand, linear: &Linear, name: &str) -> Result<Operand> {
    let w = b.constant(&format!("{name}.weight"), linear.weight.clone())?;
    let bias = b.constant(&format!("{name}.bias"), linear.bias.clone())?;
    Ok(b.gemm(x, w, GemmOptions { c: Some(bias), b_transpose: true, ..Default::default() })?)
}

/// The attention-mask value of a padding token: large enough to remove the
/// key, finite so no NaN can arise (WGSL has no infinity literal).
pub const MASKED: f32 = -1e30;

/// Sequences per padded batch: powers of two up to 32, then multiples of 32.
pub fn bucket_sequences(n: usize) -> usize {
    if n <= 32 {
        n.max(1).next_power_of_two()
    } else {
        n.next_multiple_of(32)
    }
}

/// Tokens per padded sequence: multiples of 16 up to 64, then multiples of 64.
pub fn bucket_tokens(n: usize) -> usize {
    if n <= 64 {
        n.max(1).next_multiple_of(16)
    } else {
        n.next_multiple_of(64)
    }
}

#[cfg(test)]
mod bucket_tests {
    use super::{bucket_sequences, bucket_tokens};

    #[test]
    fn buckets_round_up_and_stay_few() {
        assert_eq!([1, 2, 3, 5, 32, 33].map(bucket_sequences), [1, 2, 4, 8, 32, 64]);
        assert_eq!([1, 16, 17, 64, 65, 512].map(bucket_tokens), [16, 16, 32, 64, 128, 512]);
        let distinct: std::collections::BTreeSet<usize> = (1..=512).map(bucket_tokens).collect();
        assert_eq!(distinct.len(), 11);
    }
}
