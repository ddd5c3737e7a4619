//! EfficientNet-Lite image classification as a graph of WebNN convolution ops.
//!
//! The model is the one `efficientnet_lite_pytorch` builds (a port of
//! TensorFlow's EfficientNet-Lite): a 3×3 stride-2 stem, MBConv blocks
//! (1×1 expand, k×k depthwise, 1×1 project, a residual when the shape is
//! kept; no squeeze-excite), a 1×1 head, global average pooling and a linear
//! classifier, with ReLU6 after every convolution but the projections.
//!
//! The weights are the directory `scripts/convert-efficientnet-lite0.py`
//! writes: batch norm already folded into each convolution's weight and
//! bias, so the graph is `conv2d` + `clamp(0, 6)` only. Padding is
//! TensorFlow's "SAME" for the configured input size: the output is
//! `ceil(size / stride)` and an odd padding pixel goes at the bottom/right,
//! which WebNN's four-sided `padding` expresses directly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image::RgbImage;
use ipfs_accelerate_tensor::{
    Conv2dOptions, DType, GemmOptions, Graph, GraphBuilder, Operand, Pool2dOptions, Tensor, Weights,
};
use serde::Deserialize;

use super::decode::{decode_image, Alpha};
use super::processor::ImageProcessor;
use crate::backend::{BackendChoice, BackendKind, Precision};
use crate::engine::Engine;
use crate::error::{read_file, Error, Result};
use crate::safetensors_file::SafetensorsFile;

/// The `model_type` of an EfficientNet-Lite directory's `config.json`.
pub const MODEL_TYPE: &str = "efficientnet_lite";

/// Images per forward pass: bounds memory (the first activations of one
/// image are 4.8 MB), and gives the WebGPU engine at most two batch shapes.
const BATCH: usize = 8;

/// One MBConv block of `config.json`'s `blocks`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct BlockConfig {
    /// Side of the depthwise filter.
    pub kernel_size: usize,
    /// Stride of the depthwise convolution (1 or 2).
    pub stride: usize,
    /// Expanded channels = `in_channels * expand_ratio` (1: no expand conv).
    pub expand_ratio: usize,
    /// Channels in.
    pub in_channels: usize,
    /// Channels out.
    pub out_channels: usize,
}

/// `config.json` of an EfficientNet-Lite model directory.
#[derive(Debug, Clone, Deserialize)]
pub struct EfficientNetConfig {
    /// Must be [`MODEL_TYPE`].
    pub model_type: String,
    /// Side of the square input the padding was computed for.
    pub image_size: usize,
    /// Padding scheme; only `"tf_same"` exists.
    #[serde(default = "tf_same")]
    pub padding: String,
    /// Activation; only `"relu6"` exists.
    #[serde(default = "relu6")]
    pub activation: String,
    /// Whether batch norm is folded into the convolutions (required).
    #[serde(default)]
    pub batch_norm_folded: bool,
    /// Output channels of the stem.
    pub stem_channels: usize,
    /// The MBConv blocks in order.
    pub blocks: Vec<BlockConfig>,
    /// Output channels of the head (the classifier's input width).
    pub head_channels: usize,
    /// Number of classes (defaults to the size of `id2label`).
    pub num_labels: Option<usize>,
    /// Class names by index.
    #[serde(default)]
    pub id2label: BTreeMap<String, String>,
}

fn tf_same() -> String {
    "tf_same".into()
}

fn relu6() -> String {
    "relu6".into()
}

/// A convolution with its folded bias.
struct Conv {
    name: String,
    weight: Tensor, // OIHW
    bias: Tensor,   // [O]
    kernel: usize,
    stride: usize,
    groups: usize,
}

struct Block {
    expand: Option<Conv>,
    depthwise: Conv,
    project: Conv,
    residual: bool,
}

/// An EfficientNet-Lite network: its weights and architecture, no backend.
pub struct EfficientNetLite {
    image_size: usize,
    stem: Conv,
    blocks: Vec<Block>,
    head: Conv,
    classifier_weight: Tensor, // [classes, head_channels]
    classifier_bias: Tensor,   // [classes]
    labels: Vec<String>,
}

