//! CLIP image and text embeddings as graphs.
//!
//! Mirrors `CLIPModel` of Hugging Face transformers
//! (`models/clip/modeling_clip.py`). The vision tower: patch embedding
//! (no bias), class token and positions, `pre_layrnorm`, pre-norm encoder
//! layers, `post_layernorm` on the class token, then `visual_projection`.
//! The text tower: token + position embeddings, causal encoder layers,
//! `final_layer_norm` on the pooled token (the first `eos_token_id`, or the
//! largest id for old configs whose `eos_token_id` is 2), then
//! `text_projection`. Both projections have no bias; `logit_scale.exp()`
//! scales the cosine similarities of the normalised embeddings.
//!
//! Texts run packed on the CPU. Elsewhere they are padded to a bucket of
//! tokens with no mask: attention is causal and the pooled token comes
//! before any padding, so padding cannot change the result.

use super::transformer::{class_rows, encoder_layer, f32s, linear, norm, Activation, EncoderLayer, EncoderSpec};
use super::transformer::{LayerNames, Linear, Loader, Norm, Patches};
use super::vit::check_pixel_shape;
use crate::bert::{bucket_sequences, bucket_tokens};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::safetensors_file::SafetensorsFile;
use crate::sentence_transformers::l2_normalize;
use ipfs_accelerate_tensor::{DType, Graph, GraphBuilder, Tensor, Weights};
use serde::Deserialize;

/// The fields of a CLIP `config.json` this model reads.
#[derive(Clone, Debug, Deserialize)]
pub struct ClipConfig {
    /// The text tower.
    pub text_config: ClipTextConfig,
    /// The vision tower.
    pub vision_config: ClipVisionConfig,
    /// Width of the shared embedding space.
    #[serde(default = "d512")]
    pub projection_dim: usize,
}

/// `text_config` of a CLIP `config.json` (defaults as in transformers'
/// `CLIPTextConfig`).
#[derive(Clone, Debug, Deserialize)]
pub struct ClipTextConfig {
    /// Vocabulary size.
    #[serde(default = "d49408")]
    pub vocab_size: usize,
    /// Width of the hidden states.
    #[serde(default = "d512")]
    pub hidden_size: usize,
    /// Width of the feed-forward layer.
    #[serde(default = "d2048")]
    pub intermediate_size: usize,
    /// Number of encoder layers.
    #[serde(default = "d12")]
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    #[serde(default = "d8")]
    pub num_attention_heads: usize,
    /// The longest text, in tokens (77 for OpenAI's models).
    #[serde(default = "d77")]
    pub max_position_embeddings: usize,
    /// Activation of the feed-forward layer.
    #[serde(default = "quick_gelu")]
    pub hidden_act: String,
    /// Layer-norm epsilon.
    #[serde(default = "eps5")]
    pub layer_norm_eps: f32,
    /// The token whose (first) position is pooled; 2 means "the largest id".
    #[serde(default = "d49407")]
    pub eos_token_id: usize,
}

/// `vision_config` of a CLIP `config.json` (defaults as in transformers'
/// `CLIPVisionConfig`).
#[derive(Clone, Debug, Deserialize)]
pub struct ClipVisionConfig {
    /// Width of the hidden states.
    #[serde(default = "d768")]
    pub hidden_size: usize,
    /// Width of the feed-forward layer.
    #[serde(default = "d3072")]
    pub intermediate_size: usize,
    /// Number of encoder layers.
    #[serde(default = "d12")]
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    #[serde(default = "d12")]
    pub num_attention_heads: usize,
    /// Input channels.
    #[serde(default = "d3")]
    pub num_channels: usize,
    /// Side of the (square) input image, in pixels.
    #[serde(default = "d224")]
    pub image_size: usize,
    /// Side of a (square) patch, in pixels.
    #[serde(default = "d32")]
    pub patch_size: usize,
    /// Activation of the feed-forward layer.
    #[serde(default = "quick_gelu")]
    pub hidden_act: String,
    /// Layer-norm epsilon.
    #[serde(default = "eps5")]
    pub layer_norm_eps: f32,
}

macro_rules! defaults {
    ($($name:ident = $value:expr),* $(,)?) => {
        $(fn $name() -> usize { $value })*
    };
}
defaults!(d3 = 3, d8 = 8, d12 = 12, d32 = 32, d77 = 77, d224 = 224, d512 = 512, d768 = 768, d2048 = 2048);
defaults!(d3072 = 3072, d49407 = 49407, d49408 = 49408);
fn quick_gelu() -> String {
    "quick_gelu".into()
}
fn eps5() -> f32 {
    1e-5
}

