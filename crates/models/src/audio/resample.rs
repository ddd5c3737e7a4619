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

/// The filter's delay in output samples (negative: the output leads).
/// rubato's `output_delay()` does not describe what `SincFixedIn` actually
/// does (at 44.1 kHz it says 46 samples; the output in fact leads the input
/// by 0.65), so the delay is measured instead: a sinc interpolator reproduces a slow ramp up to its DC
/// gain g, so output sample j of the ramp x[i] = i reads
/// `g (j - delay) / ratio`.
/// The residual misalignment is at most half a 16 kHz sample (31 µs),
/// far below Whisper's 20 ms timestamp resolution.
fn measure_delay(mut r: SincFixedIn<f32>, ratio: f64) -> Result<f64> {
    let mut out = Vec::new();
    let mut fed = 0usize;
    for _ in 0..4 {
        let n = r.input_frames_next();
        let ramp: Vec<f32> = (fed..fed + n).map(|i| i as f32).collect();
        fed += n;
        let res = r.process(&[&ramp[..]], None).map_err(|e| audio_error(format!("resampling failed: {e}")))?;
        out.extend(res.into_iter().next().unwrap_or_default());
    }
    // Far from the ramp's start (the filter's edge) and from the end of what
    // came out.
    // The filter's DC gain is not exactly 1, so the slope is measured too.
    let (j1, j) = (out.len() / 2, out.len() * 3 / 4);
    let gain = f64::from(out[j] - out[j1]) * ratio / (j - j1) as f64;
    let delay = j as f64 - f64::from(out[j]) * ratio / gain;
    if !delay.is_finite() || delay.abs() > (out.len() / 4) as f64 {
        return Err(audio_error(format!("cannot measure the resampler's delay (got {delay})")));
    }
    Ok(delay)
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
                return Err(audio_error(format!(
                    "cannot resample from {source_rate} Hz to {SAMPLE_RATE} Hz: the rate is out of range"
                )));
            }
            let make = || {
                let params = SincInterpolationParameters {
                    sinc_len: 256,
                    f_cutoff: 0.95,
                    interpolation: SincInterpolationType::Linear,
                    oversampling_factor: 256,
                    window: WindowFunction::BlackmanHarris2,
                };
                SincFixedIn::<f32>::new(ratio, 1.0, params, CHUNK, 1)
                    .map_err(|e| audio_error(format!("cannot resample from {source_rate} Hz: {e}")))
            };
            let delay = measure_delay(make()?, ratio)?;
            Some((make()?, delay))
        };
        // A leading output is delayed with zeros in front of the input, then
        // the whole delay is dropped from the output, rounded to a sample.
        let (inner, delay_left, pending) = match inner {
            Some((r, delay)) => {
                let pad = if delay < 0.0 { (-delay / ratio).ceil() as usize } else { 0 };
                let delay = delay + pad as f64 * ratio;
                (Some(r), delay.round() as usize, vec![0f32; pad])
            }
            None => (None, 0, Vec::new()),
        };
        Ok(Self { inner, ratio, pending, delay_left, in_total: 0, out_total: 0 })
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
            let res = inner
                .process(&[&self.pending[done..done + n]], None)
                .map_err(|e| audio_error(format!("resampling failed: {e}")))?;
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