fn bad_config(message: impl std::fmt::Display) -> Error {
    Error::InvalidOption(format!("config.json: {message}"))
}

impl EfficientNetLite {
    /// Checks `cfg` and loads every weight it implies from `file`, each
    /// checked against the shape the architecture needs.
    pub fn load(cfg: EfficientNetConfig, file: &SafetensorsFile) -> Result<Self> {
        if cfg.model_type != MODEL_TYPE {
            return Err(bad_config(format!("model_type is {:?}, expected {MODEL_TYPE:?}", cfg.model_type)));
        }
        if cfg.padding != "tf_same" {
            return Err(bad_config(format!("padding {:?} is not supported (only \"tf_same\")", cfg.padding)));
        }
        if cfg.activation != "relu6" {
            return Err(bad_config(format!("activation {:?} is not supported (only \"relu6\")", cfg.activation)));
        }
        if !cfg.batch_norm_folded {
            return Err(bad_config(
                "batch_norm_folded must be true: convert the PyTorch checkpoint with scripts/convert-efficientnet-lite0.py",
            ));
        }
        if cfg.image_size == 0 || cfg.image_size > 4096 {
            return Err(bad_config(format!("image_size {} must be between 1 and 4096", cfg.image_size)));
        }
        if cfg.blocks.is_empty() {
            return Err(bad_config("blocks is empty"));
        }
        let num_labels = cfg.num_labels.unwrap_or(cfg.id2label.len());
        if num_labels == 0 {
            return Err(bad_config("the model has no classes (set num_labels or id2label)"));
        }
        let labels = label_names(&cfg.id2label, num_labels)?;

        let conv = |name: String, cout: usize, cin: usize, kernel: usize, stride: usize, groups: usize| {
            if kernel == 0 || kernel.is_multiple_of(2) || !(1..=2).contains(&stride) {
                return Err(bad_config(format!("{name}: kernel {kernel} must be odd and stride {stride} 1 or 2")));
            }
            let weight = file.f32(&format!("{name}.weight"), &[cout, cin / groups, kernel, kernel])?;
            let bias = file.f32(&format!("{name}.bias"), &[cout])?;
            Ok(Conv { name, weight, bias, kernel, stride, groups })
        };

        let stem = conv("stem".into(), cfg.stem_channels, 3, 3, 2, 1)?;
        let mut channels = cfg.stem_channels;
        let mut blocks = Vec::with_capacity(cfg.blocks.len());
        for (n, b) in cfg.blocks.iter().enumerate() {
            if b.in_channels != channels {
                return Err(bad_config(format!(
                    "blocks[{n}] takes {} channels but the layer before gives {channels}",
                    b.in_channels
                )));
            }
            if b.expand_ratio == 0 || b.out_channels == 0 {
                return Err(bad_config(format!("blocks[{n}] has a zero expand_ratio or out_channels")));
            }
            let mid = b.in_channels * b.expand_ratio;
            let expand = if b.expand_ratio == 1 {
                None
            } else {
                Some(conv(format!("blocks.{n}.expand"), mid, b.in_channels, 1, 1, 1)?)
            };
            blocks.push(Block {
                expand,
                depthwise: conv(format!("blocks.{n}.depthwise"), mid, mid, b.kernel_size, b.stride, mid)?,
                project: conv(format!("blocks.{n}.project"), b.out_channels, mid, 1, 1, 1)?,
                residual: b.stride == 1 && b.in_channels == b.out_channels,
            });
            channels = b.out_channels;
        }
        let head = conv("head".into(), cfg.head_channels, channels, 1, 1, 1)?;
        Ok(EfficientNetLite {
            image_size: cfg.image_size,
            stem,
            blocks,
            head,
            classifier_weight: file.f32("classifier.weight", &[num_labels, cfg.head_channels])?,
            classifier_bias: file.f32("classifier.bias", &[num_labels])?,
            labels,
        })
    }

