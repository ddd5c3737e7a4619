//! The tiny random ViT and CLIP of `goldens/tiny-vision.json` (made by
//! scripts/make-tiny-vision-goldens.py) written into model directories, their
//! weights regenerated from the golden's seeds; and a tiny random
//! EfficientNet-Lite. Shared by the models' and the browser crate's tests.
//!
//! Needs the includer to declare `mod lcg_weights` (common/lcg_weights.rs)
//! at its root.

// Each test binary uses only some of these.
#![allow(dead_code)]

use super::lcg_weights::{write_safetensors, TensorSpec};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
pub struct Golden {
    pub images: Vec<String>,
    pub vit: VitGolden,
    pub clip: ClipGolden,
}

#[derive(Deserialize)]
pub struct VitGolden {
    pub config: serde_json::Value,
    pub preprocessor_config: serde_json::Value,
    pub tensors: Vec<TensorSpec>,
    pub logits: Vec<Vec<f32>>,
}

#[derive(Deserialize)]
pub struct ClipGolden {
    pub config: serde_json::Value,
    pub preprocessor_config: serde_json::Value,
    pub tokenizer: serde_json::Value,
    pub tensors: Vec<TensorSpec>,
    pub labels: Vec<String>,
    pub template: String,
    pub image_embeds: Vec<Vec<f32>>,
    pub text_embeds: Vec<Vec<f32>>,
    pub probs: Vec<Vec<f32>>,
}

pub fn golden() -> Golden {
    serde_json::from_str(include_str!("../goldens/tiny-vision.json")).unwrap()
}

/// Where the golden's images are (`Golden::images` names files there).
pub fn images_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/goldens/vision")
}

/// Writes a model directory: config, preprocessor config, seeded weights
/// and (for CLIP) the tokenizer.
pub fn write_model(
    dir: &Path,
    config: &serde_json::Value,
    pre: &serde_json::Value,
    tensors: &[TensorSpec],
    tokenizer: Option<&serde_json::Value>,
) {
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::write(dir.join("preprocessor_config.json"), pre.to_string()).unwrap();
    write_safetensors(tensors, &dir.join("model.safetensors"));
    if let Some(t) = tokenizer {
        std::fs::write(dir.join("tokenizer.json"), t.to_string()).unwrap();
    }
}

pub fn vit_dir(g: &Golden) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), &g.vit.config, &g.vit.preprocessor_config, &g.vit.tensors, None);
    dir
}

pub fn clip_dir(g: &Golden) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), &g.clip.config, &g.clip.preprocessor_config, &g.clip.tensors, Some(&g.clip.tokenizer));
    dir
}

/// A tiny EfficientNet-Lite (16x16 input, stem 8, three blocks covering
/// expand ratio 1, stride 2 with odd padding, 5x5 kernels and a residual)
/// with seeded random weights: the network of efficientnet_lite0.rs's
/// `tiny_model`, for tests outside that file.
pub fn tiny_efficientnet(dir: &Path) {
    let blocks = serde_json::json!([
        {"kernel_size": 3, "stride": 1, "expand_ratio": 1, "in_channels": 8, "out_channels": 8},
        {"kernel_size": 5, "stride": 2, "expand_ratio": 3, "in_channels": 8, "out_channels": 12},
        {"kernel_size": 3, "stride": 1, "expand_ratio": 2, "in_channels": 12, "out_channels": 12},
    ]);
    let config = serde_json::json!({
        "model_type": "efficientnet_lite", "image_size": 16, "padding": "tf_same", "activation": "relu6",
        "batch_norm_folded": true, "stem_channels": 8, "head_channels": 24, "blocks": blocks,
        "num_labels": 5, "id2label": {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four"},
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let preprocessor = serde_json::json!({
        "size": {"height": 16, "width": 16}, "resample": 2, "do_rescale": false,
        "image_mean": [127.0, 127.0, 127.0], "image_std": [128.0, 128.0, 128.0],
    });
    std::fs::write(dir.join("preprocessor_config.json"), preprocessor.to_string()).unwrap();
    let mut specs = Vec::new();
    let mut seed = 1;
    let mut conv = |name: &str, shape: Vec<usize>| {
        let fan_in: usize = shape[1..].iter().product();
        let out = shape[0];
        for (suffix, shape, scale) in [("weight", shape, 2.0 / (fan_in as f64).sqrt()), ("bias", vec![out], 0.2)] {
            specs.push(TensorSpec { name: format!("{name}.{suffix}"), shape, seed, scale, layer_norm_weight: false });
            seed += 1;
        }
    };
    conv("stem", vec![8, 3, 3, 3]);
    conv("blocks.0.depthwise", vec![8, 1, 3, 3]);
    conv("blocks.0.project", vec![8, 8, 1, 1]);
    conv("blocks.1.expand", vec![24, 8, 1, 1]);
    conv("blocks.1.depthwise", vec![24, 1, 5, 5]);
    conv("blocks.1.project", vec![12, 24, 1, 1]);
    conv("blocks.2.expand", vec![24, 12, 1, 1]);
    conv("blocks.2.depthwise", vec![24, 1, 3, 3]);
    conv("blocks.2.project", vec![12, 24, 1, 1]);
    conv("head", vec![24, 12, 1, 1]);
    conv("classifier", vec![5, 24]);
    write_safetensors(&specs, &dir.join("model.safetensors"));
}
