//! Pipeline sharding of a text embedder across workers.
//!
//! A model's encoder layers are split into contiguous stages
//! ([`split_layers`]); each worker loads the whole [`TextEmbedder`] on its own
//! engine and runs one stage ([`TextEmbedder::embed_stage`]). The activation
//! that travels between stages through the host is always the *packed* last
//! hidden state, `float32 [total_tokens, hidden]`: it is the smallest form (no
//! padding) and independent of the engine, so a CPU stage can feed a WebGPU or
//! browser stage and back. An engine that runs padded batches pads the rows
//! into its bucket layout itself and packs its output again.
//!
//! Every stage tokenizes the texts itself: tokenization is deterministic, so
//! all stages agree on the token counts without sending ids around.
//!
//! ```no_run
//! use ipfs_accelerate_models::{BackendChoice, StageOutput, TextEmbedder};
//! let dir = std::path::Path::new("all-MiniLM-L6-v2");
//! let (first, second) = (TextEmbedder::load(dir, BackendChoice::Cpu)?, TextEmbedder::load(dir, BackendChoice::Cpu)?);
//! let [a, b] = first.shard_ranges(2)?[..] else { unreachable!() };
//! let texts = ["Hello, world!"];
//! let StageOutput::Hidden(hidden) = first.embed_stage(&texts, a, None)? else { unreachable!() };
//! let StageOutput::Embeddings(vectors) = second.embed_stage(&texts, b, Some(&hidden))? else { unreachable!() };
//! assert_eq!(vectors[0].len(), second.dim());
//! # Ok::<(), ipfs_accelerate_models::Error>(())
//! ```

use crate::embedder::TextEmbedder;
use crate::error::{Error, Result};
use ipfs_accelerate_tensor::{DType, Tensor};
use std::fmt;

/// Encoder layers `[start, end)` of one pipeline stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct LayerRange {
    /// First layer the stage runs; 0 means the stage also runs the embeddings.
    pub start: usize,
    /// One past the last layer the stage runs; the model's layer count means
    /// the stage also pools.
    pub end: usize,
}

impl fmt::Display for LayerRange {
    /// `start..end`, as in error messages and logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// Splits `layers` encoder layers into `shards` contiguous, non-empty stages
/// as evenly as possible (earlier stages get the extra layer, since the first
/// also runs the embeddings' cheap gathers and the last the pooling: neither
/// is worth a layer). Errors when `shards` is 0 or more than `layers`, as a
/// stage without layers would only add a round trip.
pub fn split_layers(layers: usize, shards: usize) -> Result<Vec<LayerRange>> {
    if shards == 0 {
        return Err(Error::InvalidOption("cannot split a model into 0 shards: use at least 1".into()));
    }
    if shards > layers {
        return Err(Error::InvalidOption(format!(
            "cannot split {layers} encoder layers into {shards} shards: every shard needs at least one layer, so use at most {layers}"
        )));
    }
    let (base, extra) = (layers / shards, layers % shards);
    let mut start = 0;
    Ok((0..shards)
        .map(|i| {
            let end = start + base + usize::from(i < extra);
            let range = LayerRange { start, end };
            start = end;
            range
        })
        .collect())
}

/// What one pipeline stage produced.
#[derive(Debug)]
pub enum StageOutput {
    /// Packed last hidden states of this stage, `float32 [total_tokens,
    /// hidden]` (total over the texts after tokenization and truncation): the
    /// next stage's input.
    Hidden(Tensor),
    /// The final sentence embeddings (pooled, normalized as the model's
    /// pipeline says), from the stage whose range ends at the last layer.
    Embeddings(Vec<Vec<f32>>),
}

impl TextEmbedder {
    /// Number of encoder layers.
    pub fn num_layers(&self) -> usize {
        self.model().num_layers()
    }

    /// The stages of this model split `shards` ways:
    /// `split_layers(self.num_layers(), shards)`.
    pub fn shard_ranges(&self, shards: usize) -> Result<Vec<LayerRange>> {
        split_layers(self.num_layers(), shards)
    }

