//! The constraints Whisper's greedy decoding puts on the logits before
//! picking a token, in the order transformers applies them:
//!
//! 1. `begin_suppress_tokens` cannot come first (a blank, end-of-text);
//! 2. `suppress_tokens` never come (symbols the model was trained to avoid,
//!    other special tokens);
//! 3. with timestamps, the timestamp grammar: text is enclosed by a start and
//!    an end timestamp, timestamps never go backwards, the first token is a
//!    timestamp no later than `max_initial_timestamp_index`, and a timestamp
//!    is forced when all timestamps together are likelier than any one text
//!    token.

use super::config::WhisperConfig;

/// The logit rules of one window.
#[derive(Clone, Debug)]
pub struct LogitRules {
    suppress: Vec<u32>,
    begin_suppress: Vec<u32>,
    timestamps: bool,
    eos: u32,
    no_timestamps: u32,
    timestamp_begin: u32,
    max_initial_timestamp: Option<u32>,
}

impl LogitRules {
    /// The rules for `config`, with or without timestamps.
    pub fn new(config: &WhisperConfig, timestamps: bool) -> Self {
        LogitRules {
            suppress: config.suppress_tokens.clone(),
            begin_suppress: config.begin_suppress_tokens.clone(),
            timestamps,
            eos: config.eos_token_id,
            no_timestamps: config.no_timestamps_token_id,
            timestamp_begin: config.timestamp_begin(),
            max_initial_timestamp: config.max_initial_timestamp_index,
        }
    }

    /// Applies the rules to `logits` given the tokens generated so far in
    /// this window (after the prompt).
    pub fn apply(&self, generated: &[u32], logits: &mut [f32]) {
        let mut forbid = |id: u32| {
            if let Some(v) = logits.get_mut(id as usize) {
                *v = f32::NEG_INFINITY;
            }
        };
        if generated.is_empty() {
            self.begin_suppress.iter().for_each(|&id| forbid(id));
        }
        self.suppress.iter().for_each(|&id| forbid(id));
        if self.timestamps {
            self.timestamp_grammar(generated, logits);
        }
    }

    fn timestamp_grammar(&self, generated: &[u32], logits: &mut [f32]) {
        let begin = self.timestamp_begin as usize;
        if begin >= logits.len() {
            return;
        }
        let is_timestamp = |id: &u32| *id >= self.timestamp_begin;
        let (text, stamps) = logits.split_at_mut(begin);
        if let Some(v) = text.get_mut(self.no_timestamps as usize) {
            *v = f32::NEG_INFINITY;
        }
        let last_was_timestamp = generated.last().is_some_and(is_timestamp);
        let penultimate_was_timestamp = generated.len() < 2 || is_timestamp(&generated[generated.len() - 2]);
        if last_was_timestamp {
            if penultimate_was_timestamp {
                // A pair of timestamps closed a segment: text must follow.
                stamps.fill(f32::NEG_INFINITY);
            } else {
                // A segment's text ended at a timestamp: another timestamp
                // (or the end) must follow, not more text.
                text[..(self.eos as usize).min(begin)].fill(f32::NEG_INFINITY);
            }
        }
        // Timestamps never go backwards, and a segment's end is later than
        // its start.
        if let Some(&last) = generated.iter().rev().find(|id| is_timestamp(id)) {
            let earliest = if last_was_timestamp && !penultimate_was_timestamp { last } else { last + 1 };
            let stop = ((earliest - self.timestamp_begin) as usize).min(stamps.len());
            stamps[..stop].fill(f32::NEG_INFINITY);
        }
        if generated.is_empty() {
            // The window starts with a timestamp, early in the window.
            text.fill(f32::NEG_INFINITY);
            if let Some(max) = self.max_initial_timestamp {
                let first_forbidden = (max as usize + 1).min(stamps.len());
                stamps[first_forbidden..].fill(f32::NEG_INFINITY);
            }
        }
        // When the timestamps together outweigh every text token, take one.
        let text_best = log_softmax_terms(text, stamps);
        if let Some((max_text_logprob, timestamp_logprob)) = text_best {
            if timestamp_logprob > max_text_logprob {
                text.fill(f32::NEG_INFINITY);
            }
        }
    }
}

