//! Hugging Face `config.json`: parsing, and model-type detection from its
//! `architectures` and `model_type` (never from the model's name).

use crate::error::{read_file, Error, Result};
use serde::Deserialize;
use std::path::Path;

/// What a model does, as reported to users (`"text_embedding"`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelType {
    /// Text in, one vector per text out.
    TextEmbedding,
}

impl ModelType {
    /// The name used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelType::TextEmbedding => "text_embedding",
        }
    }
}

/// The architectures this build can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// BERT-family encoders: BERT, MiniLM, RoBERTa, XLM-RoBERTa (they share
    /// weight names and differ in position ids and token types).
    BertFamily(BertVariant),
}

/// How a BERT-family model numbers positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BertVariant {
    /// Positions start at 0 (BERT, MiniLM).
    Bert,
    /// Positions start after the padding index (RoBERTa, XLM-RoBERTa, CamemBERT).
    Roberta,
}

const SUPPORTED: &str = "BertModel, RobertaModel, XLMRobertaModel (model_type bert, roberta, xlm-roberta, camembert)";

/// The fields of `config.json` a BERT-family encoder needs.
#[derive(Clone, Debug, Deserialize)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Activation of the feed-forward layer.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Rows of the position-embedding table.
    pub max_position_embeddings: usize,
    /// Rows of the token-type table.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// Layer-norm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f32,
    /// Padding token id (RoBERTa's positions start after it).
    #[serde(default)]
    pub pad_token_id: Option<usize>,
    /// Only `"absolute"` is supported.
    #[serde(default = "default_position_type")]
    pub position_embedding_type: String,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f32 {
    1e-12
}
fn default_position_type() -> String {
    "absolute".into()
}

/// `config.json`, parsed once: the raw JSON plus the detected architecture.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// The file as JSON.
    pub raw: serde_json::Value,
    /// What the file says the model is.
    pub architecture: Architecture,
}

impl ModelConfig {
    /// Reads and classifies `dir/config.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        if !path.exists() {
            return Err(Error::MissingFile {
                path,
                hint: "every model directory needs the config.json it was published with",
            });
        }
        let raw: serde_json::Value = serde_json::from_slice(&read_file(&path)?).map_err(|e| Error::Config {
            path: path.clone(),
            what: "JSON config",
            message: e.to_string(),
        })?;
        let architecture = detect(&raw)?;
        Ok(ModelConfig { raw, architecture })
    }

    /// The model type of the detected architecture.
    pub fn model_type(&self) -> ModelType {
        match self.architecture {
            Architecture::BertFamily(_) => ModelType::TextEmbedding,
        }
    }

    /// The config as a BERT-family config.
    pub fn bert(&self, dir: &Path) -> Result<BertConfig> {
        serde_json::from_value(self.raw.clone()).map_err(|e| Error::Config {
            path: dir.join("config.json"),
            what: "BERT config",
            message: e.to_string(),
        })
    }
}

/// Classifies a config by `model_type` first, then by `architectures`.
pub fn detect(raw: &serde_json::Value) -> Result<Architecture> {
    let model_type = raw.get("model_type").and_then(|v| v.as_str()).unwrap_or("");
    let arch = raw
        .get("architectures")
        .and_then(|v| v.as_array())
        .and_then(|a| a.first())
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let by_type = match model_type {
        "bert" => Some(BertVariant::Bert),
        "roberta" | "xlm-roberta" | "camembert" => Some(BertVariant::Roberta),
        _ => None,
    };
    let by_arch = if arch.starts_with("XLMRoberta") || arch.starts_with("Roberta") || arch.starts_with("Camembert") {
        Some(BertVariant::Roberta)
    } else if arch.starts_with("Bert") {
        Some(BertVariant::Bert)
    } else {
        None
    };
    match by_type.or(by_arch) {
        Some(v) => Ok(Architecture::BertFamily(v)),
        None => Err(Error::UnknownArchitecture {
            architecture: if arch.is_empty() { "(none listed)".into() } else { arch.into() },
            model_type: model_type.into(),
            supported: SUPPORTED,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn detects_from_config_not_name() {
        assert_eq!(
            detect(&json!({"model_type": "bert", "architectures": ["BertModel"]})).unwrap(),
            Architecture::BertFamily(BertVariant::Bert)
        );
        assert_eq!(
            detect(&json!({"architectures": ["XLMRobertaModel"]})).unwrap(),
            Architecture::BertFamily(BertVariant::Roberta)
        );
        let err = detect(&json!({"model_type": "llama", "architectures": ["LlamaForCausalLM"]})).unwrap_err();
        assert!(err.to_string().contains("LlamaForCausalLM"), "{err}");
    }
}
