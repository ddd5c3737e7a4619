//! Image classification, ready to run: ViT or EfficientNet-Lite with their
//! own labels, or CLIP zero-shot over labels the caller names, chosen from
//! `config.json`.

use super::clip::{ClipConfig, ClipModel};
use super::decode::{decode_image, Alpha};
use super::efficientnet::{EfficientNetConfig, EfficientNetLite};
use super::processor::ImageProcessor;
use super::transformer::softmax;
use super::vit::{ViTConfig, ViTModel};
use crate::backend::{BackendChoice, BackendKind, Precision};
use crate::engine::Engine;
use crate::error::{read_file, Error, Result};
use crate::safetensors_file::SafetensorsFile;
use crate::tokenizer::TextTokenizer;
use image::RgbImage;
use ipfs_accelerate_tensor::Tensor;
use std::path::{Path, PathBuf};

/// The prompt CLIP's zero-shot classification wraps each label in, as
/// transformers' zero-shot image-classification pipeline does.
pub const DEFAULT_TEMPLATE: &str = "a photo of a {label}.";

/// Images per forward pass: bounds memory, and gives the WebGPU engine at
/// most two batch shapes to compile per model.
const BATCH: usize = 8;

/// A label and its probability.
pub type Scored = (String, f32);

// Every variant boxed, so the enum stays small whichever model it holds.
enum Kind {
    Vit(Box<ViTModel>),
    EfficientNet(Box<EfficientNetLite>),
    Clip { model: Box<ClipModel>, tokenizer: Box<TextTokenizer> },
}

/// An image classifier loaded from a model directory (`config.json`,
/// `preprocessor_config.json`, `model.safetensors`, and for CLIP
/// `tokenizer.json`).
///
/// ```no_run
/// use ipfs_accelerate_models::{BackendChoice, vision::ImageClassifier};
/// let vit = ImageClassifier::load("vit-base-patch16-224".as_ref(), BackendChoice::Auto)?;
/// let image = vit.read_image("cat.jpg".as_ref())?;
/// let top5 = vit.classify(&[image], 5)?;
/// println!("{} ({:.2})", top5[0][0].0, top5[0][0].1);
/// # Ok::<(), ipfs_accelerate_models::Error>(())
/// ```
pub struct ImageClassifier {
    dir: PathBuf,
    kind: Kind,
    processor: ImageProcessor,
    engine: Engine,
    notice: Option<String>,
    template: String,
}

impl ImageClassifier {
    /// Loads the model in `dir` onto the chosen backend, in float32.
    pub fn load(dir: &Path, backend: BackendChoice) -> Result<Self> {
        Self::load_with(dir, backend, Precision::F32)
    }