/// CLIP's layer weight names (both towers), under `…encoder.layers.N.`.
const NAMES: LayerNames = LayerNames {
    norm1: "layer_norm1",
    q: "self_attn.q_proj",
    k: "self_attn.k_proj",
    v: "self_attn.v_proj",
    out: "self_attn.out_proj",
    norm2: "layer_norm2",
    fc1: "mlp.fc1",
    fc2: "mlp.fc2",
};

struct VisionTower {
    patches: Patches,
    spec: EncoderSpec,
    patch: Linear,
    cls: Tensor,
    positions: Tensor,
    pre_norm: Norm,
    layers: Vec<EncoderLayer>,
    post_norm: Norm,
    projection: Linear,
}

struct TextTower {
    spec: EncoderSpec,
    tokens: Tensor,
    positions: Tensor,
    layers: Vec<EncoderLayer>,
    final_norm: Norm,
    projection: Linear,
}

/// A loaded CLIP model: both towers and the logit scale.
pub struct ClipModel {
    cfg: ClipConfig,
    vision: VisionTower,
    text: TextTower,
    logit_scale: f32,
}

impl ClipModel {
    /// Loads the weights `cfg` describes from `file` (`CLIPModel` names:
    /// `vision_model.…`, `text_model.…`, the projections and `logit_scale`).
    pub fn load(cfg: ClipConfig, file: &SafetensorsFile) -> Result<Self> {
        let l = Loader { file };
        let (vc, tc, proj) = (&cfg.vision_config, &cfg.text_config, cfg.projection_dim);
        let patches = Patches { channels: vc.num_channels, image_size: vc.image_size, patch_size: vc.patch_size };
        patches.check("CLIP vision_config")?;
        let vspec = EncoderSpec {
            hidden: vc.hidden_size,
            heads: vc.num_attention_heads,
            activation: Activation::parse(&vc.hidden_act, "CLIP vision_config")?,
            eps: vc.layer_norm_eps,
            causal: false,
        };
        vspec.check("CLIP vision_config")?;
        let tspec = EncoderSpec {
            hidden: tc.hidden_size,
            heads: tc.num_attention_heads,
            activation: Activation::parse(&tc.hidden_act, "CLIP text_config")?,
            eps: tc.layer_norm_eps,
            causal: true,
        };
        tspec.check("CLIP text_config")?;
        if tc.max_position_embeddings == 0 || tc.vocab_size == 0 {
            return Err(Error::InvalidOption(
                "CLIP text_config: vocab_size and max_position_embeddings must be at least 1".into(),
            ));
        }
        let hv = vc.hidden_size;
        let vlayers = (0..vc.num_hidden_layers)
            .map(|n| l.layer(&format!("vision_model.encoder.layers.{n}."), &NAMES, hv, vc.intermediate_size, true))
            .collect::<Result<Vec<_>>>()?;
        let vision = VisionTower {
            patch: Linear {
                weight: l.patch_weight(
                    "vision_model.embeddings.patch_embedding.weight",
                    hv,
                    vc.num_channels,
                    vc.patch_size,
                )?,
                bias: None,
            },
            cls: l.tensor("vision_model.embeddings.class_embedding", &[hv])?,
            positions: l.tensor("vision_model.embeddings.position_embedding.weight", &[patches.tokens(), hv])?,
            pre_norm: l.norm("vision_model.pre_layrnorm", hv)?,
            layers: vlayers,
            post_norm: l.norm("vision_model.post_layernorm", hv)?,
            projection: l.linear("visual_projection", proj, hv, false)?,
            patches,
            spec: vspec,
        };
        let ht = tc.hidden_size;
        let tlayers = (0..tc.num_hidden_layers)
            .map(|n| l.layer(&format!("text_model.encoder.layers.{n}."), &NAMES, ht, tc.intermediate_size, true))
            .collect::<Result<Vec<_>>>()?;
        let text = TextTower {
            tokens: l.tensor("text_model.embeddings.token_embedding.weight", &[tc.vocab_size, ht])?,
            positions: l
                .tensor("text_model.embeddings.position_embedding.weight", &[tc.max_position_embeddings, ht])?,
            layers: tlayers,
            final_norm: l.norm("text_model.final_layer_norm", ht)?,
            projection: l.linear("text_projection", proj, ht, false)?,
            spec: tspec,
        };
        let logit_scale = f32s(&l.tensor("logit_scale", &[])?)[0];
        Ok(ClipModel { cfg, vision, text, logit_scale })
    }