    /// Side of the square input.
    pub fn image_size(&self) -> usize {
        self.image_size
    }

    /// Class names, by class index.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The graph for a batch of `n` images: input `pixel_values`,
    /// `float32 [n, 3, S, S]` (S = [`Self::image_size`]), output `logits`,
    /// `float32 [n, classes]`.
    pub fn graph(&self, n: usize) -> Result<(Graph, Weights)> {
        let s = self.image_size;
        let mut b = GraphBuilder::new();
        let input = b.input("pixel_values", DType::Float32, [n, 3, s, s])?;
        let (mut x, mut size) = conv2d(&mut b, input, &self.stem, s, true)?;
        for block in &self.blocks {
            let inputs = x;
            if let Some(expand) = &block.expand {
                x = conv2d(&mut b, x, expand, size, true)?.0;
            }
            (x, size) = conv2d(&mut b, x, &block.depthwise, size, true)?;
            x = conv2d(&mut b, x, &block.project, size, false)?.0;
            if block.residual {
                x = b.add(x, inputs)?;
            }
        }
        let (x, size) = conv2d(&mut b, x, &self.head, size, true)?;
        let pooled = b.average_pool2d(x, Pool2dOptions::global(size, size))?;
        let features = b.reshape(pooled, &[n, self.head.weight.shape().dims()[0]])?;
        let w = b.constant("classifier.weight", self.classifier_weight.clone())?;
        let bias = b.constant("classifier.bias", self.classifier_bias.clone())?;
        let logits = b.gemm(features, w, GemmOptions { c: Some(bias), b_transpose: true, ..Default::default() })?;
        Ok(b.build(&[("logits", logits)])?)
    }

    /// Runs the network on `pixel_values`, `float32 [n, 3, S, S]`; returns the
    /// logits, `float32 [n, classes]`.
    pub fn forward(&self, engine: &Engine, pixel_values: &Tensor) -> Result<Tensor> {
        let s = self.image_size;
        let dims = pixel_values.shape().dims();
        if dims.len() != 4 || dims[0] == 0 || dims[1..] != [3, s, s] || pixel_values.dtype() != DType::Float32 {
            return Err(Error::InvalidOption(format!(
                "EfficientNet takes float32 pixel values [n, 3, {s}, {s}], got {:?} {dims:?}: preprocessor_config.json must crop to {s}x{s}",
                pixel_values.dtype()
            )));
        }
        let n = dims[0];
        let mut out = engine.run(&[n], || self.graph(n), &[("pixel_values", pixel_values)])?;
        Ok(out.remove(0))
    }
}

/// `conv2d` with TF "SAME" padding for an input of `size`×`size`, then
/// ReLU6 (`clamp(0, 6)`) when `relu6`; returns the output and its size.
fn conv2d(b: &mut GraphBuilder, x: Operand, conv: &Conv, size: usize, relu6: bool) -> Result<(Operand, usize)> {
    let (out, before, after) = same_padding(size, conv.kernel, conv.stride);
    let w = b.constant(&format!("{}.weight", conv.name), conv.weight.clone())?;
    let bias = b.constant(&format!("{}.bias", conv.name), conv.bias.clone())?;
    let options = Conv2dOptions {
        padding: [before, after, before, after],
        strides: [conv.stride, conv.stride],
        dilations: [1, 1],
        groups: conv.groups,
    };
    let y = b.conv2d(x, w, Some(bias), options)?;
    let y = if relu6 { b.clamp(y, 0.0, 6.0)? } else { y };
    Ok((y, out))
}

/// TensorFlow "SAME": output `ceil(size / stride)`, total padding whatever
/// that needs, the odd pixel after (bottom/right). Returns
/// `(output size, padding before, padding after)`.
pub fn same_padding(size: usize, kernel: usize, stride: usize) -> (usize, usize, usize) {
    let out = size.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(size);
    (out, total / 2, total - total / 2)
}

