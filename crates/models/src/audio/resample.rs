//! Streaming resampling of mono audio to 16 kHz.
//!
//! `rubato`'s `SincFixedIn`: a windowed-sinc (band-limited) interpolator,
//! the same family as the resamplers ffmpeg (swr) and libsamplerate use,
//! which is how Whisper's reference pipeline gets 16 kHz audio. It low-pass
//! filters below the new Nyquist frequency, so 44.1/48 kHz content above
//! 8 kHz does not alias into the band Whisper hears; it works for any pair of
//! rates (8 kHz telephone audio, 22.05 kHz, 96 kHz) with one code path, and it
//! is fed in small chunks, so memory does not grow with the clip.

use rubato::{Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction};

use super::{audio_error, SAMPLE_RATE};
use crate::Result;

/// Input frames per call into rubato.
const CHUNK: usize = 1024;

/// Resamples a mono stream from `source_rate` to [`SAMPLE_RATE`], pushed in
/// blocks of any size. The output is aligned with the input (the filter's
/// delay is removed) and, after [`finish`](Self::finish), has exactly
/// `round(input_len * 16000 / source_rate)` samples.
pub(crate) struct To16k {
    inner: Option<SincFixedIn<f32>>,
    ratio: f64,
    pending: Vec<f32>,
    delay_left: usize,
    in_total: u64,
    out_total: u64,
}

impl To16k {
    pub(crate) fn new(source_rate: u32) -> Result<Self> {
        if source_rate == 0 {
            return Err(audio_error("the sample rate is 0 Hz"));
        }
        let ratio = f64::from(SAMPLE_RATE) / f64::from(source_rate);
        let inner = if source_rate == SAMPLE_RATE {
            None
        } else {
            // rubato bounds the ratio it accepts; so do we, with a clear message.
            if !(1.0 / 256.0..=256.0).contains(&ratio) {
                return Err(audio_error(format!("cannot resample from {source_rate} Hz to {SAMPLE_RATE} Hz: the rate is out of range")));
            }
            let params = SincInterpolationParameters {
                sinc_len: 256,
                f_cutoff: 0.95,
                interpolation: SincInterpolationType::Linear,
                oversampling_factor: 256,
                window: WindowFunction::BlackmanHarris2,
            };
            let r = SincFixedIn::<f32>::new(ratio, 1.0, params, CHUNK, 1)
                .map_err(|e| audio_error(format!("cannot resample from {source_rate} Hz: {e}")))?;
            Some(r)
        };
        let delay_left = inner.as_ref().map_or(0, |r| r.output_delay());
        Ok(Self { inner, ratio, pending: Vec::new(), delay_left, in_total: 0, out_total: 0 })
    }

    /// Output samples the whole input so far should give.
    fn expected(&self) -> u64 {
        (self.in_total as f64 * self.ratio).round() as u64
    }

    fn emit(&mut self, mut block: &[f32], out: &mut Vec<f32>, cap: Option<u64>) {
        let skip = self.delay_left.min(block.len());
        self.delay_left -= skip;
        block = &block[skip..];
        if let Some(cap) = cap {
            let room = cap.saturating_sub(self.out_total) as usize;
            block = &block[..block.len().min(room)];
        }
        self.out_total += block.len() as u64;
        out.extend_from_slice(block);
    }

    /// Feeds `input` and appends the 16 kHz samples that are ready to `out`.
    pub(crate) fn push(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<()> {
        self.in_total += input.len() as u64;
        let Some(inner) = self.inner.as_mut() else {
            self.out_total += input.len() as u64;
            out.extend_from_slice(input);
            return Ok(());
        };
        self.pending.extend_from_slice(input);
        let mut done = 0;
        let mut blocks = Vec::new();
        while self.pending.len() - done >= inner.input_frames_next() {
            let n = inner.input_frames_next();
            let res = inner.process(&[&self.pending[done..done + n]], None).map_err(|e| audio_error(format!("resampling failed: {e}")))?;
            done += n;
            blocks.push(res.into_iter().next().unwrap_or_default());
        }
        self.pending.drain(..done);
        for b in blocks {
            self.emit(&b, out, None);
        }
        Ok(())
    }

    /// Flushes the filter: appends the remaining samples so the whole output
    /// has its exact length.
    pub(crate) fn finish(&mut self, out: &mut Vec<f32>) -> Result<()> {
        let expected = self.expected();
        let Some(mut inner) = self.inner.take() else { return Ok(()) };
        let err = |e: rubato::ResampleError| audio_error(format!("resampling failed: {e}"));
        let pending = std::mem::take(&mut self.pending);
        let first = inner.process_partial(Some(&[&pending[..]]), None).map_err(err)?;
        self.emit(&first.into_iter().next().unwrap_or_default(), out, Some(expected));
        // Zeros push the filter's tail out; a few calls are always enough
        // (the delay is at most half the sinc length).
        let mut guard = 0;
        while self.out_total < expected && guard < 64 {
            let res = inner.process_partial::<&[f32]>(None, None).map_err(err)?;
            self.emit(&res.into_iter().next().unwrap_or_default(), out, Some(expected));
            guard += 1;
        }
        Ok(())
    }
}
