//! ViT (Vision Transformer) image classification as a graph.
//!
//! Mirrors `ViTModel` / `ViTForImageClassification` of Hugging Face
//! transformers (`models/vit/modeling_vit.py`): a patch embedding (a conv
//! with kernel = stride = patch, built here as reshape/transpose + gemm),
//! the class token and position embeddings, pre-norm encoder layers
//! (`layernorm_before`/`layernorm_after`, exact GELU), the final `layernorm`
//! and a linear `classifier` on the class token. Position embeddings are not
//! interpolated, so images must have the configured size.
//!
//! A batch of images runs as packed attention segments (one per image), as
//! [`crate::bert`] runs a batch of texts.

use super::transformer::{class_rows, encoder_layer, norm, Activation, EncoderLayer, EncoderSpec, LayerNames};
use super::transformer::{linear, Linear, Loader, Norm, Patches};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::safetensors_file::SafetensorsFile;
use ipfs_accelerate_tensor::{DType, Graph, GraphBuilder, Tensor, Weights};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The fields of a ViT `config.json` this model reads (defaults as in
/// transformers' `ViTConfig`).
#[derive(Clone, Debug, Deserialize)]
pub struct ViTConfig {
    /// Width of the hidden states.
    #[serde(default = "d768")]
    pub hidden_size: usize,
    /// Number of encoder layers.
    #[serde(default = "d12")]
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    #[serde(default = "d12")]
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    #[serde(default = "d3072")]
    pub intermediate_size: usize,
    /// Activation of the feed-forward layer.
    #[serde(default = "gelu")]
    pub hidden_act: String,
    /// Layer-norm epsilon.
    #[serde(default = "eps12")]
    pub layer_norm_eps: f32,
    /// Side of the (square) input image, in pixels.
    #[serde(default = "d224")]
    pub image_size: usize,
    /// Side of a (square) patch, in pixels.
    #[serde(default = "d16")]
    pub patch_size: usize,
    /// Input channels.
    #[serde(default = "d3")]
    pub num_channels: usize,
    /// Whether the query, key and value projections have biases.
    #[serde(default = "yes")]
    pub qkv_bias: bool,
    /// Class names by index, as strings of integers (`{"0": "tench"}`).
    #[serde(default)]
    pub id2label: BTreeMap<String, String>,
}

fn d3() -> usize {
    3
}
fn d12() -> usize {
    12
}
fn d16() -> usize {
    16
}
fn d224() -> usize {
    224
}
fn d768() -> usize {
    768
}
fn d3072() -> usize {
    3072
}
fn gelu() -> String {
    "gelu".into()
}
fn eps12() -> f32 {
    1e-12
}
fn yes() -> bool {
    true
}

/// Layer weight names of published checkpoints (`encoder.layer.N.…`).
const LEGACY_NAMES: LayerNames = LayerNames {
    norm1: "layernorm_before",
    q: "attention.attention.query",
    k: "attention.attention.key",
    v: "attention.attention.value",
    out: "attention.output.dense",
    norm2: "layernorm_after",
    fc1: "intermediate.dense",
    fc2: "output.dense",
};

/// Layer weight names as transformers 5 saves them (`layers.N.…`).
const V5_NAMES: LayerNames = LayerNames {
    norm1: "layernorm_before",
    q: "attention.q_proj",
    k: "attention.k_proj",
    v: "attention.v_proj",
    out: "attention.o_proj",
    norm2: "layernorm_after",
    fc1: "mlp.fc1",
    fc2: "mlp.fc2",
};

/// A loaded ViT, with its classifier head when the checkpoint has one.
pub struct ViTModel {
    cfg: ViTConfig,
    patches: Patches,
    spec: EncoderSpec,
    patch: Linear,
    cls: Tensor,
    positions: Tensor,
    layers: Vec<EncoderLayer>,
    final_norm: Norm,
    classifier: Option<Linear>,
    labels: Vec<String>,
}

impl ViTModel {
    /// Loads the weights `cfg` describes from `file`, under the prefix
    /// `vit.` (`ViTForImageClassification`) or none (`ViTModel`), with the
    /// layer names of published checkpoints or of transformers 5.
    pub fn load(cfg: ViTConfig, file: &SafetensorsFile) -> Result<Self> {
        let patches = Patches { channels: cfg.num_channels, image_size: cfg.image_size, patch_size: cfg.patch_size };
        patches.check("ViT config.json")?;
        let spec = EncoderSpec {
            hidden: cfg.hidden_size,
            heads: cfg.num_attention_heads,
            activation: Activation::parse(&cfg.hidden_act, "ViT config.json")?,
            eps: cfg.layer_norm_eps,
            causal: false,
        };
        spec.check("ViT config.json")?;
        let prefix =
            ["vit.", ""].into_iter().find(|p| file.contains(&format!("{p}embeddings.cls_token"))).ok_or_else(|| {
                Error::Weight {
                    name: "vit.embeddings.cls_token".into(),
                    message: format!("not found in {}: is this a ViT checkpoint?", file.path().display()),
                }
            })?;
        let l = Loader { file };
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let v5 = file.contains(&format!("{prefix}layers.0.attention.q_proj.weight"));
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for n in 0..cfg.num_hidden_layers {
            let (layer_prefix, names) = if v5 {
                (format!("{prefix}layers.{n}."), &V5_NAMES)
            } else {
                (format!("{prefix}encoder.layer.{n}."), &LEGACY_NAMES)
            };
            layers.push(l.layer(&layer_prefix, names, h, i, cfg.qkv_bias)?);
        }
        let e = |s: &str| format!("{prefix}embeddings.{s}");
        let tokens = patches.tokens();
        // transformers sizes the head from id2label (2 classes without one).
        let num_labels = if cfg.id2label.is_empty() { 2 } else { cfg.id2label.len() };
        let (classifier, labels) = if file.contains("classifier.weight") {
            (Some(l.linear("classifier", num_labels, h, true)?), label_names(&cfg.id2label, num_labels)?)
        } else {
            (None, Vec::new())
        };
        Ok(ViTModel {
            patch: Linear {
                weight: l.patch_weight(
                    &e("patch_embeddings.projection.weight"),
                    h,
                    cfg.num_channels,
                    cfg.patch_size,
                )?,
                bias: Some(l.tensor(&e("patch_embeddings.projection.bias"), &[h])?),
            },
            cls: l.tensor(&e("cls_token"), &[1, 1, h])?.reshape([h])?,
            positions: l.tensor(&e("position_embeddings"), &[1, tokens, h])?.reshape([tokens, h])?,
            final_norm: l.norm(&format!("{prefix}layernorm"), h)?,
            layers,
            classifier,
            labels,
            patches,
            spec,
            cfg,
        })
    }

    /// Side of the square images the model takes, in pixels.
    pub fn image_size(&self) -> usize {
        self.cfg.image_size
    }

    /// Whether the checkpoint has a classifier head.
    pub fn has_classifier(&self) -> bool {
        self.classifier.is_some()
    }

    /// The class names, by index (empty without a classifier head).
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The graph for a batch of `n` images. Input: `pixel_values`,
    /// `float32 [n, channels, image, image]`. Output: `logits`
    /// `[n, labels]` with a classifier head, else `pooled`, the final-normed
    /// class token, `[n, hidden]`.
    pub fn graph(&self, n: usize) -> Result<(Graph, Weights)> {
        let (c, s, h) = (self.cfg.num_channels, self.cfg.image_size, self.cfg.hidden_size);
        let tokens = self.patches.tokens();
        let mut b = GraphBuilder::new();
        let pixels = b.input("pixel_values", DType::Float32, [n, c, s, s])?;
        let mut x = self.patches.embed(&mut b, pixels, n, h, &self.patch, &self.cls, &self.positions, "vit")?;
        let lens = vec![tokens; n];
        for (i, layer) in self.layers.iter().enumerate() {
            x = encoder_layer(&mut b, x, layer, &self.spec, &lens, &format!("vit.layer{i}"))?;
        }
        // The final norm is row-wise, so normalizing only the class tokens
        // gives the same values as transformers' norm of every token.
        let cls = class_rows(&mut b, x, n, tokens, h)?;
        let pooled = norm(&mut b, cls, &self.final_norm, self.cfg.layer_norm_eps, "vit.final_norm")?;
        match &self.classifier {
            Some(head) => {
                let logits = linear(&mut b, pooled, head, "vit.classifier")?;
                Ok(b.build(&[("logits", logits)])?)
            }
            None => Ok(b.build(&[("pooled", pooled)])?),
        }
    }

    /// Checks `pixel_values` against the configured image size.
    fn check_pixels(&self, pixels: &Tensor) -> Result<usize> {
        check_pixel_shape(pixels, self.cfg.num_channels, self.cfg.image_size, "ViT")
    }

    /// Runs the model on `pixel_values` `[n, channels, image, image]`:
    /// `logits` `[n, labels]` with a classifier head, else the pooled class
    /// tokens `[n, hidden]`.
    pub fn forward(&self, engine: &Engine, pixels: &Tensor) -> Result<Tensor> {
        let n = self.check_pixels(pixels)?;
        Ok(engine.run(&[VIT_KEY, n], || self.graph(n), &[("pixel_values", pixels)])?.remove(0))
    }
}

/// The first entry of a ViT graph's shape key, so a plan cache shared with
/// another model never confuses their graphs.
const VIT_KEY: usize = usize::MAX - 1;

/// `id2label` as a list of `count` names; indices it lacks become `LABEL_i`
/// (transformers' default names).
fn label_names(id2label: &BTreeMap<String, String>, count: usize) -> Result<Vec<String>> {
    let mut labels: Vec<String> = (0..count).map(|i| format!("LABEL_{i}")).collect();
    for (id, name) in id2label {
        let i: usize = id.trim().parse().map_err(|_| {
            Error::InvalidOption(format!("config.json id2label has the key {id:?}, which is not a class index"))
        })?;
        if i >= count {
            return Err(Error::InvalidOption(format!(
                "config.json id2label names class {i} but the classifier has {count} outputs"
            )));
        }
        labels[i] = name.clone();
    }
    Ok(labels)
}

/// Checks a `[n, channels, size, size]` pixel tensor; returns `n`. The
/// message says what to do when the preprocessing makes another size.
pub(crate) fn check_pixel_shape(pixels: &Tensor, channels: usize, size: usize, model: &str) -> Result<usize> {
    match pixels.shape().dims() {
        &[n, c, h, w] if n > 0 && c == channels && h == size && w == size => Ok(n),
        &[_, c, h, w] if c == channels => Err(Error::InvalidOption(format!(
            "the {model} model takes {size}×{size} images, but got {h}×{w} pixel values; position embeddings are not interpolated, so preprocess to {size}×{size} (check size/crop_size in preprocessor_config.json)"
        ))),
        dims => Err(Error::InvalidOption(format!(
            "pixel_values must be [images, {channels}, {size}, {size}], got {dims:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_fill_gaps_and_refuse_bad_ids() {
        let mut map = BTreeMap::new();
        map.insert("1".to_string(), "dog".to_string());
        assert_eq!(label_names(&map, 2).unwrap(), ["LABEL_0", "dog"]);
        map.insert("7".to_string(), "bird".to_string());
        assert!(label_names(&map, 2).unwrap_err().to_string().contains("class 7"));
        let mut bad = BTreeMap::new();
        bad.insert("x".to_string(), "cat".to_string());
        assert!(label_names(&bad, 1).is_err());
    }

    #[test]
    fn wrong_image_sizes_are_refused_with_the_expected_size() {
        let pixels = Tensor::from_f32([1, 3, 16, 16], &vec![0.0; 3 * 256]).unwrap();
        let err = check_pixel_shape(&pixels, 3, 32, "ViT").unwrap_err().to_string();
        assert!(err.contains("32×32") && err.contains("16×16"), "{err}");
        assert_eq!(check_pixel_shape(&pixels, 3, 16, "ViT").unwrap(), 1);
    }
}
