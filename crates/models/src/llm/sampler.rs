//! Choosing the next token from the logits: greedy, or sampling with
//! temperature, top-k, top-p and a repetition penalty, from a seeded
//! generator so a seed reproduces a generation exactly.

use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How the next token is chosen.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingOptions {
    /// 0 = greedy (the most likely token); above 0 divides the logits
    /// before the softmax (below 1 sharpens, above 1 flattens).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probabilities
    /// sum to at least `p` (1.0 = all).
    pub top_p: f32,
    /// Divides positive logits (multiplies negative ones) of tokens already
    /// in the prompt or output by this (1.0 = off), as in the CTRL paper and
    /// transformers' `repetition_penalty`.
    pub repetition_penalty: f32,
    /// Seed of the random generator (`None`: from the operating system).
    pub seed: Option<u64>,
}

impl Default for SamplingOptions {
    fn default() -> Self {
        SamplingOptions { temperature: 0.0, top_k: 0, top_p: 1.0, repetition_penalty: 1.0, seed: None }
    }
}

impl SamplingOptions {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        SamplingOptions::default()
    }

    /// Checks the values are usable, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidOption(what));
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad(format!("temperature must be 0 (greedy) or positive, got {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top-p must be in (0, 1], got {}", self.top_p));
        }
        if !self.repetition_penalty.is_finite() || self.repetition_penalty <= 0.0 {
            return bad(format!("repetition penalty must be positive, got {}", self.repetition_penalty));
        }
        Ok(())
    }
}

/// Picks tokens one step at a time.
pub struct Sampler {
    options: SamplingOptions,
    rng: ChaCha8Rng,
    /// Reused buffer of (token, logit) candidates.
    candidates: Vec<(u32, f32)>,
}

impl Sampler {
    /// A sampler with `options` (validated).
    pub fn new(options: SamplingOptions) -> Result<Self> {
        options.validate()?;
        let rng = match options.seed {
            Some(seed) => ChaCha8Rng::seed_from_u64(seed),
            None => ChaCha8Rng::from_os_rng(),
        };
        Ok(Sampler { options, rng, candidates: Vec::new() })
    }

    /// Chooses the next token from `logits`, given the tokens seen so far
    /// (for the repetition penalty). `logits` is modified in place.
    pub fn sample(&mut self, logits: &mut [f32], seen: &[u32]) -> Result<u32> {
        if logits.is_empty() {
            return Err(Error::Backend("the model returned no logits".into()));
        }
        if let Some(bad) = logits.iter().position(|v| v.is_nan()) {
            return Err(Error::Backend(format!("the model produced NaN logits (token {bad})")));
        }
        apply_repetition_penalty(logits, seen, self.options.repetition_penalty);
        if self.options.temperature == 0.0 {
            return Ok(argmax(logits));
        }
        self.candidates.clear();
        self.candidates.extend(logits.iter().enumerate().map(|(i, &l)| (i as u32, l / self.options.temperature)));
        // Most likely first; ties keep the lower id first, like a stable sort.
        let keep =
            if self.options.top_k > 0 { self.options.top_k.min(self.candidates.len()) } else { self.candidates.len() };
        if keep < self.candidates.len() {
            self.candidates.select_nth_unstable_by(keep - 1, by_logit_desc);
            self.candidates.truncate(keep);
        }
        self.candidates.sort_unstable_by(by_logit_desc);
        // Softmax over the survivors, then the top-p cut.
        let max = self.candidates[0].1;
        let mut total = 0.0f64;
        for c in &mut self.candidates {
            c.1 = ((c.1 - max) as f64).exp() as f32;
            total += c.1 as f64;
        }
        if self.options.top_p < 1.0 {
            let mut cumulative = 0.0f64;
            let mut cut = self.candidates.len();
            for (i, c) in self.candidates.iter().enumerate() {
                cumulative += c.1 as f64 / total;
                if cumulative >= self.options.top_p as f64 {
                    cut = i + 1;
                    break;
                }
            }
            self.candidates.truncate(cut);
            total = self.candidates.iter().map(|c| c.1 as f64).sum();
        }
        let mut target = self.rng.random::<f64>() * total;
        for &(id, weight) in &self.candidates {
            target -= weight as f64;
            if target <= 0.0 {
                return Ok(id);
            }
        }
        // Rounding left a sliver past the end: the last candidate owns it.
        Ok(self.candidates.last().expect("at least one candidate").0)
    }
}