/// `id2label` as `count` names; classes it lacks are named `LABEL_i`, as
/// transformers does.
fn label_names(id2label: &BTreeMap<String, String>, count: usize) -> Result<Vec<String>> {
    let mut names: Vec<String> = (0..count).map(|i| format!("LABEL_{i}")).collect();
    for (id, name) in id2label {
        let i: usize = id.parse().map_err(|_| bad_config(format!("id2label has the key {id:?}, not a class index")))?;
        let slot = names
            .get_mut(i)
            .ok_or_else(|| bad_config(format!("id2label names class {i} but the model has {count} classes")))?;
        *slot = name.clone();
    }
    Ok(names)
}

/// One class of a prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Class index.
    pub id: usize,
    /// Class name (`id2label`).
    pub label: String,
    /// Softmax probability over all classes.
    pub score: f32,
    /// The raw logit.
    pub logit: f32,
}

/// An EfficientNet-Lite classifier ready to run: the network, its
/// preprocessing and the backend.
///
/// ```no_run
/// use ipfs_accelerate_models::{BackendChoice, vision::efficientnet::EfficientNet};
/// let model = EfficientNet::load("efficientnet-lite0".as_ref(), BackendChoice::Cpu)?;
/// let image = model.read_image("cat.jpg".as_ref())?;
/// let top5 = &model.classify(&[image], 5)?[0];
/// println!("{} ({:.2})", top5[0].label, top5[0].score);
/// # Ok::<(), ipfs_accelerate_models::Error>(())
/// ```
pub struct EfficientNet {
    dir: PathBuf,
    model: EfficientNetLite,
    processor: ImageProcessor,
    engine: Engine,
    notice: Option<String>,
}

impl EfficientNet {
    /// Loads the model in `dir` onto the chosen backend, in float32.
    pub fn load(dir: &Path, backend: BackendChoice) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::ModelDirMissing(dir.to_path_buf()));
        }
        let (engine, notice) = backend.open(Precision::F32)?;
        Self::load_on(dir, engine, notice)
    }

    /// Loads the model in `dir` onto an engine made elsewhere, with the
    /// notice to show, if any.
    pub fn load_on(dir: &Path, engine: Engine, notice: Option<String>) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::ModelDirMissing(dir.to_path_buf()));
        }
        let cfg = read_config(dir)?;
        let processor = ImageProcessor::load(dir)?;
        let weights_path = dir.join("model.safetensors");
        if !weights_path.exists() {
            return Err(Error::MissingFile {
                path: weights_path,
                hint: "convert the PyTorch checkpoint with scripts/convert-efficientnet-lite0.py (scripts/fetch-test-models.sh does it)",
            });
        }
        let file = SafetensorsFile::open(&weights_path)?;
        let model = EfficientNetLite::load(cfg, &file)?;
        tracing::debug!(dir = %dir.display(), blocks = model.blocks.len(), "loaded EfficientNet-Lite");
        Ok(EfficientNet { dir: dir.to_path_buf(), model, processor, engine, notice })
    }

    /// The directory the model came from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The network.
    pub fn model(&self) -> &EfficientNetLite {
        &self.model
    }

    /// Class names, by class index.
    pub fn labels(&self) -> &[String] {
        self.model.labels()
    }

    /// The preprocessing read from `preprocessor_config.json`.
    pub fn processor(&self) -> &ImageProcessor {
        &self.processor
    }

    /// The engine the model runs on.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The backend it runs on.
    pub fn backend(&self) -> BackendKind {
        self.engine.kind()
    }

    /// Set when `--backend auto` wanted a GPU but fell back to the CPU: why.
    pub fn backend_notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    /// Decodes image bytes (transparency composited over white when the
    /// processor converts to RGB, else dropped).
    pub fn decode(&self, bytes: &[u8]) -> Result<RgbImage> {
        let alpha = if self.processor.convert_rgb { Alpha::OverWhite } else { Alpha::Drop };
        decode_image(bytes, alpha)
    }

    /// Reads and decodes an image file (see [`Self::decode`]).
    pub fn read_image(&self, path: &Path) -> Result<RgbImage> {
        self.decode(&read_file(path)?).map_err(|e| match e {
            Error::Image(message) => Error::Image(format!("{}: {message}", path.display())),
            other => other,
        })
    }

    /// The logits of each image, `classes` floats per image.
    pub fn logits(&self, images: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
        if images.is_empty() {
            return Err(Error::InvalidOption("no images were given: pass at least one image".into()));
        }
        let classes = self.labels().len();
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(BATCH) {
            let pixels = self.processor.preprocess_batch(chunk)?;
            let logits = self.model.forward(&self.engine, &pixels)?;
            let values = logits.as_f32().ok_or_else(|| Error::Backend("the logits are not float32".into()))?;
            out.extend(values.chunks_exact(classes).map(<[f32]>::to_vec));
        }
        Ok(out)
    }

    /// The `top_k` most probable classes of each image, most probable first.
    pub fn classify(&self, images: &[RgbImage], top_k: usize) -> Result<Vec<Vec<Prediction>>> {
        if top_k == 0 {
            return Err(Error::InvalidOption("top-k must be at least 1".into()));
        }
        Ok(self.logits(images)?.iter().map(|row| top_predictions(row, self.labels(), top_k)).collect())
    }
}