/// `(max log p(text token), log Σ p(timestamp))` under the softmax over all
/// of `text` and `stamps`, or `None` when every logit is forbidden.
fn log_softmax_terms(text: &[f32], stamps: &[f32]) -> Option<(f64, f64)> {
    let max = text.iter().chain(stamps).copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return None;
    }
    let max = f64::from(max);
    let sum = |values: &[f32]| values.iter().map(|&v| (f64::from(v) - max).exp()).sum::<f64>();
    let (text_sum, stamp_sum) = (sum(text), sum(stamps));
    let log_total = max + (text_sum + stamp_sum).ln();
    let text_max = text.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let max_text = f64::from(text_max) - log_total;
    let timestamps = max + stamp_sum.ln() - log_total;
    Some((max_text, timestamps))
}

/// The index of the largest logit (the first of equals), as greedy decoding
/// picks it.
pub fn argmax(logits: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in logits.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.filter(|&(_, v)| v > f32::NEG_INFINITY).map(|(i, _)| i as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WhisperConfig {
        WhisperConfig {
            d_model: 4,
            encoder_layers: 1,
            encoder_heads: 1,
            encoder_ffn: 4,
            decoder_layers: 1,
            decoder_heads: 1,
            decoder_ffn: 4,
            vocab_size: 20,
            num_mel_bins: 2,
            max_source_positions: 2,
            max_target_positions: 8,
            decoder_start_token_id: 7,
            eos_token_id: 5,
            suppress_tokens: vec![1],
            begin_suppress_tokens: vec![2, 5],
            no_timestamps_token_id: 9,
            max_initial_timestamp_index: Some(3),
            is_multilingual: false,
        }
    }

    #[test]
    fn without_timestamps_only_the_suppress_lists_apply() {
        let rules = LogitRules::new(&config(), false);
        let mut logits = vec![0.0f32; 20];
        rules.apply(&[], &mut logits);
        assert_eq!(logits.iter().filter(|v| v.is_infinite()).count(), 3);
        let mut logits = vec![0.0f32; 20];
        rules.apply(&[3], &mut logits);
        assert!(logits[1].is_infinite() && logits[2].is_finite() && logits[5].is_finite());
    }

    #[test]
    fn the_first_token_is_an_early_timestamp() {
        let rules = LogitRules::new(&config(), true);
        let mut logits = vec![0.0f32; 20];
        rules.apply(&[], &mut logits);
        // Timestamps are 10..20; only 10..=13 are allowed first.
        let allowed: Vec<usize> = (0..20).filter(|&i| logits[i].is_finite()).collect();
        assert_eq!(allowed, vec![10, 11, 12, 13]);
    }

    #[test]
    fn timestamps_pair_up_and_never_go_backwards() {
        let rules = LogitRules::new(&config(), true);
        // After <|t2|> text: text or a timestamp ≥ t2... but a lone timestamp
        // after text must close the segment: no text, no earlier timestamp.
        let mut logits = vec![0.0f32; 20];
        logits[3] = 5.0; // text is likely
        logits[5] = 5.0; // and so is the end
        rules.apply(&[12, 3, 14], &mut logits);
        assert!(logits[..5].iter().all(|v| v.is_infinite()), "no text after a closing timestamp");
        assert!(logits[5].is_finite(), "end of text may follow");
        assert!(logits[10..14].iter().all(|v| v.is_infinite()) && logits[14].is_finite());
        // After a pair of timestamps: no timestamp.
        let mut logits = vec![0.0f32; 20];
        logits[3] = 5.0;
        rules.apply(&[12, 3, 14, 14], &mut logits);
        assert!(logits[10..].iter().all(|v| v.is_infinite()) && logits[3].is_finite());
    }

    #[test]
    fn likely_timestamps_win_over_the_best_text_token() {
        let rules = LogitRules::new(&config(), true);
        let mut logits = vec![0.0f32; 20];
        logits[3] = 2.0;
        for v in &mut logits[12..20] {
            *v = 1.5; // eight timestamps of 1.5 outweigh one text token of 2.0
        }
        rules.apply(&[11, 3], &mut logits);
        assert_eq!(argmax(&logits), Some(12));
        assert!(logits[3].is_infinite());
    }

    #[test]
    fn argmax_takes_the_first_maximum_and_skips_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, f32::NAN]), Some(1));
        assert_eq!(argmax(&[f32::NEG_INFINITY, f32::NEG_INFINITY]), None);
        assert_eq!(argmax(&[]), None);
    }
}