    /// Side of the square images the vision tower takes, in pixels.
    pub fn image_size(&self) -> usize {
        self.cfg.vision_config.image_size
    }

    /// Width of the image and text embeddings.
    pub fn projection_dim(&self) -> usize {
        self.cfg.projection_dim
    }

    /// The longest text, in tokens (special tokens included).
    pub fn max_text_tokens(&self) -> usize {
        self.cfg.text_config.max_position_embeddings
    }

    /// `logit_scale.exp()`: what cosine similarities are multiplied by
    /// before the softmax over labels.
    pub fn logit_scale(&self) -> f32 {
        self.logit_scale.exp()
    }

    /// The vision graph for `n` images. Input `pixel_values`
    /// `float32 [n, channels, image, image]`; output `image_embeds`
    /// `[n, projection_dim]` (not normalised).
    pub fn image_graph(&self, n: usize) -> Result<(Graph, Weights)> {
        let v = &self.vision;
        let (c, s, h) = (v.patches.channels, v.patches.image_size, v.spec.hidden);
        let tokens = v.patches.tokens();
        let mut b = GraphBuilder::new();
        let pixels = b.input("pixel_values", DType::Float32, [n, c, s, s])?;
        let x = v.patches.embed(&mut b, pixels, n, h, &v.patch, &v.cls, &v.positions, "clip.vision")?;
        let mut x = norm(&mut b, x, &v.pre_norm, v.spec.eps, "clip.vision.pre_norm")?;
        let lens = vec![tokens; n];
        for (i, layer) in v.layers.iter().enumerate() {
            x = encoder_layer(&mut b, x, layer, &v.spec, &lens, &format!("clip.vision.layer{i}"))?;
        }
        let cls = class_rows(&mut b, x, n, tokens, h)?;
        let pooled = norm(&mut b, cls, &v.post_norm, v.spec.eps, "clip.vision.post_norm")?;
        let embeds = linear(&mut b, pooled, &v.projection, "clip.visual_projection")?;
        Ok(b.build(&[("image_embeds", embeds)])?)
    }

    /// The text graph for a packed batch of sequences of these lengths.
    /// Inputs (`int32`): `input_ids` and `position_ids` `[total_tokens]`,
    /// `pooled_rows` `[sequences]` (the row of each sequence's pooled
    /// token in the packed batch). Output `text_embeds`
    /// `[sequences, projection_dim]` (not normalised).
    pub fn text_graph(&self, seq_lens: &[usize]) -> Result<(Graph, Weights)> {
        let t = &self.text;
        let total: usize = seq_lens.iter().sum();
        let mut b = GraphBuilder::new();
        let ids = b.input("input_ids", DType::Int32, [total])?;
        let positions = b.input("position_ids", DType::Int32, [total])?;
        let rows = b.input("pooled_rows", DType::Int32, [seq_lens.len()])?;
        let table = b.constant("clip.text.tokens", t.tokens.clone())?;
        let position_table = b.constant("clip.text.positions", t.positions.clone())?;
        let x = b.gather(table, ids, 0)?;
        let p = b.gather(position_table, positions, 0)?;
        let mut x = b.add(x, p)?;
        for (i, layer) in t.layers.iter().enumerate() {
            x = encoder_layer(&mut b, x, layer, &t.spec, seq_lens, &format!("clip.text.layer{i}"))?;
        }
        // The final norm is row-wise: normalizing only the pooled rows gives
        // what transformers computes for them.
        let pooled = b.gather(x, rows, 0)?;
        let pooled = norm(&mut b, pooled, &t.final_norm, t.spec.eps, "clip.text.final_norm")?;
        let embeds = linear(&mut b, pooled, &t.projection, "clip.text_projection")?;
        Ok(b.build(&[("text_embeds", embeds)])?)
    }

    /// L2-normalised image embeddings of `pixel_values`
    /// `[n, channels, image, image]`, one per image.
    pub fn image_embeds(&self, engine: &Engine, pixels: &Tensor) -> Result<Vec<Vec<f32>>> {
        let p = &self.vision.patches;
        let n = check_pixel_shape(pixels, p.channels, p.image_size, "CLIP")?;
        let out = engine.run(&[CLIP_IMAGE_KEY, n], || self.image_graph(n), &[("pixel_values", pixels)])?.remove(0);
        Ok(normalized_rows(&out, self.cfg.projection_dim))
    }