/// Reads and parses `config.json`, with the path in every error.
fn read_config(dir: &Path) -> Result<EfficientNetConfig> {
    let path = dir.join("config.json");
    if !path.exists() {
        return Err(Error::MissingFile {
            path,
            hint: "an EfficientNet-Lite directory needs the config.json scripts/convert-efficientnet-lite0.py writes",
        });
    }
    serde_json::from_slice(&read_file(&path)?).map_err(|e| Error::Config {
        path,
        what: "EfficientNet-Lite config",
        message: e.to_string(),
    })
}

/// The `k` classes with the highest logits (ties: lower index first), with
/// their softmax probabilities.
pub fn top_predictions(logits: &[f32], labels: &[String], k: usize) -> Vec<Prediction> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .take(k)
        .map(|id| Prediction {
            id,
            label: labels.get(id).cloned().unwrap_or_else(|| format!("LABEL_{id}")),
            score: (f64::from(logits[id] - max).exp() / total) as f32,
            logit: logits[id],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_tensorflow() {
        // 224 -> 112 with a 3x3 stride 2: one pixel, at the bottom/right.
        assert_eq!(same_padding(224, 3, 2), (112, 0, 1));
        // 56 -> 28 with a 5x5 stride 2: three pixels, the odd one after.
        assert_eq!(same_padding(56, 5, 2), (28, 1, 2));
        // Odd input 7 with a 3x3 stride 2: ceil(7/2) = 4, two pixels.
        assert_eq!(same_padding(7, 3, 2), (4, 1, 1));
        assert_eq!(same_padding(14, 5, 1), (14, 2, 2));
        assert_eq!(same_padding(7, 1, 1), (7, 0, 0));
    }

    #[test]
    fn labels_fill_gaps_and_refuse_bad_keys() {
        let mut id2label = BTreeMap::new();
        id2label.insert("1".to_string(), "cat".to_string());
        assert_eq!(label_names(&id2label, 3).unwrap(), ["LABEL_0", "cat", "LABEL_2"]);
        assert!(label_names(&id2label, 1).is_err());
        id2label.insert("x".to_string(), "dog".to_string());
        assert!(label_names(&id2label, 3).is_err());
    }

    #[test]
    fn top_predictions_sort_and_normalise() {
        let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let top = top_predictions(&[1.0, 3.0, 2.0], &labels, 2);
        assert_eq!(top.iter().map(|p| p.id).collect::<Vec<_>>(), [1, 2]);
        let e = [1f64.exp(), 3f64.exp(), 2f64.exp()];
        assert!((f64::from(top[0].score) - e[1] / e.iter().sum::<f64>()).abs() < 1e-6);
    }
}