    /// Loads the model in `dir` onto the chosen backend at `precision`.
    pub fn load_with(dir: &Path, backend: BackendChoice, precision: Precision) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::ModelDirMissing(dir.to_path_buf()));
        }
        let (engine, notice) = backend.open(precision)?;
        Self::load_on(dir, engine, notice)
    }

    /// Loads the model in `dir` onto an engine made elsewhere, with the
    /// notice to show, if any.
    pub fn load_on(dir: &Path, engine: Engine, notice: Option<String>) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::ModelDirMissing(dir.to_path_buf()));
        }
        let config_path = dir.join("config.json");
        if !config_path.exists() {
            return Err(Error::MissingFile {
                path: config_path,
                hint: "every model directory needs the config.json it was published with",
            });
        }
        let bad_config =
            |message: String| Error::Config { path: config_path.clone(), what: "vision model config", message };
        let raw: serde_json::Value =
            serde_json::from_slice(&read_file(&config_path)?).map_err(|e| bad_config(e.to_string()))?;
        let processor = ImageProcessor::load(dir)?;
        let weights_path = dir.join("model.safetensors");
        if !weights_path.exists() {
            return Err(Error::MissingFile {
                path: weights_path,
                hint: "the model's weights must be in model.safetensors (convert pytorch_model.bin with safetensors' convert script)",
            });
        }
        let file = SafetensorsFile::open(&weights_path)?;
        let kind = match vision_type(&raw) {
            Some("vit") => {
                let cfg: ViTConfig = serde_json::from_value(raw).map_err(|e| bad_config(e.to_string()))?;
                Kind::Vit(Box::new(ViTModel::load(cfg, &file)?))
            }
            Some("efficientnet_lite") => {
                let cfg: EfficientNetConfig = serde_json::from_value(raw).map_err(|e| bad_config(e.to_string()))?;
                Kind::EfficientNet(Box::new(EfficientNetLite::load(cfg, &file)?))
            }
            Some(_) => {
                let cfg: ClipConfig = serde_json::from_value(raw).map_err(|e| bad_config(e.to_string()))?;
                let model = ClipModel::load(cfg, &file)?;
                let tokenizer = TextTokenizer::load(dir, model.max_text_tokens())?;
                Kind::Clip { model: Box::new(model), tokenizer: Box::new(tokenizer) }
            }
            None => {
                return Err(bad_config(format!(
                    "model_type {:?} (architectures {}) is not an image classifier this build runs: supported are vit (ViTForImageClassification), clip (CLIPModel) and efficientnet_lite (scripts/convert-efficientnet-lite0.py)",
                    raw.get("model_type").and_then(|v| v.as_str()).unwrap_or(""),
                    raw.get("architectures").map(|v| v.to_string()).unwrap_or_else(|| "none listed".into())
                )))
            }
        };
        tracing::debug!(dir = %dir.display(), model_type = kind_name(&kind), "loaded image classifier");
        Ok(ImageClassifier {
            dir: dir.to_path_buf(),
            kind,
            processor,
            engine,
            notice,
            template: DEFAULT_TEMPLATE.into(),
        })
    }

    /// The directory the model came from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `"vit"`, `"efficientnet_lite"` or `"clip"`.
    pub fn model_type(&self) -> &'static str {
        kind_name(&self.kind)
    }

    /// Whether the model classifies by labels the caller gives (CLIP)
    /// rather than its own (ViT).
    pub fn is_zero_shot(&self) -> bool {
        matches!(self.kind, Kind::Clip { .. })
    }

    /// The model's own class names (ViT with a classifier head; empty otherwise).
    pub fn labels(&self) -> &[String] {
        match &self.kind {
            Kind::Vit(model) => model.labels(),
            Kind::EfficientNet(model) => model.labels(),
            Kind::Clip { .. } => &[],
        }
    }

    /// The backend it runs on.
    pub fn backend(&self) -> BackendKind {
        self.engine.kind()
    }

    /// The backend and device, in one line.
    pub fn backend_description(&self) -> String {
        self.engine.describe()
    }

    /// Set when `--backend auto` wanted a GPU but fell back to the CPU: why.
    pub fn backend_notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    /// The engine the model runs on.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The preprocessing read from `preprocessor_config.json`.
    pub fn processor(&self) -> &ImageProcessor {
        &self.processor
    }

    /// The zero-shot prompt template ([`DEFAULT_TEMPLATE`] unless set).
    pub fn template(&self) -> &str {
        &self.template
    }

    /// Sets the zero-shot prompt template: `{label}` marks where each label goes.
    pub fn set_template(&mut self, template: &str) -> Result<()> {
        if !template.contains("{label}") {
            return Err(Error::InvalidOption(format!(
                "the prompt template {template:?} has no {{label}} placeholder (e.g. \"a photo of a {{label}}.\")"
            )));
        }
        self.template = template.to_string();
        Ok(())
    }

    /// Decodes image bytes with this model's alpha policy (composited over
    /// white when the processor converts to RGB, else dropped, as
    /// transformers' pipelines do).
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

    /// The top `top_k` of the model's own labels for each image, most
    /// probable first (softmax of the logits). ViT and EfficientNet only:
    /// CLIP needs labels ([`Self::zero_shot`]).
    pub fn classify(&self, images: &[RgbImage], top_k: usize) -> Result<Vec<Vec<Scored>>> {
        if let Kind::EfficientNet(model) = &self.kind {
            check_top_k(top_k)?;
            let mut out = Vec::with_capacity(images.len());
            for chunk in non_empty(images)?.chunks(BATCH) {
                let logits = model.forward(&self.engine, &self.pixels(chunk)?)?;
                let logits = logits.as_f32().ok_or_else(|| Error::Backend("the logits are not float32".into()))?;
                for row in logits.chunks_exact(model.labels().len()) {
                    out.push(top(model.labels().iter().cloned().zip(softmax(row)).collect(), top_k));
                }
            }
            return Ok(out);
        }
        let Kind::Vit(model) = &self.kind else {
            return Err(Error::InvalidOption(
                "CLIP classifies by labels you give it: pass candidate labels (zero-shot classification)".into(),
            ));
        };
        if !model.has_classifier() {
            return Err(Error::InvalidOption(format!(
                "{} is a ViT without a classifier head (ViTModel): use a ViTForImageClassification checkpoint",
                self.dir.display()
            )));
        }
        check_top_k(top_k)?;
        let mut out = Vec::with_capacity(images.len());
        for chunk in non_empty(images)?.chunks(BATCH) {
            let logits = model.forward(&self.engine, &self.pixels(chunk)?)?;
            let logits = logits.as_f32().expect("logits are float32");
            for row in logits.chunks_exact(model.labels().len()) {
                out.push(top(model.labels().iter().cloned().zip(softmax(row)).collect(), top_k));
            }
        }
        Ok(out)
    }

    /// CLIP zero-shot classification: for each image, every label with its
    /// probability (softmax over the labels of `logit_scale` times the
    /// cosine similarity of the image to the label's prompt), most probable
    /// first.
    pub fn zero_shot(&self, images: &[RgbImage], labels: &[&str]) -> Result<Vec<Vec<Scored>>> {
        let model = self.clip()?;
        if labels.is_empty() {
            return Err(Error::InvalidOption("zero-shot classification needs at least one candidate label".into()));
        }
        let prompts: Vec<String> = labels.iter().map(|l| self.template.replace("{label}", l)).collect();
        let prompts: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let texts = self.embed_texts(&prompts)?;
        let scale = model.logit_scale();
        let images = self.embed_images(images)?;
        Ok(images
            .iter()
            .map(|image| {
                let logits: Vec<f32> =
                    texts.iter().map(|t| scale * t.iter().zip(image).map(|(a, b)| a * b).sum::<f32>()).collect();
                let scored = labels.iter().map(|l| l.to_string()).zip(softmax(&logits)).collect();
                top(scored, labels.len())
            })
            .collect())
    }

    /// CLIP: one L2-normalised embedding per image.
    pub fn embed_images(&self, images: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
        let model = self.clip()?;
        let mut out = Vec::with_capacity(images.len());
        for chunk in non_empty(images)?.chunks(BATCH) {
            out.extend(model.image_embeds(&self.engine, &self.pixels(chunk)?)?);
        }
        Ok(out)
    }

    /// CLIP: one L2-normalised embedding per text (used as given: no
    /// template), truncated to the model's 77 (or configured) tokens.
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let Kind::Clip { model, tokenizer } = &self.kind else { return Err(not_clip()) };
        if texts.is_empty() {
            return Err(Error::EmptyInput);
        }
        let ids: Vec<Vec<u32>> = tokenizer.encode_batch(texts)?.into_iter().map(|e| e.ids).collect();
        let mut out = Vec::with_capacity(texts.len());
        for chunk in ids.chunks(32) {
            out.extend(model.text_embeds(&self.engine, chunk)?);
        }
        Ok(out)
    }

    fn clip(&self) -> Result<&ClipModel> {
        match &self.kind {
            Kind::Clip { model, .. } => Ok(model),
            Kind::Vit(_) | Kind::EfficientNet(_) => Err(not_clip()),
        }
    }

    /// Preprocesses a batch, refusing sizes the model cannot take.
    fn pixels(&self, images: &[RgbImage]) -> Result<Tensor> {
        self.processor.preprocess_batch(images)
    }
}

