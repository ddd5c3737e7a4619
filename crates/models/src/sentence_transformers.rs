//! The sentence-transformers pipeline description: `modules.json`,
//! `1_Pooling/config.json` and `sentence_bert_config.json`.

use crate::error::{read_file, Error, Result};
use serde::Deserialize;
use std::path::Path;

/// How token vectors become one sentence vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// Mean of the tokens (masking padding, of which packed batches have none).
    Mean,
    /// The first token (`[CLS]`).
    Cls,
    /// Element-wise maximum over the tokens.
    Max,
    /// Sum divided by the square root of the token count.
    MeanSqrtLen,
    /// The last token.
    LastToken,
}

/// The pipeline after the transformer.
#[derive(Clone, Debug, PartialEq)]
pub struct SentencePipeline {
    /// Pooling mode.
    pub pooling: Pooling,
    /// Whether the pipeline ends with L2 normalization.
    pub normalize: bool,
    /// Texts are truncated to this many tokens.
    pub max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct Module {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, what: &'static str) -> Result<T> {
    serde_json::from_slice(&read_file(path)?).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        what,
        message: e.to_string(),
    })
}

impl SentencePipeline {
    /// Reads the pipeline of the model in `dir`. Without `modules.json` (a
    /// plain transformers checkpoint) it uses mean pooling and L2
    /// normalization, the common default for embedding models.
    pub fn load(dir: &Path) -> Result<Self> {
        let modules_path = dir.join("modules.json");
        let mut pipeline = SentencePipeline { pooling: Pooling::Mean, normalize: true, max_seq_length: None };
        if modules_path.exists() {
            let modules: Vec<Module> = parse(&modules_path, "sentence-transformers modules.json")?;
            pipeline.normalize = modules.iter().any(|m| m.kind.ends_with(".Normalize"));
            if let Some(pool) = modules.iter().find(|m| m.kind.ends_with(".Pooling")) {
                let path = dir.join(&pool.path).join("config.json");
                if !path.exists() {
                    return Err(Error::MissingFile {
                        path,
                        hint: "modules.json lists a Pooling module whose config.json is missing",
                    });
                }
                let cfg: PoolingConfig = parse(&path, "pooling config")?;
                pipeline.pooling = if cfg.pooling_mode_cls_token {
                    Pooling::Cls
                } else if cfg.pooling_mode_max_tokens {
                    Pooling::Max
                } else if cfg.pooling_mode_mean_sqrt_len_tokens {
                    Pooling::MeanSqrtLen
                } else if cfg.pooling_mode_lasttoken {
                    Pooling::LastToken
                } else if cfg.pooling_mode_mean_tokens {
                    Pooling::Mean
                } else {
                    return Err(Error::Config {
                        path,
                        what: "pooling config",
                        message: "no pooling_mode_* is true".into(),
                    });
                };
            }
        }
        let sbert = dir.join("sentence_bert_config.json");
        if sbert.exists() {
            let cfg: SentenceBertConfig = parse(&sbert, "sentence_bert_config.json")?;
            pipeline.max_seq_length = cfg.max_seq_length;
        }
        Ok(pipeline)
    }
}

/// Pools `tokens` (`len × dim`, row-major) into `out` (`dim`).
pub fn pool(pooling: Pooling, tokens: &[f32], dim: usize, out: &mut [f32]) {
    let len = tokens.len() / dim;
    out.fill(0.0);
    if len == 0 {
        return;
    }
    match pooling {
        Pooling::Cls => out.copy_from_slice(&tokens[..dim]),
        Pooling::LastToken => out.copy_from_slice(&tokens[(len - 1) * dim..]),
        Pooling::Max => {
            out.copy_from_slice(&tokens[..dim]);
            for row in tokens.chunks_exact(dim).skip(1) {
                out.iter_mut().zip(row).for_each(|(o, &v)| *o = o.max(v));
            }
        }
        Pooling::Mean | Pooling::MeanSqrtLen => {
            for row in tokens.chunks_exact(dim) {
                out.iter_mut().zip(row).for_each(|(o, &v)| *o += v);
            }
            let div = if pooling == Pooling::Mean { len as f32 } else { (len as f32).sqrt() };
            out.iter_mut().for_each(|o| *o /= div);
        }
    }
}

/// Scales `v` to unit L2 norm (as torch's `normalize`, with a floor of 1e-12).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_modes() {
        let tokens = [1.0, 2.0, 3.0, 6.0];
        let mut out = [0.0; 2];
        pool(Pooling::Mean, &tokens, 2, &mut out);
        assert_eq!(out, [2.0, 4.0]);
        pool(Pooling::Cls, &tokens, 2, &mut out);
        assert_eq!(out, [1.0, 2.0]);
        pool(Pooling::Max, &tokens, 2, &mut out);
        assert_eq!(out, [3.0, 6.0]);
        let mut v = [3.0, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
    }
}
