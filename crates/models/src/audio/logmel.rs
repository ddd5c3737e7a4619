//! Whisper's log-mel spectrogram, step for step as transformers'
//! `WhisperFeatureExtractor` (and OpenAI's `log_mel_spectrogram`) compute it.

use std::sync::Arc;

use rayon::prelude::*;
use realfft::{RealFftPlanner, RealToComplex};

use super::{audio_error, MelFilterBank, HOP_LENGTH, N_FFT, SAMPLE_RATE, WINDOW_SAMPLES};
use crate::Result;

/// Computes Whisper's input features from 16 kHz mono samples. Build it once
/// (it plans the FFT and computes the filterbank) and reuse it per window.
pub struct LogMelSpectrogram {
    filters: MelFilterBank,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl std::fmt::Debug for LogMelSpectrogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMelSpectrogram").field("n_mels", &self.filters.n_mels()).finish()
    }
}

impl LogMelSpectrogram {
    /// A feature extractor with `n_mels` mel bins: 80 for Whisper tiny to
    /// large-v2, 128 for large-v3.
    pub fn new(n_mels: usize) -> Result<Self> {
        let filters = MelFilterBank::new(n_mels, N_FFT, SAMPLE_RATE)?;
        // The periodic Hann window (torch.hann_window's default): the
        // symmetric window of N + 1 points without its last point.
        let window = (0..N_FFT)
            .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64).cos()) as f32)
            .collect();
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        Ok(Self { filters, window, fft })
    }

    /// Number of mel bins.
    pub fn n_mels(&self) -> usize {
        self.filters.n_mels()
    }

    /// The filterbank in use.
    pub fn filters(&self) -> &MelFilterBank {
        &self.filters
    }

    /// Features of one 30 s window: `samples` (16 kHz mono) are padded with
    /// zeros or truncated to [`WINDOW_SAMPLES`], and the result is row-major
    /// `[n_mels][3000]` ([`super::WINDOW_FRAMES`]), as Whisper's encoder reads it.
    pub fn compute(&self, samples: &[f32]) -> Result<Vec<f32>> {
        self.features(&samples[..samples.len().min(WINDOW_SAMPLES)], WINDOW_SAMPLES)
    }

    /// Features of a whole clip of any length, as transformers computes them
    /// for long-form transcription: no padding to 30 s, one frame per
    /// [`HOP_LENGTH`] samples (the clip's length rounded down), and the
    /// dynamic range clamped below the loudest value of the whole clip.
    /// Row-major `[n_mels][frames]`; returns the features and `frames`.
    pub fn compute_full(&self, samples: &[f32]) -> Result<(Vec<f32>, usize)> {
        if samples.len() < HOP_LENGTH {
            return Err(audio_error(format!(
                "the clip has {} samples; at least {HOP_LENGTH} (10 ms) are needed for one frame",
                samples.len()
            )));
        }
        let frames = samples.len() / HOP_LENGTH;
        Ok((self.features(samples, samples.len())?, frames))
    }

    /// `[n_mels][len / HOP_LENGTH]` features of `signal` zero-padded to `len`
    /// samples.
    fn features(&self, signal: &[f32], len: usize) -> Result<Vec<f32>> {
        if let Some(bad) = signal.iter().find(|x| !x.is_finite()) {
            return Err(audio_error(format!("a sample is {bad}; samples must be finite")));
        }
        let n_mels = self.n_mels();
        let n_freqs = self.filters.n_freqs();
        let frames = len / HOP_LENGTH;

        // Reflect padding of n_fft / 2 on both sides (center=True) of the
        // zero-padded signal, which is what transformers does: it pads the
        // clip to 480000 samples first (short-form), then centres the STFT.
        let half = N_FFT / 2;
        let mut padded = vec![0f32; len + 2 * half];
        padded[half..half + signal.len()].copy_from_slice(signal);
        for i in 0..half {
            padded[half - 1 - i] = padded[half + 1 + i];
            padded[half + len + i] = padded[half + len - 2 - i];
        }

        // The STFT has frames + 1 frames; Whisper drops the last one.
        let mut mel = vec![0f32; frames * n_mels]; // frame-major while computing
        mel.par_chunks_mut(n_mels * 64).enumerate().try_for_each(|(chunk, out)| -> Result<()> {
            let mut frame = self.fft.make_input_vec();
            let mut spectrum = self.fft.make_output_vec();
            let mut scratch = self.fft.make_scratch_vec();
            let mut power = vec![0f32; n_freqs];
            for (j, out) in out.chunks_mut(n_mels).enumerate() {
                let start = (chunk * 64 + j) * HOP_LENGTH;
                let src = &padded[start..start + N_FFT];
                if src.iter().all(|&x| x == 0.0) {
                    out.fill(0.0); // padding: skip the FFT of silence
                    continue;
                }
                for ((f, &x), &w) in frame.iter_mut().zip(src).zip(&self.window) {
                    *f = x * w;
                }
                self.fft
                    .process_with_scratch(&mut frame, &mut spectrum, &mut scratch)
                    .map_err(|e| audio_error(format!("FFT failed: {e}")))?;
                for (p, c) in power.iter_mut().zip(&spectrum) {
                    *p = c.norm_sqr();
                }
                self.filters.apply(&power, out);
            }
            Ok(())
        })?;

        // log10 with a floor, then the dynamic range is clamped to 8 (80 dB)
        // below the loudest value of the window, and scaled to about [-1, 1].
        let mut max = f32::NEG_INFINITY;
        for v in mel.iter_mut() {
            *v = v.max(1e-10).log10();
            max = max.max(*v);
        }
        let floor = max - 8.0;
        let mut features = vec![0f32; n_mels * frames];
        for (t, frame) in mel.chunks(n_mels).enumerate() {
            for (m, &v) in frame.iter().enumerate() {
                features[m * frames + t] = (v.max(floor) + 4.0) / 4.0;
            }
        }
        Ok(features)
    }
}
