//! Speech to text from Python: loading a Whisper model, decoding the audio
//! (a file, a file's bytes, or 16 kHz samples) and transcribing it with the
//! GIL released.
//!
//! The model crate's `Transcriber` has no cancellation hook, so the work
//! runs on a thread of its own (`wait::run_interruptible`): Ctrl-C raises
//! KeyboardInterrupt at once while the transcription finishes in the
//! background (holding the model, so the next call on it waits) and its
//! answer is dropped.

use crate::errors::{Error, Result};
use crate::wait::{run_interruptible, WaitError};
use ipfs_accelerate_models::audio::decode_bytes;
use ipfs_accelerate_models::llm::weights::WeightBits;
use ipfs_accelerate_models::whisper::{Task, TranscribeOptions, Transcriber, Transcript};
use ipfs_accelerate_models::{BackendChoice, Error as ModelError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The audio to transcribe, as the Python layer hands it over.
pub enum AudioArg {
    /// An audio file on disk (WAV, MP3, FLAC, Ogg Vorbis).
    Path(PathBuf),
    /// An audio file's bytes.
    Bytes(Vec<u8>),
    /// Mono samples at 16 kHz.
    Samples(Vec<f32>),
}

impl AudioArg {
    /// Builds the argument from the native call's three optional ones:
    /// exactly one must be given (the Python layer guarantees it).
    pub fn from_parts(path: Option<PathBuf>, data: Option<Vec<u8>>, samples: Option<Vec<u8>>) -> Result<Self> {
        match (path, data, samples) {
            (Some(path), None, None) => Ok(AudioArg::Path(path)),
            (None, Some(data), None) => Ok(AudioArg::Bytes(data)),
            (None, None, Some(raw)) => {
                if raw.len() % 4 != 0 {
                    return Err(Error::InvalidInput(
                        "samples must be float32 values (a byte length divisible by 4)".into(),
                    ));
                }
                let samples =
                    raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect::<Vec<_>>();
                if samples.iter().any(|x| !x.is_finite()) {
                    return Err(Error::InvalidInput("the samples hold NaN or infinite values".into()));
                }
                Ok(AudioArg::Samples(samples))
            }
            _ => Err(Error::InvalidInput("pass exactly one of an audio path, audio bytes or samples".into())),
        }
    }
}

/// Loads the Whisper model in `dir` on the CPU with the GIL released
/// (Ctrl-C interrupts the wait; the load finishes in the background and is
/// dropped).
pub fn load(py: Python<'_>, dir: &Path) -> PyResult<Arc<Transcriber>> {
    let owned = dir.to_path_buf();
    let loaded = match run_interruptible(py, None, move || {
        Transcriber::load(&owned, BackendChoice::Cpu, WeightBits::AsStored)
    }) {
        Ok(loaded) => loaded,
        Err(WaitError::Python(e)) => return Err(e),
        Err(WaitError::TimedOut | WaitError::Lost) => {
            return Err(Error::Inference(format!("loading {} ended without an answer", dir.display())).into())
        }
    };
    loaded.map(|(transcriber, _notice)| Arc::new(transcriber)).map_err(|e| load_error(e, dir).into())
}

/// A model-crate error met while loading `dir`, as the package's error.
fn load_error(e: ModelError, dir: &Path) -> Error {
    let shown = dir.display();
    match e {
        ModelError::MissingFile { .. } | ModelError::ModelDirMissing(_) | ModelError::Io { .. } => {
            Error::ModelNotFound(format!("cannot load the Whisper model {shown}: {e}"))
        }
        ModelError::Config { .. } => Error::UnsupportedModelType(format!(
            "{shown} is not a Whisper speech-recognition model this version runs: {e}"
        )),
        ModelError::InvalidOption(m) => Error::InvalidInput(m),
        other => Error::Inference(format!("cannot load the Whisper model {shown}: {other}")),
    }
}

/// A model-crate error met while decoding or transcribing, as the
/// package's error: anything wrong with the audio or the options is the
/// caller's input.
fn transcribe_error(e: ModelError) -> Error {
    match e {
        ModelError::Audio(m) => Error::InvalidInput(format!("cannot use the audio: {m}")),
        ModelError::InvalidOption(m) => Error::InvalidInput(m),
        e @ ModelError::Io { .. } => Error::InvalidInput(e.to_string()),
        other => Error::Inference(format!("transcription failed: {other}")),
    }
}

/// Transcribes `audio` with `transcriber` on a thread of its own, waiting
/// with the GIL released; Ctrl-C raises KeyboardInterrupt.
pub fn run(
    py: Python<'_>,
    transcriber: Arc<Transcriber>,
    audio: AudioArg,
    timestamps: bool,
    language: Option<String>,
    translate: bool,
) -> PyResult<Transcript> {
    let options =
        TranscribeOptions { timestamps, language, task: if translate { Task::Translate } else { Task::Transcribe } };
    let work = move || -> std::result::Result<Transcript, ModelError> {
        match audio {
            AudioArg::Path(path) => transcriber.transcribe_file(&path, &options),
            AudioArg::Bytes(bytes) => {
                let decoded = decode_bytes(&bytes, None)?;
                transcriber.transcribe(&decoded.samples_16k, &options)
            }
            AudioArg::Samples(samples) => transcriber.transcribe(&samples, &options),
        }
    };
    match run_interruptible(py, None, work) {
        Ok(outcome) => outcome.map_err(|e| transcribe_error(e).into()),
        Err(WaitError::Python(e)) => Err(e),
        Err(WaitError::TimedOut | WaitError::Lost) => {
            Err(Error::Inference("the transcription ended without an answer".into()).into())
        }
    }
}

/// Seconds rounded to 0.01 s (Whisper's timestamps are 0.02 s apart), so
/// 3.8 reads 3.8 and not 3.8000000000000003.
fn seconds(t: f64) -> f64 {
    (t * 100.0).round() / 100.0
}

/// The transcript as the dict the Python layer returns (segment times
/// rounded by [`seconds`]).
pub fn to_dict<'py>(py: Python<'py>, transcript: &Transcript, backend: &str) -> PyResult<Bound<'py, PyDict>> {
    let segments = PyList::empty(py);
    for segment in &transcript.segments {
        let s = PyDict::new(py);
        s.set_item("start", seconds(segment.start))?;
        s.set_item("end", seconds(segment.end))?;
        s.set_item("text", &segment.text)?;
        segments.append(s)?;
    }
    let d = PyDict::new(py);
    d.set_item("text", &transcript.text)?;
    d.set_item("language", &transcript.language)?;
    d.set_item("duration", transcript.duration)?;
    d.set_item("segments", segments)?;
    d.set_item("backend", backend)?;
    Ok(d)
}
