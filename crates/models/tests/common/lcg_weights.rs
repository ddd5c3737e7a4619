//! Weights of the tiny random models, regenerated from the seeds in their
//! goldens: the golden scripts (`scripts/make-tiny-*goldens.py`) fill every
//! tensor from a 32-bit LCG seeded per tensor, so no weights are committed.

// Each test binary uses only some of these.
#![allow(dead_code)]

use serde::Deserialize;
use std::path::Path;

/// One tensor of a golden: its name, shape and generator seed.
#[derive(Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub seed: u32,
    pub scale: f64,
    /// Norm scales are drawn around 1 instead of 0.
    #[serde(alias = "norm_weight")]
    pub layer_norm_weight: bool,
}

/// The generator of the golden scripts, value for value, as little-endian
/// float32 bytes.
pub fn lcg_values(spec: &TensorSpec) -> Vec<u8> {
    let n: usize = spec.shape.iter().product();
    let mut x = spec.seed;
    let mut bytes = Vec::with_capacity(n * 4);
    for _ in 0..n {
        x = x.wrapping_mul(1664525).wrapping_add(1013904223);
        let mut v = ((x >> 8) as f64 / (1u64 << 24) as f64 - 0.5) * 2.0 * spec.scale;
        if spec.layer_norm_weight {
            v = 1.0 + v * 0.2;
        }
        bytes.extend_from_slice(&(v as f32).to_le_bytes());
    }
    bytes
}

/// Writes every tensor of `specs` as float32 into the safetensors file `path`.
pub fn write_safetensors(specs: &[TensorSpec], path: &Path) {
    let data: Vec<(String, Vec<u8>, Vec<usize>)> =
        specs.iter().map(|t| (t.name.clone(), lcg_values(t), t.shape.clone())).collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = data
        .iter()
        .map(|(n, d, s)| {
            (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap())
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}
