//! The mel filterbank of Whisper's feature extractor, computed here rather
//! than shipped as a file: Slaney's mel scale and Slaney's area
//! normalization, as librosa's `filters.mel(htk=False, norm="slaney")` and
//! transformers' `mel_filter_bank(norm="slaney", mel_scale="slaney")` build it.

use super::audio_error;
use crate::Result;

/// Triangular mel filters over the bins of a real FFT.
#[derive(Debug, Clone)]
pub struct MelFilterBank {
    n_mels: usize,
    n_freqs: usize,
    /// Row-major `[n_mels][n_freqs]`.
    weights: Vec<f32>,
    /// For each filter, the range of FFT bins where it is nonzero (the rest
    /// is skipped when applying it: each triangle covers a handful of bins).
    support: Vec<(usize, usize)>,
}

/// Hertz to mels on Slaney's scale: linear below 1 kHz, logarithmic above.
fn hz_to_mel(hz: f64) -> f64 {
    const MIN_LOG_HZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = 15.0;
    let logstep = 27.0 / 6.4f64.ln();
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() * logstep
    } else {
        3.0 * hz / 200.0
    }
}

/// Mels to hertz on Slaney's scale, the inverse of [`hz_to_mel`].
fn mel_to_hz(mel: f64) -> f64 {
    const MIN_LOG_HZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = 15.0;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (logstep * (mel - MIN_LOG_MEL)).exp()
    } else {
        200.0 * mel / 3.0
    }
}

impl MelFilterBank {
    /// The filterbank Whisper uses: `n_mels` filters from 0 Hz to the Nyquist
    /// frequency over the `n_fft / 2 + 1` bins of an `n_fft`-point FFT at
    /// `sample_rate`. Errors when a size is zero or `n_mels` exceeds 512.
    pub fn new(n_mels: usize, n_fft: usize, sample_rate: u32) -> Result<Self> {
        if n_mels == 0 || n_mels > 512 || n_fft < 2 || sample_rate == 0 {
            return Err(audio_error(format!(
                "mel filterbank needs 1..=512 filters, an FFT of at least 2 points and a nonzero rate (got {n_mels} filters, n_fft {n_fft}, {sample_rate} Hz)"
            )));
        }
        let n_freqs = n_fft / 2 + 1;
        // Computed in f64 as the reference does, rounded to f32 once at the end.
        let linspace = |lo: f64, hi: f64, n: usize| -> Vec<f64> {
            (0..n).map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64).collect()
        };
        // transformers spaces the bins up to `sampling_rate // 2` (integer division).
        let fft_freqs = linspace(0.0, f64::from(sample_rate / 2), n_freqs);
        let mel_points = linspace(hz_to_mel(0.0), hz_to_mel(f64::from(sample_rate) / 2.0), n_mels + 2);
        let filter_freqs: Vec<f64> = mel_points.iter().map(|&m| mel_to_hz(m)).collect();

        let mut weights = vec![0f32; n_mels * n_freqs];
        let mut support = Vec::with_capacity(n_mels);
        for m in 0..n_mels {
            let (lo, center, hi) = (filter_freqs[m], filter_freqs[m + 1], filter_freqs[m + 2]);
            // Slaney normalization: every triangle has the same area.
            let enorm = 2.0 / (hi - lo);
            let (mut first, mut last) = (n_freqs, 0);
            for (k, &f) in fft_freqs.iter().enumerate() {
                let down = (f - lo) / (center - lo);
                let up = (hi - f) / (hi - center);
                let w = down.min(up).max(0.0) * enorm;
                if w > 0.0 {
                    weights[m * n_freqs + k] = w as f32;
                    first = first.min(k);
                    last = k + 1;
                }
            }
            support.push(if first < last { (first, last) } else { (0, 0) });
        }
        Ok(Self { n_mels, n_freqs, weights, support })
    }

    /// Number of filters.
    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Number of FFT bins each filter spans (`n_fft / 2 + 1`).
    pub fn n_freqs(&self) -> usize {
        self.n_freqs
    }

    /// The weights, row-major `[n_mels][n_freqs]` (transformers stores the
    /// transpose, `[n_freqs][n_mels]`).
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// Applies the filters to one power spectrum of `n_freqs` bins, writing
    /// `n_mels` energies into `out`.
    pub(crate) fn apply(&self, power: &[f32], out: &mut [f32]) {
        for (m, o) in out.iter_mut().enumerate() {
            let (a, b) = self.support[m];
            let row = &self.weights[m * self.n_freqs..(m + 1) * self.n_freqs];
            *o = row[a..b].iter().zip(&power[a..b]).map(|(w, p)| w * p).sum();
        }
    }
}
