//! The hyperparameters of a decoder-only model, read from GGUF metadata or
//! a Hugging Face `config.json`, and the rotary-embedding frequencies they
//! imply (with the scaling variants applied).

use super::ops::{Rope, RopeStyle};
use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use serde_json::Value;
use std::path::Path;

/// Which decoder architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecoderArch {
    /// Llama and its relatives (SmolLM2, TinyLlama, Llama 2/3, Mistral,
    /// Qwen2 with its QKV biases): RMSNorm, RoPE, grouped-query attention,
    /// SwiGLU.
    Llama,
    /// GPT-2: LayerNorm, learned positions, fused QKV with biases, GELU.
    Gpt2,
}

/// Hyperparameters of a decoder-only model.
#[derive(Clone, Debug, PartialEq)]
pub struct DecoderConfig {
    /// The architecture.
    pub arch: DecoderArch,
    /// Tokens in the vocabulary (rows of the embedding).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (`heads` without grouped-query attention).
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Longest sequence (prompt + output) the model was trained for.
    pub context_length: usize,
    /// Epsilon of RMSNorm / LayerNorm.
    pub norm_eps: f32,
    /// Rotary embedding (Llama family only).
    pub rope: Option<Rope>,
}

impl DecoderConfig {
    /// Reads the hyperparameters of a GGUF file (`general.architecture`
    /// `llama`, `qwen2`, `mistral` or `gpt2`). `rope_freqs` are llama.cpp's
    /// per-pair frequency divisors (Llama 3's scaling), when the file has them.
    pub fn from_gguf(file: &GgufFile, path: &Path, rope_freqs: Option<&[f32]>) -> Result<Self> {
        let bad = |message: String| Error::Config { path: path.to_path_buf(), what: "GGUF model", message };
        let arch_name = file.get_str("general.architecture").ok_or_else(|| bad("no general.architecture".into()))?;
        let arch = match arch_name {
            "llama" | "qwen2" | "mistral" => DecoderArch::Llama,
            "gpt2" => DecoderArch::Gpt2,
            other => {
                return Err(bad(format!(
                "architecture {other:?} is not supported for text generation (supported: llama, qwen2, mistral, gpt2)"
            )))
            }
        };
        let key = |name: &str| format!("{arch_name}.{name}");
        let count = |name: &str| -> Result<usize> {
            file.get_u64(&key(name))
                .map(|v| v as usize)
                .ok_or_else(|| bad(format!("metadata {} is missing or not an integer", key(name))))
        };
        let hidden_size = count("embedding_length")?;
        let heads = count("attention.head_count")?;
        let kv_heads = file.get_u64(&key("attention.head_count_kv")).map(|v| v as usize).unwrap_or(heads);
        let vocab_size = match file.get_u64(&key("vocab_size")) {
            Some(v) => v as usize,
            None => file
                .get_array("tokenizer.ggml.tokens")
                .map(<[_]>::len)
                .ok_or_else(|| bad("no vocabulary size".into()))?,
        };
        let norm_eps = match arch {
            DecoderArch::Llama => file.get_f32(&key("attention.layer_norm_rms_epsilon")).unwrap_or(1e-5),
            DecoderArch::Gpt2 => file.get_f32(&key("attention.layer_norm_epsilon")).unwrap_or(1e-5),
        };
        let head_dim =
            file.get_u64(&key("attention.key_length")).map(|v| v as usize).unwrap_or(hidden_size / heads.max(1));
        let rope = match arch {
            DecoderArch::Gpt2 => None,
            DecoderArch::Llama => {
                let dims = file.get_u64(&key("rope.dimension_count")).map(|v| v as usize).unwrap_or(head_dim);
                // Checked before the table is sized from it: a lying count must not allocate.
                if head_dim > MAX_HEAD_DIM {
                    return Err(bad(format!("head width {head_dim} is implausibly large (at most {MAX_HEAD_DIM})")));
                }
                if dims > head_dim {
                    return Err(bad(format!("rotary dimensions {dims} exceed the head width {head_dim}")));
                }
                let base = file.get_f32(&key("rope.freq_base")).unwrap_or(10000.0);
                let mut inv_freq = default_inv_freq(base, dims);
                match file.get_str(&key("rope.scaling.type")) {
                    None | Some("none") => {}
                    Some("linear") => {
                        let factor = file.get_f32(&key("rope.scaling.factor")).unwrap_or(1.0);
                        inv_freq.iter_mut().for_each(|f| *f /= factor);
                    }
                    Some(other) => {
                        return Err(bad(format!(
                            "rope scaling {other:?} is not supported (supported: none, linear, llama3)"
                        )))
                    }
                }
                if let Some(divisors) = rope_freqs {
                    if divisors.len() != inv_freq.len() {
                        return Err(bad(format!(
                            "rope_freqs has {} values, expected {}",
                            divisors.len(),
                            inv_freq.len()
                        )));
                    }
                    inv_freq.iter_mut().zip(divisors).for_each(|(f, d)| *f /= d);
                }
                Some(Rope { inv_freq, style: RopeStyle::Interleaved, attention_factor: 1.0 })
            }
        };
        let config = DecoderConfig {
            arch,
            vocab_size,
            hidden_size,
            layers: count("block_count")?,
            heads,
            kv_heads,
            head_dim,
            intermediate_size: count("feed_forward_length")?,
            context_length: count("context_length")?,
            norm_eps,
            rope,
        };
        config.check().map_err(bad)?;
        Ok(config)
    }

