//! Text tokenization with the `tokenizers` crate, from the model's `tokenizer.json`.

use crate::error::{Error, Result};
use std::path::Path;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// Token ids and token-type ids of one text, special tokens included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Token-type (segment) ids.
    pub type_ids: Vec<u32>,
}

/// A tokenizer that truncates to the model's maximum length and never pads
/// (batches are packed, so padding would only waste compute).
pub struct TextTokenizer {
    inner: Tokenizer,
}

impl TextTokenizer {
    /// Loads `dir/tokenizer.json`, truncating to `max_len` tokens.
    pub fn load(dir: &Path, max_len: usize) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            return Err(Error::MissingFile {
                path,
                hint: "the model needs its tokenizer.json (save it with the model's tokenizer.save_pretrained)",
            });
        }
        let mut inner = Tokenizer::from_file(&path)
            .map_err(|e| Error::Tokenizer(format!("{} is not a valid tokenizer.json: {e}", path.display())))?;
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(TextTokenizer { inner })
    }

    /// Encodes texts (in parallel when there are many), adding the model's special tokens.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Encoded>> {
        // Handing a few short texts to other threads costs more than encoding them.
        let encodings = if texts.len() < 8 {
            texts.iter().map(|t| self.inner.encode(*t, true)).collect::<Result<Vec<_>, _>>()
        } else {
            self.inner.encode_batch(texts.to_vec(), true)
        }
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(encodings
            .into_iter()
            .map(|e| Encoded { ids: e.get_ids().to_vec(), type_ids: e.get_type_ids().to_vec() })
            .collect())
    }

    /// Id of a token, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}
