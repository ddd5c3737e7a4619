//! The audio front end of Whisper: decoding, resampling to 16 kHz mono and
//! the log-mel spectrogram Whisper's encoder reads.
//!
//! - [`load_audio`] / [`decode_bytes`]: a whole clip (WAV through `hound`;
//!   MP3, FLAC and Ogg Vorbis through `symphonia`), mixed to mono and
//!   resampled to [`SAMPLE_RATE`]. One-shot decoding holds the clip in
//!   memory, so it refuses clips longer than [`MAX_ONE_SHOT_SECONDS`].
//! - [`AudioWindows`]: the bounded-memory path for long audio (a 3-hour
//!   recording): it decodes and resamples incrementally and yields one
//!   30 s window of 16 kHz samples at a time.
//! - [`LogMelSpectrogram`]: Whisper's features (n_fft 400, hop 160, periodic
//!   Hann window, reflect padding, Slaney mel filters, log10 clamped to
//!   max − 8, (x + 4) / 4, 3000 frames), equal to transformers'
//!   `WhisperFeatureExtractor` within 1e-4.
//!
//! ```no_run
//! use ipfs_accelerate_models::audio::{load_audio, LogMelSpectrogram};
//! let audio = load_audio("speech.flac".as_ref())?;
//! let mel = LogMelSpectrogram::new(80)?.compute(&audio.samples_16k)?;
//! assert_eq!(mel.len(), 80 * 3000);
//! # Ok::<(), ipfs_accelerate_models::Error>(())
//! ```

mod decode;
mod logmel;
mod mel;
mod metadata_check;
mod resample;
mod source;
mod windows;

pub use decode::{decode_bytes, load_audio, Audio};
pub use logmel::LogMelSpectrogram;
pub use mel::MelFilterBank;
pub use windows::AudioWindows;

use crate::Error;

/// The sample rate Whisper's features are computed at, in Hz.
pub const SAMPLE_RATE: u32 = 16_000;
/// FFT size of Whisper's STFT (25 ms at 16 kHz).
pub const N_FFT: usize = 400;
/// Hop between STFT frames (10 ms at 16 kHz).
pub const HOP_LENGTH: usize = 160;
/// Samples in one 30 s window, the fixed input length of Whisper's encoder.
pub const WINDOW_SAMPLES: usize = 30 * SAMPLE_RATE as usize;
/// Frames of log-mel features in one 30 s window.
pub const WINDOW_FRAMES: usize = WINDOW_SAMPLES / HOP_LENGTH;
/// The longest clip [`load_audio`] and [`decode_bytes`] accept, in seconds
/// (30 minutes: about 115 MB of 16 kHz f32 samples, plus the decoded source
/// at its own rate while resampling). Longer audio goes through
/// [`AudioWindows`], whose memory does not grow with the clip's length.
pub const MAX_ONE_SHOT_SECONDS: f64 = 1800.0;

/// The error of every audio entry point: the message says what is wrong with
/// the input.
pub(crate) fn audio_error(message: impl std::fmt::Display) -> Error {
    Error::Audio(message.to_string())
}