fn by_logit_desc(a: &(u32, f32), b: &(u32, f32)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// The index of the largest value (the first one on ties, like
/// `torch.argmax`).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// transformers' `RepetitionPenaltyLogitsProcessor`: each distinct seen
/// token once.
fn apply_repetition_penalty(logits: &mut [f32], seen: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut done = std::collections::HashSet::new();
    for &id in seen {
        let Some(l) = logits.get_mut(id as usize) else { continue };
        if done.insert(id) {
            *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut s = Sampler::new(SamplingOptions::greedy()).unwrap();
        assert_eq!(s.sample(&mut [0.1, 3.0, 3.0, -1.0], &[]).unwrap(), 1);
    }

    #[test]
    fn repetition_penalty_demotes_seen_tokens() {
        let mut s = Sampler::new(SamplingOptions { repetition_penalty: 2.0, ..SamplingOptions::greedy() }).unwrap();
        // Token 0 (3.0 → 1.5) loses to token 1 (2.0); negative logits grow more negative.
        let mut logits = [3.0, 2.0, -1.0];
        assert_eq!(s.sample(&mut logits, &[0, 0, 2]).unwrap(), 1);
        assert_eq!(logits, [1.5, 2.0, -2.0]);
    }

    #[test]
    fn a_seed_reproduces_the_samples_and_top_k_bounds_them() {
        let options = SamplingOptions { temperature: 1.0, top_k: 3, seed: Some(7), ..SamplingOptions::default() };
        let draw = |options: &SamplingOptions| {
            let mut s = Sampler::new(options.clone()).unwrap();
            (0..200).map(|_| s.sample(&mut [1.0, 0.9, 0.8, 0.7, 5.0, -3.0], &[]).unwrap()).collect::<Vec<_>>()
        };
        let a = draw(&options);
        assert_eq!(a, draw(&options));
        assert!(a.iter().all(|id| [0, 1, 4].contains(id)), "{a:?}");
        assert!(a.iter().filter(|&&id| id == 4).count() > 150);
        assert_ne!(a, draw(&SamplingOptions { seed: Some(8), ..options }));
    }

    #[test]
    fn top_p_keeps_the_smallest_likely_set() {
        let options = SamplingOptions { temperature: 1.0, top_p: 0.5, seed: Some(1), ..SamplingOptions::default() };
        let mut s = Sampler::new(options).unwrap();
        // Token 2 alone has ~84% of the mass, so it is the whole nucleus.
        for _ in 0..50 {
            assert_eq!(s.sample(&mut [0.0, 1.0, 3.0], &[]).unwrap(), 2);
        }
    }

    #[test]
    fn sampling_follows_the_distribution() {
        let options = SamplingOptions { temperature: 1.0, seed: Some(3), ..SamplingOptions::default() };
        let mut s = Sampler::new(options).unwrap();
        let n = 20000;
        let ones = (0..n).filter(|_| s.sample(&mut [0.0, (3.0f32).ln()], &[]).unwrap() == 1).count();
        let share = ones as f64 / n as f64;
        assert!((share - 0.75).abs() < 0.02, "token 1 drawn {share} of the time, expected 0.75");
    }

    #[test]
    fn bad_options_and_nan_logits_are_errors() {
        for bad in [
            SamplingOptions { temperature: -1.0, ..SamplingOptions::default() },
            SamplingOptions { top_p: 0.0, ..SamplingOptions::default() },
            SamplingOptions { top_p: 1.5, ..SamplingOptions::default() },
            SamplingOptions { repetition_penalty: 0.0, ..SamplingOptions::default() },
        ] {
            assert!(Sampler::new(bad).is_err());
        }
        let mut s = Sampler::new(SamplingOptions::greedy()).unwrap();
        let e = s.sample(&mut [0.0, f32::NAN], &[]).unwrap_err().to_string();
        assert!(e.contains("NaN"), "{e}");
    }
}
