//! The generation loop at the token level: one batched prefill of the
//! prompt, then one token per step until the maximum, an end-of-sequence
//! token, a stop the caller reports, or cancellation.

use super::model::LoadedDecoder;
use super::sampler::{Sampler, SamplingOptions};
use crate::error::{Error, Result};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationOptions {
    /// Most new tokens (clipped to the room left in the context).
    pub max_tokens: usize,
    /// How tokens are chosen.
    pub sampling: SamplingOptions,
    /// Token ids that end the generation (not included in the output).
    pub eos_ids: Vec<u32>,
    /// Drop the oldest prompt tokens when prompt + 1 does not fit in the
    /// context, instead of failing.
    pub truncate_prompt: bool,
}

impl Default for GenerationOptions {
    fn default() -> Self {
        GenerationOptions {
            max_tokens: 256,
            sampling: SamplingOptions::default(),
            eos_ids: Vec::new(),
            truncate_prompt: false,
        }
    }
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// `max_tokens` (or the context) was reached.
    Length,
    /// An end-of-sequence token or a stop sequence.
    Stop,
    /// The caller cancelled.
    Cancelled,
}

impl FinishReason {
    /// OpenAI's name: `length` or `stop` (a cancelled generation reports `stop`
    /// where a reason is still sent).
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Length => "length",
            FinishReason::Stop | FinishReason::Cancelled => "stop",
        }
    }
}

/// The token ids generated and how long each phase took.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenGeneration {
    /// The new token ids (without the end-of-sequence token).
    pub token_ids: Vec<u32>,
    /// The prompt tokens actually used (after truncation).
    pub prompt_tokens: usize,
    /// Prompt tokens dropped by truncation.
    pub truncated_tokens: usize,
    /// Why it stopped.
    pub finish_reason: FinishReason,
    /// Time of the prefill (the prompt's forward pass and first token).
    pub prefill: Duration,
    /// Time of the decode steps after the first token.
    pub decode: Duration,
}

impl TokenGeneration {
    /// Prompt tokens per second in the prefill.
    pub fn prefill_tokens_per_second(&self) -> f64 {
        rate(self.prompt_tokens, self.prefill)
    }

    /// New tokens per second after the first (each is one decode step).
    pub fn decode_tokens_per_second(&self) -> f64 {
        rate(self.token_ids.len().saturating_sub(1), self.decode)
    }

    /// New tokens per second over the whole generation.
    pub fn tokens_per_second(&self) -> f64 {
        rate(self.token_ids.len(), self.prefill + self.decode)
    }
}

fn rate(count: usize, time: Duration) -> f64 {
    if time.is_zero() {
        0.0
    } else {
        count as f64 / time.as_secs_f64()
    }
}

/// Generates from `prompt` ids, calling `on_token` with each new token id
/// (not the end-of-sequence one) as soon as it is chosen; returning
/// `ControlFlow::Break(reason)` ends the generation (a stop sequence, or
/// cancellation). The KV cache is freed when this returns.
pub fn generate_tokens(
    model: &LoadedDecoder,
    prompt: &[u32],
    options: &GenerationOptions,
    on_token: &mut dyn FnMut(u32) -> ControlFlow<FinishReason>,
) -> Result<TokenGeneration> {
    if prompt.is_empty() {
        return Err(Error::InvalidOption("the prompt is empty: give at least one token".into()));
    }
    let context = model.config().context_length;
    let vocab = model.config().vocab_size;
    if let Some(bad) = prompt.iter().find(|&&id| id as usize >= vocab) {
        return Err(Error::InvalidOption(format!("token id {bad} is outside the vocabulary of {vocab}")));
    }
    // Room for at least one new token.
    let mut prompt = prompt;
    let mut truncated_tokens = 0;
    if prompt.len() >= context {
        if !options.truncate_prompt {
            return Err(Error::InvalidOption(format!(
                "the prompt has {} tokens but the model's context holds {context}; shorten it or enable truncation",
                prompt.len()
            )));
        }
        truncated_tokens = prompt.len() - (context - 1);
        prompt = &prompt[truncated_tokens..];
    }
    let max_tokens = options.max_tokens.min(context - prompt.len());
    let mut sampler = Sampler::new(options.sampling.clone())?;
    let mut result = TokenGeneration {
        token_ids: Vec::new(),
        prompt_tokens: prompt.len(),
        truncated_tokens,
        finish_reason: FinishReason::Length,
        prefill: Duration::ZERO,
        decode: Duration::ZERO,
    };
    if max_tokens == 0 {
        return Ok(result);
    }
    let mut sequence = model.sequence(prompt.len() + max_tokens)?;
    // The repetition penalty looks at the prompt and the output.
    let mut seen: Vec<u32> = prompt.to_vec();
    let started = Instant::now();
    let mut logits = sequence.feed(prompt)?;
    let mut decode_started = None;
    loop {
        let token = sampler.sample(&mut logits, &seen)?;
        if decode_started.is_none() {
            result.prefill = started.elapsed();
            decode_started = Some(Instant::now());
        }
        if options.eos_ids.contains(&token) {
            result.finish_reason = FinishReason::Stop;
            break;
        }
        result.token_ids.push(token);
        seen.push(token);
        if let ControlFlow::Break(reason) = on_token(token) {
            result.finish_reason = reason;
            break;
        }
        if result.token_ids.len() >= max_tokens {
            break;
        }
        logits = sequence.feed(&[token])?;
    }
    result.decode = decode_started.map(|t| t.elapsed()).unwrap_or_default();
    Ok(result)
}
