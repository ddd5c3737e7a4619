//! Streaming detokenization: text for tokens as they are generated, one at a
//! time, that never shows half a character.
//!
//! A byte-level BPE token can end in the middle of a UTF-8 character (an
//! emoji is often two or three tokens), and a SentencePiece token's leading
//! `▁` becomes a space or nothing depending on what comes before it. So the
//! text of a token cannot be decoded alone. [`StreamDecoder`] does what
//! text-generation-inference and transformers' `TextStreamer` do: it decodes
//! a short window of recent ids, starting one emitted token before the new
//! ones (the *prefix*), and emits what the window adds beyond the prefix's
//! own text, once that no longer ends in an incomplete character.

use crate::error::Result;
use crate::llm::tokenizer::LlmTokenizer;

/// Incremental decoder over one generated sequence.
///
/// ```no_run
/// # use ipfs_accelerate_models::llm::{tokenizer::LlmTokenizer, detokenize::StreamDecoder};
/// # fn demo(tok: &LlmTokenizer, generated: &[u32]) -> ipfs_accelerate_models::Result<()> {
/// let mut stream = StreamDecoder::new(tok, true);
/// for &id in generated {
///     if let Some(text) = stream.push(id)? {
///         print!("{text}");
///     }
/// }
/// print!("{}", stream.finish()?);
/// # Ok(()) }
/// ```
pub struct StreamDecoder<'a> {
    tokenizer: &'a LlmTokenizer,
    skip_special: bool,
    ids: Vec<u32>,
    /// Start of the window decoded for context (already emitted).
    prefix_offset: usize,
    /// End of what has been emitted; ids from here on are pending.
    read_offset: usize,
}

impl<'a> StreamDecoder<'a> {
    /// A decoder for a new sequence; `skip_special` leaves out special
    /// tokens (`<|im_end|>`) as `decode(ids, true)` does.
    pub fn new(tokenizer: &'a LlmTokenizer, skip_special: bool) -> StreamDecoder<'a> {
        StreamDecoder { tokenizer, skip_special, ids: Vec::new(), prefix_offset: 0, read_offset: 0 }
    }

    /// Adds one token id; returns the text that became complete with it, or
    /// `None` while it ends inside a character (or adds no text).
    pub fn push(&mut self, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let prefix = self.tokenizer.decode(&self.ids[self.prefix_offset..self.read_offset], self.skip_special)?;
        let window = self.tokenizer.decode(&self.ids[self.prefix_offset..], self.skip_special)?;
        // The decoders write bytes that are not (yet) valid UTF-8 as U+FFFD;
        // wait for the tokens that complete them. A real U+FFFD at the end
        // is only held back until the next token or finish().
        if window.len() <= prefix.len() || window.ends_with('\u{FFFD}') {
            return Ok(None);
        }
        let new = tail_after(&window, &prefix);
        self.prefix_offset = self.read_offset;
        self.read_offset = self.ids.len();
        Ok(Some(new.to_string()))
    }

    /// Text not yet returned by [`StreamDecoder::push`], with U+FFFD for
    /// bytes that never formed a character. The decoder is then empty and
    /// can start a new sequence.
    pub fn finish(&mut self) -> Result<String> {
        let prefix = self.tokenizer.decode(&self.ids[self.prefix_offset..self.read_offset], self.skip_special)?;
        let window = self.tokenizer.decode(&self.ids[self.prefix_offset..], self.skip_special)?;
        let rest = if window.len() > prefix.len() { tail_after(&window, &prefix).to_string() } else { String::new() };
        self.ids.clear();
        self.prefix_offset = 0;
        self.read_offset = 0;
        Ok(rest)
    }

    /// All ids pushed since the start (or the last [`StreamDecoder::finish`]).
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }
}

/// What `window` adds after `prefix`. The window normally starts with the
/// prefix's text; where a decoder rewrote it (a cleanup rule), the tail
/// starts at the first char boundary past the prefix's length so that no
/// text is repeated and no slice panics.
fn tail_after<'w>(window: &'w str, prefix: &str) -> &'w str {
    if let Some(rest) = window.strip_prefix(prefix) {
        return rest;
    }
    let mut at = prefix.len().min(window.len());
    while !window.is_char_boundary(at) {
        at += 1;
    }
    &window[at..]
}

#[cfg(test)]
mod tests {
    use super::tail_after;

    #[test]
    fn tail_is_what_the_window_adds() {
        assert_eq!(tail_after("hello world", "hello"), " world");
        assert_eq!(tail_after("abc", ""), "abc");
        // A rewritten prefix never splits a character.
        assert_eq!(tail_after("é!", "x"), "!");
    }
}