    /// Reads a Hugging Face `config.json` (`model_type` `llama`, `mistral`,
    /// `qwen2` or `gpt2`).
    pub fn from_hf_json(raw: &Value, path: &Path) -> Result<Self> {
        let bad = |message: String| Error::Config { path: path.to_path_buf(), what: "config.json", message };
        let model_type = raw.get("model_type").and_then(Value::as_str).unwrap_or("");
        let int = |name: &str| -> Result<usize> {
            raw.get(name)
                .and_then(Value::as_u64)
                .map(|v| v as usize)
                .ok_or_else(|| bad(format!("{name} is missing or not an integer")))
        };
        let float = |name: &str, default: f64| raw.get(name).and_then(Value::as_f64).unwrap_or(default) as f32;
        let config = match model_type {
            "llama" | "mistral" | "qwen2" => {
                let hidden_size = int("hidden_size")?;
                let heads = int("num_attention_heads")?;
                let head_dim = raw.get("head_dim").and_then(Value::as_u64).map(|v| v as usize).unwrap_or(hidden_size / heads.max(1));
                if head_dim > MAX_HEAD_DIM {
                    return Err(bad(format!("head width {head_dim} is implausibly large (at most {MAX_HEAD_DIM})")));
                }
                // transformers 5 writes theta and scaling into one `rope_parameters`
                // object; older configs have top-level `rope_theta` and `rope_scaling`.
                let parameters = raw.get("rope_parameters").filter(|p| p.is_object());
                let base = parameters
                    .and_then(|p| p.get("rope_theta"))
                    .and_then(Value::as_f64)
                    .map(|v| v as f32)
                    .unwrap_or_else(|| float("rope_theta", 10000.0));
                let scaling = parameters.or(raw.get("rope_scaling"));
                let mut inv_freq = default_inv_freq(base, head_dim);
                apply_hf_rope_scaling(&mut inv_freq, scaling, head_dim).map_err(bad)?;
                DecoderConfig {
                    arch: DecoderArch::Llama,
                    vocab_size: int("vocab_size")?,
                    hidden_size,
                    layers: int("num_hidden_layers")?,
                    heads,
                    kv_heads: raw.get("num_key_value_heads").and_then(Value::as_u64).map(|v| v as usize).unwrap_or(heads),
                    head_dim,
                    intermediate_size: int("intermediate_size")?,
                    context_length: int("max_position_embeddings")?,
                    norm_eps: float("rms_norm_eps", 1e-6),
                    rope: Some(Rope { inv_freq, style: RopeStyle::Halves, attention_factor: 1.0 }),
                }
            }
            "gpt2" => {
                let hidden_size = int("n_embd")?;
                let heads = int("n_head")?;
                DecoderConfig {
                    arch: DecoderArch::Gpt2,
                    vocab_size: int("vocab_size")?,
                    hidden_size,
                    layers: int("n_layer")?,
                    heads,
                    kv_heads: heads,
                    head_dim: hidden_size / heads.max(1),
                    intermediate_size: raw.get("n_inner").and_then(Value::as_u64).map(|v| v as usize).unwrap_or(4 * hidden_size),
                    context_length: int("n_positions")?,
                    norm_eps: float("layer_norm_epsilon", 1e-5),
                    rope: None,
                }
            }
            other => {
                return Err(bad(format!(
                    "model_type {other:?} is not a supported text-generation architecture (supported: llama, mistral, qwen2, gpt2)"
                )))
            }
        };
        config.check().map_err(bad)?;
        Ok(config)
    }