    /// Runs one pipeline stage, encoder layers `range`, on this embedder's
    /// engine for `texts`, tokenized here exactly as [`Self::embed`] does and
    /// run as one batch (as `embed(texts, texts.len())`).
    ///
    /// A stage starting at layer 0 runs the embeddings and takes no `hidden`;
    /// a later one needs the previous stage's packed hidden states,
    /// `float32 [total_tokens, hidden]`. The stage ending at the last layer
    /// returns [`StageOutput::Embeddings`], pooled as `embed` pools; the
    /// others return [`StageOutput::Hidden`]. An empty range, one past the
    /// model's layers, a missing or unexpected `hidden`, or one of the wrong
    /// dtype or shape is an error, never a panic.
    pub fn embed_stage(&self, texts: &[&str], range: LayerRange, hidden: Option<&Tensor>) -> Result<StageOutput> {
        // Check the cheap things before tokenizing.
        self.model().check_range(range)?;
        if texts.is_empty() {
            return Err(Error::EmptyInput);
        }
        let encoded = self.tokenize(texts)?;
        let out = self.model().forward_stage(self.engine(), &encoded, range, hidden)?;
        if range.end < self.num_layers() {
            return Ok(StageOutput::Hidden(out));
        }
        let mut vectors = Vec::with_capacity(encoded.len());
        self.pool_batch(&encoded, &out, &mut vectors);
        Ok(StageOutput::Embeddings(vectors))
    }
}

/// The values of `hidden` after checking it is the packed `float32
/// [total_tokens, dim]` input stage `range` needs for sequences of `lens`
/// tokens; it comes from another worker, so a mismatch is an error.
pub(crate) fn packed_rows<'a>(hidden: &'a Tensor, lens: &[usize], dim: usize, range: LayerRange) -> Result<&'a [f32]> {
    let total: usize = lens.iter().sum();
    let dims = hidden.shape().dims();
    if hidden.dtype() != DType::Float32 || dims != [total, dim] {
        return Err(Error::InvalidOption(format!(
            "hidden states for layers {range} must be float32 [{total}, {dim}] ({total} tokens over {} texts, packed), got {} {}: \
             pass the previous stage's output for the same texts",
            lens.len(),
            hidden.dtype(),
            hidden.shape()
        )));
    }
    Ok(hidden.as_f32().expect("checked float32"))
}

/// Packed rows (`lens[s]` rows of `dim` values per sequence) laid out as
/// `seqs` sequences of `len` rows each, padding rows zero.
pub(crate) fn pad_rows(packed: &[f32], lens: &[usize], dim: usize, seqs: usize, len: usize) -> Vec<f32> {
    let mut padded = vec![0.0; seqs * len * dim];
    let mut from = 0;
    for (s, &n) in lens.iter().enumerate() {
        padded[s * len * dim..(s * len + n) * dim].copy_from_slice(&packed[from..from + n * dim]);
        from += n * dim;
    }
    padded
}

/// The inverse of [`pad_rows`]: the first `lens[s]` rows of each sequence of
/// `len` rows, concatenated.
pub(crate) fn unpad_rows(padded: &[f32], lens: &[usize], dim: usize, len: usize) -> Vec<f32> {
    let mut packed = Vec::with_capacity(lens.iter().sum::<usize>() * dim);
    for (s, &n) in lens.iter().enumerate() {
        packed.extend_from_slice(&padded[s * len * dim..(s * len + n) * dim]);
    }
    packed
}

#[cfg(test)]
mod tests {
    use super::{pad_rows, unpad_rows};

    #[test]
    fn padding_round_trips_and_zeroes_the_gaps() {
        let packed: Vec<f32> = (1..=10).map(|v| v as f32).collect(); // 5 rows of 2
        let padded = pad_rows(&packed, &[2, 3], 2, 4, 4);
        assert_eq!(padded.len(), 4 * 4 * 2);
        assert_eq!(&padded[..8], &[1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(&padded[8..16], &[5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 0.0, 0.0]);
        assert!(padded[16..].iter().all(|&v| v == 0.0));
        assert_eq!(unpad_rows(&padded, &[2, 3], 2, 4), packed);
    }
}