    /// L2-normalised text embeddings of tokenized texts (special tokens
    /// included, as CLIP's tokenizer adds them), one per text.
    pub fn text_embeds(&self, engine: &Engine, texts: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Err(Error::EmptyInput);
        }
        let tc = &self.cfg.text_config;
        for ids in texts {
            if ids.is_empty() || ids.len() > tc.max_position_embeddings {
                return Err(Error::InvalidOption(format!(
                    "a CLIP text must have 1 to {} tokens, got {}",
                    tc.max_position_embeddings,
                    ids.len()
                )));
            }
            if let Some(&bad) = ids.iter().find(|&&id| id as usize >= tc.vocab_size) {
                return Err(Error::Tokenizer(format!(
                    "token {bad} is outside the model's vocabulary of {}: tokenizer.json does not belong to this model",
                    tc.vocab_size
                )));
            }
        }
        let lens: Vec<usize> = texts.iter().map(Vec::len).collect();
        // Packed on the CPU; elsewhere every text padded to one bucketed
        // length (and the batch to a bucketed count) so plans are reused.
        let (seqs, len) = if engine.prefers_padded() {
            let longest = lens.iter().copied().max().unwrap_or(1);
            (bucket_sequences(texts.len()), bucket_tokens(longest).min(tc.max_position_embeddings))
        } else {
            (texts.len(), 0)
        };
        let seq_lens: Vec<usize> = if len == 0 { lens.clone() } else { vec![len; seqs] };
        let (mut ids, mut positions, mut rows) = (Vec::new(), Vec::new(), Vec::new());
        for (s, &len) in seq_lens.iter().enumerate() {
            let text = texts.get(s).map(Vec::as_slice).unwrap_or(&[]);
            rows.push((ids.len() + pooled_index(text, tc.eos_token_id)) as i32);
            for i in 0..len {
                // Padding uses token 0, a valid row of every vocabulary.
                ids.push(text.get(i).copied().unwrap_or(0) as i32);
                positions.push(i as i32);
            }
        }
        let total = ids.len();
        let ids = Tensor::from_i32([total], &ids)?;
        let positions = Tensor::from_i32([total], &positions)?;
        let rows = Tensor::from_i32([seq_lens.len()], &rows)?;
        let key: Vec<usize> = [&[CLIP_TEXT_KEY][..], &seq_lens].concat();
        let inputs = [("input_ids", &ids), ("position_ids", &positions), ("pooled_rows", &rows)];
        let out = engine.run(&key, || self.text_graph(&seq_lens), &inputs)?.remove(0);
        let mut embeds = normalized_rows(&out, self.cfg.projection_dim);
        embeds.truncate(texts.len());
        Ok(embeds)
    }
}

/// First entries of the CLIP graphs' shape keys, so the image and text
/// graphs (and other models' graphs) never share a cached plan.
const CLIP_IMAGE_KEY: usize = usize::MAX - 2;
const CLIP_TEXT_KEY: usize = usize::MAX - 3;

/// The position transformers pools for a text: the first `eos` token, or,
/// for old configs whose `eos_token_id` is 2, the largest id (the end token
/// is the last of CLIP's vocabulary). Like `argmax`, the first position
/// wins ties, and a text without its end token pools position 0.
pub fn pooled_index(ids: &[u32], eos: usize) -> usize {
    if eos == 2 {
        let max = ids.iter().copied().max().unwrap_or(0);
        ids.iter().position(|&id| id == max).unwrap_or(0)
    } else {
        ids.iter().position(|&id| id as usize == eos).unwrap_or(0)
    }
}

/// The rows of a `[n, dim]` output, each scaled to unit length.
fn normalized_rows(out: &Tensor, dim: usize) -> Vec<Vec<f32>> {
    let values = out.as_f32().expect("the projections output float32");
    values
        .chunks_exact(dim)
        .map(|row| {
            let mut v = row.to_vec();
            l2_normalize(&mut v);
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::pooled_index;

    #[test]
    fn pools_the_first_eos_or_the_largest_id_for_old_configs() {
        assert_eq!(pooled_index(&[49406, 320, 49407, 49407], 49407), 2);
        assert_eq!(pooled_index(&[49406, 320, 1000, 49407, 49407], 2), 3);
        assert_eq!(pooled_index(&[5, 6], 9), 0);
    }
}