    /// Consistency checks that keep the kernels' index arithmetic in bounds.
    fn check(&self) -> std::result::Result<(), String> {
        let positive = [
            ("vocabulary size", self.vocab_size),
            ("hidden size", self.hidden_size),
            ("layer count", self.layers),
            ("head count", self.heads),
            ("key/value head count", self.kv_heads),
            ("head width", self.head_dim),
            ("feed-forward width", self.intermediate_size),
            ("context length", self.context_length),
        ];
        for (what, v) in positive {
            if v == 0 {
                return Err(format!("{what} is 0"));
            }
            // Bounds absurd values before anything is allocated from them.
            if v > 1 << 24 {
                return Err(format!("{what} {v} is implausibly large"));
            }
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return Err(format!("{} query heads cannot be grouped over {} key/value heads", self.heads, self.kv_heads));
        }
        if let Some(rope) = &self.rope {
            if rope.inv_freq.len() * 2 > self.head_dim {
                return Err(format!(
                    "rotary dimensions {} exceed the head width {}",
                    rope.inv_freq.len() * 2,
                    self.head_dim
                ));
            }
        }
        if self.arch == DecoderArch::Gpt2 && self.heads * self.head_dim != self.hidden_size {
            return Err(format!(
                "{} heads of {} do not make the hidden size {}",
                self.heads, self.head_dim, self.hidden_size
            ));
        }
        Ok(())
    }
}

/// Widest attention head accepted (real models use 64–256): bounds the
/// rotary table before the other checks run.
const MAX_HEAD_DIM: usize = 4096;

/// `1 / base^(2i/dims)` for each pair, in float32 as transformers computes it.
fn default_inv_freq(base: f32, dims: usize) -> Vec<f32> {
    (0..dims / 2).map(|i| 1.0 / base.powf((2 * i) as f32 / dims as f32)).collect()
}

/// transformers' `rope_scaling` variants that change the frequencies:
/// `linear` and `llama3` (`default`/absent changes nothing).
fn apply_hf_rope_scaling(
    inv_freq: &mut [f32],
    scaling: Option<&Value>,
    head_dim: usize,
) -> std::result::Result<(), String> {
    let Some(scaling) = scaling.filter(|s| !s.is_null()) else { return Ok(()) };
    let kind = scaling.get("rope_type").or_else(|| scaling.get("type")).and_then(Value::as_str).unwrap_or("default");
    let num = |name: &str| scaling.get(name).and_then(Value::as_f64).map(|v| v as f32);
    match kind {
        "default" => {}
        "linear" => {
            let factor = num("factor").ok_or("rope_scaling linear needs a factor")?;
            inv_freq.iter_mut().for_each(|f| *f /= factor);
        }
        "llama3" => {
            let factor = num("factor").ok_or("rope_scaling llama3 needs a factor")?;
            let low = num("low_freq_factor").unwrap_or(1.0);
            let high = num("high_freq_factor").unwrap_or(4.0);
            let original = num("original_max_position_embeddings").unwrap_or(8192.0);
            let low_wavelen = original / low;
            let high_wavelen = original / high;
            for f in inv_freq.iter_mut() {
                let wavelen = 2.0 * std::f32::consts::PI / *f;
                if wavelen > low_wavelen {
                    *f /= factor;
                } else if wavelen >= high_wavelen {
                    let smooth = (original / wavelen - low) / (high - low);
                    *f = (1.0 - smooth) * *f / factor + smooth * *f;
                }
            }
        }
        other => {
            return Err(format!(
                "rope_scaling {other:?} is not supported (supported: linear, llama3); head_dim {head_dim}"
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_llama_config_with_llama3_scaling() {
        let raw = serde_json::json!({
            "model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
            "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": 100, "max_position_embeddings": 256,
            "rope_theta": 500000.0, "rms_norm_eps": 1e-5,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 8192}
        });
        let c = DecoderConfig::from_hf_json(&raw, Path::new("config.json")).unwrap();
        assert_eq!((c.head_dim, c.kv_heads), (16, 2));
        let rope = c.rope.unwrap();
        assert_eq!(rope.style, RopeStyle::Halves);
        assert_eq!(rope.inv_freq.len(), 8);
        // High frequencies (short wavelengths) are untouched; the lowest are divided by the factor.
        assert_eq!(rope.inv_freq[0], 1.0);
        let unscaled = 1.0 / 500000f32.powf(14.0 / 16.0);
        assert!((rope.inv_freq[7] - unscaled / 8.0).abs() < 1e-12);
    }

    #[test]
    fn inconsistent_configs_are_errors() {
        let raw = serde_json::json!({
            "model_type": "llama", "hidden_size": 64, "num_attention_heads": 3, "num_key_value_heads": 2,
            "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": 100, "max_position_embeddings": 256
        });
        let e = DecoderConfig::from_hf_json(&raw, Path::new("config.json")).unwrap_err().to_string();
        assert!(e.contains("cannot be grouped"), "{e}");
        let e = DecoderConfig::from_hf_json(&serde_json::json!({"model_type": "t5"}), Path::new("c")).unwrap_err();
        assert!(e.to_string().contains("not a supported text-generation architecture"), "{e}");
    }
}
