//! Text in, text out: [`TextGenerator`] ties a loaded decoder to its
//! tokenizer and chat template, streams text as tokens are generated
//! (never half a character, never part of a stop string), and reports the
//! token ids, counts and speeds.

use super::chat_template::{ChatMessage, ChatTemplate};
use super::detokenize::StreamDecoder;
use super::generate::{generate_tokens, FinishReason, GenerationOptions, TokenGeneration};
use super::model::{LoadedDecoder, ModelSource};
use super::stop::{StopMatcher, StopOutcome};
use super::tokenizer::LlmTokenizer;
use super::weights::WeightBits;
use super::ActivationType;
use crate::backend::BackendChoice;
use crate::error::{Error, Result};
use std::ops::ControlFlow;
use std::path::Path;

/// What to continue.
#[derive(Clone, Debug, PartialEq)]
pub enum Prompt {
    /// Plain text (the tokenizer adds BOS when the model wants it).
    Text(String),
    /// A conversation, rendered with the model's chat template and an
    /// assistant turn opened.
    Chat(Vec<ChatMessage>),
    /// Token ids as they are.
    Tokens(Vec<u32>),
}

/// Options of a text generation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TextOptions {
    /// Token-level options. When `eos_ids` is empty the tokenizer's
    /// end-of-sequence ids are used.
    pub generation: GenerationOptions,
    /// Strings that end the generation; the output stops before them.
    pub stop: Vec<String>,
    /// Keep generating through end-of-sequence tokens.
    pub ignore_eos: bool,
}

/// A finished text generation.
#[derive(Clone, Debug, PartialEq)]
pub struct TextGeneration {
    /// The generated text (exactly what was streamed).
    pub text: String,
    /// Token ids, counts and timings.
    pub tokens: TokenGeneration,
}

/// A text-generation model ready to use.
pub struct TextGenerator {
    decoder: LoadedDecoder,
    tokenizer: LlmTokenizer,
    template: Option<ChatTemplate>,
}

impl TextGenerator {
    /// Loads a GGUF file or a Hugging Face directory on the CPU backend.
    pub fn load(path: &Path, bits: WeightBits) -> Result<Self> {
        let source = ModelSource::locate(path)?;
        let decoder = LoadedDecoder::open(&source, bits)?;
        TextGenerator::with_decoder(&source, decoder)
    }

    /// Loads on the backend `choice` names, WebGPU storing activations as
    /// `activations` (see [`LoadedDecoder::open_with`]); the notice says when
    /// `auto` fell back to the CPU or f16 activations could not apply.
    pub fn load_with(
        path: &Path,
        bits: WeightBits,
        choice: BackendChoice,
        activations: ActivationType,
    ) -> Result<(Self, Option<String>)> {
        let source = ModelSource::locate(path)?;
        let (decoder, notice) = LoadedDecoder::open_with(&source, bits, choice, activations)?;
        Ok((TextGenerator::with_decoder(&source, decoder)?, notice))
    }

    /// Wraps a decoder loaded from `source` (on any backend) with the
    /// tokenizer and chat template of the same source.
    pub fn with_decoder(source: &ModelSource, decoder: LoadedDecoder) -> Result<Self> {
        let tokenizer = match source {
            ModelSource::Gguf(path) => LlmTokenizer::from_gguf_path(path)?,
            ModelSource::HuggingFace(dir) => LlmTokenizer::from_dir(dir)?,
        };
        if tokenizer.vocab_size() > decoder.config().vocab_size {
            return Err(Error::Tokenizer(format!(
                "the tokenizer has {} tokens but the model's embedding only {}",
                tokenizer.vocab_size(),
                decoder.config().vocab_size
            )));
        }
        let template = match tokenizer.chat_template() {
            Some(_) => Some(ChatTemplate::from_tokenizer(&tokenizer)?),
            None => None,
        };
        Ok(TextGenerator { decoder, tokenizer, template })
    }

    /// The decoder (configuration, backend).
    pub fn decoder(&self) -> &LoadedDecoder {
        &self.decoder
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &LlmTokenizer {
        &self.tokenizer
    }

    /// Whether the model has a chat template.
    pub fn has_chat_template(&self) -> bool {
        self.template.is_some()
    }

    /// The chat template applied to `messages`, with the assistant turn opened.
    pub fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        let template = self.template.as_ref().ok_or_else(|| {
            Error::InvalidOption("this model has no chat template: send a plain prompt (without --chat)".into())
        })?;
        template.render(messages, true)
    }

    /// The token ids `prompt` becomes.
    pub fn encode(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        match prompt {
            Prompt::Text(text) => self.tokenizer.encode(text, true),
            // The rendered template already holds every special token.
            Prompt::Chat(messages) => self.tokenizer.encode(&self.render_chat(messages)?, false),
            Prompt::Tokens(ids) => Ok(ids.clone()),
        }
    }

    /// Generates from `prompt`, calling `on_text` with each piece of text as
    /// it becomes final; returning `ControlFlow::Break(())` cancels (the
    /// KV cache is freed and the result says `Cancelled`).
    pub fn generate(
        &self,
        prompt: &Prompt,
        options: &TextOptions,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<TextGeneration> {
        let ids = self.encode(prompt)?;
        let mut generation = options.generation.clone();
        if options.ignore_eos {
            generation.eos_ids.clear();
        } else if generation.eos_ids.is_empty() {
            generation.eos_ids = self.tokenizer.eos_ids().to_vec();
        }
        let mut stream = StreamDecoder::new(&self.tokenizer, true);
        let mut stops = StopMatcher::new(&options.stop);
        let mut text = String::new();
        let mut failure = None;
        // Releases text to the caller; Break when the caller cancels.
        let mut emit = |piece: &str, text: &mut String| -> ControlFlow<FinishReason> {
            if piece.is_empty() {
                return ControlFlow::Continue(());
            }
            text.push_str(piece);
            match on_text(piece) {
                ControlFlow::Continue(()) => ControlFlow::Continue(()),
                ControlFlow::Break(()) => ControlFlow::Break(FinishReason::Cancelled),
            }
        };
        let mut stopped = false;
        let tokens = generate_tokens(&self.decoder, &ids, &generation, &mut |id| {
            let piece = match stream.push(id) {
                Ok(Some(piece)) => piece,
                Ok(None) => return ControlFlow::Continue(()),
                Err(e) => {
                    failure = Some(e);
                    return ControlFlow::Break(FinishReason::Cancelled);
                }
            };
            match stops.push(&piece) {
                StopOutcome::Continue(ready) => emit(&ready, &mut text),
                StopOutcome::Stopped(before) => {
                    stopped = true;
                    emit(&before, &mut text)?;
                    ControlFlow::Break(FinishReason::Stop)
                }
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        let mut tokens = tokens;
        if !stopped && tokens.finish_reason != FinishReason::Cancelled {
            // The last characters: what the stream decoder and the stop matcher still hold.
            let rest = stream.finish()?;
            let flushed = match stops.push(&rest) {
                StopOutcome::Continue(ready) => {
                    let mut all = ready;
                    all.push_str(&stops.finish());
                    emit(&all, &mut text)
                }
                StopOutcome::Stopped(before) => {
                    tokens.finish_reason = FinishReason::Stop;
                    emit(&before, &mut text)
                }
            };
            if let ControlFlow::Break(reason) = flushed {
                tokens.finish_reason = reason;
            }
        }
        Ok(TextGeneration { text, tokens })
    }
}