fn not_clip() -> Error {
    Error::InvalidOption(
        "this is a ViT or EfficientNet classifier: zero-shot labels and image/text embeddings need a CLIP model".into(),
    )
}

fn non_empty(images: &[RgbImage]) -> Result<&[RgbImage]> {
    if images.is_empty() {
        return Err(Error::InvalidOption("no images were given: pass at least one image".into()));
    }
    Ok(images)
}

fn check_top_k(top_k: usize) -> Result<()> {
    if top_k == 0 {
        return Err(Error::InvalidOption("top-k must be at least 1".into()));
    }
    Ok(())
}

/// The `k` highest scores, highest first (ties keep label order).
fn top(mut scored: Vec<Scored>, k: usize) -> Vec<Scored> {
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.truncate(k);
    scored
}

fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Vit(_) => "vit",
        Kind::EfficientNet(_) => "efficientnet_lite",
        Kind::Clip { .. } => "clip",
    }
}

/// `"vit"`, `"efficientnet_lite"` or `"clip"` from `model_type`, else (ViT,
/// CLIP) from `architectures[0]`.
fn vision_type(raw: &serde_json::Value) -> Option<&'static str> {
    let model_type = raw.get("model_type").and_then(|v| v.as_str()).unwrap_or("");
    let arch = raw.get("architectures").and_then(|v| v.get(0)).and_then(|v| v.as_str()).unwrap_or("");
    match model_type {
        "vit" => Some("vit"),
        "clip" => Some("clip"),
        "efficientnet_lite" => Some("efficientnet_lite"),
        "" if arch.starts_with("ViT") => Some("vit"),
        "" if arch.starts_with("CLIP") => Some("clip"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn detects_vit_and_clip_from_the_config() {
        assert_eq!(vision_type(&json!({"model_type": "vit"})), Some("vit"));
        assert_eq!(vision_type(&json!({"architectures": ["CLIPModel"]})), Some("clip"));
        assert_eq!(vision_type(&json!({"model_type": "efficientnet_lite"})), Some("efficientnet_lite"));
        assert_eq!(vision_type(&json!({"model_type": "bert", "architectures": ["ViTModel"]})), None);
    }

    #[test]
    fn top_sorts_and_truncates() {
        let scored = vec![("a".into(), 0.1), ("b".into(), 0.7), ("c".into(), 0.2)];
        assert_eq!(top(scored, 2), vec![("b".to_string(), 0.7), ("c".to_string(), 0.2)]);
    }
}
