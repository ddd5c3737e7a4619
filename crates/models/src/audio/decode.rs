//! One-shot decoding of a whole clip to 16 kHz mono.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Duration;

use super::resample::To16k;
use super::source::{ByteSource, Source};
use super::{audio_error, MAX_ONE_SHOT_SECONDS};
use crate::{Error, Result};

/// A decoded clip, mixed to mono and resampled to 16 kHz.
#[derive(Debug, Clone)]
pub struct Audio {
    /// The samples at [`SAMPLE_RATE`], in [-1, 1] for integer sources
    /// (float sources are passed through as they are).
    pub samples_16k: Vec<f32>,
    /// The sample rate of the file, Hz.
    pub source_rate: u32,
    /// The channel count of the file (the samples are their mean).
    pub channels: u16,
    /// The clip's length.
    pub duration: Duration,
}

/// Runs a decoding step, turning a panic inside a decoder library into an
/// error. symphonia and hound are meant not to panic on bad input, but a
/// user's file must never take the process down if one does; the panic is a
/// bug to report upstream, and the caller gets "the file is corrupt".
pub(crate) fn guard<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(audio_error(format!("the decoder failed on {what} ({message}); the file is corrupt or unsupported")))
    })
}

fn too_long(seconds: f64) -> Error {
    audio_error(format!(
        "the clip is {seconds:.0} s long, over the {MAX_ONE_SHOT_SECONDS:.0} s one-shot limit; read long audio in 30 s windows with AudioWindows"
    ))
}

fn decode(mut source: Source) -> Result<Audio> {
    let rate = source.rate;
    let max_frames = (MAX_ONE_SHOT_SECONDS * f64::from(rate)) as u64;
    if let Some(declared) = source.declared_frames {
        if declared > max_frames {
            return Err(too_long(declared as f64 / f64::from(rate)));
        }
    }
    let mut resampler = To16k::new(rate)?;
    let mut samples = Vec::new();
    while let Some(block) = source.next_block()? {
        // Headers can lie (or say nothing): the limit holds on what decodes.
        if source.frames > max_frames {
            return Err(too_long(source.frames as f64 / f64::from(rate)));
        }
        if block.iter().any(|x| !x.is_finite()) {
            return Err(audio_error("the file holds NaN or infinite samples; it is corrupt"));
        }
        resampler.push(&block, &mut samples)?;
    }
    source.check_complete()?;
    if source.frames == 0 {
        return Err(audio_error("the clip holds no audio samples"));
    }
    resampler.finish(&mut samples)?;
    Ok(Audio {
        samples_16k: samples,
        source_rate: rate,
        channels: source.channels,
        duration: Duration::from_secs_f64(source.frames as f64 / f64::from(rate)),
    })
}

/// Decodes an audio file (WAV, MP3, FLAC or Ogg Vorbis; the content decides,
/// the extension is only a hint) to 16 kHz mono. Clips longer than
/// [`MAX_ONE_SHOT_SECONDS`] are refused: use [`super::AudioWindows`].
pub fn load_audio(path: &Path) -> Result<Audio> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let len = file.metadata().ok().map(|m| m.len());
    let hint = path.extension().and_then(|e| e.to_str());
    let bytes: Box<dyn ByteSource> = Box::new(std::io::BufReader::new(file));
    guard("the file", || decode(Source::open(bytes, len, hint)?)).map_err(|e| match e {
        Error::Audio(m) => Error::Audio(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// Decodes an audio file held in memory, as [`load_audio`] does. `hint` is a
/// file extension ("flac", "mp3", "ogg", "wav") or `None`.
pub fn decode_bytes(bytes: &[u8], hint: Option<&str>) -> Result<Audio> {
    let len = bytes.len() as u64;
    let owned: Box<dyn ByteSource> = Box::new(std::io::Cursor::new(bytes.to_vec()));
    guard("the bytes", || decode(Source::open(owned, Some(len), hint)?))
}
