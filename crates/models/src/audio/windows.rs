//! The bounded-memory path for long audio: 30 s windows of 16 kHz samples,
//! decoded and resampled as they are read.

use std::path::Path;

use super::decode::guard;
use super::resample::To16k;
use super::source::{ByteSource, Source};
use super::{audio_error, WINDOW_SAMPLES};
use crate::{Error, Result};

/// Consecutive, non-overlapping 30 s windows ([`WINDOW_SAMPLES`] samples at
/// 16 kHz, mono) of a clip of any length; the last one is shorter. Memory
/// stays at about one window plus one decoded packet whatever the clip's
/// length, so a 3-hour recording costs what a 30 s one does. Each window goes
/// straight into [`super::LogMelSpectrogram::compute`].
///
/// After an error the iterator ends.
pub struct AudioWindows {
    source: Option<Source>,
    resampler: To16k,
    buffer: Vec<f32>,
    finished: bool,
    source_rate: u32,
    channels: u16,
}

impl std::fmt::Debug for AudioWindows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioWindows")
            .field("source_rate", &self.source_rate)
            .field("channels", &self.channels)
            .finish()
    }
}

impl AudioWindows {
    /// Opens a file (WAV, MP3, FLAC or Ogg Vorbis).
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        let len = file.metadata().ok().map(|m| m.len());
        let hint = path.extension().and_then(|e| e.to_str());
        Self::from_source(Box::new(std::io::BufReader::new(file)), len, hint)
    }

    /// Reads a clip held in memory; `hint` is a file extension or `None`.
    pub fn from_bytes(bytes: Vec<u8>, hint: Option<&str>) -> Result<Self> {
        let len = bytes.len() as u64;
        Self::from_source(Box::new(std::io::Cursor::new(bytes)), Some(len), hint)
    }

    fn from_source(bytes: Box<dyn ByteSource>, len: Option<u64>, hint: Option<&str>) -> Result<Self> {
        let source = guard("the header", || Source::open(bytes, len, hint))?;
        let resampler = To16k::new(source.rate)?;
        Ok(Self {
            source_rate: source.rate,
            channels: source.channels,
            source: Some(source),
            resampler,
            buffer: Vec::with_capacity(WINDOW_SAMPLES),
            finished: false,
        })
    }

    /// The sample rate of the file, Hz.
    pub fn source_rate(&self) -> u32 {
        self.source_rate
    }

    /// The channel count of the file.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    fn fill(&mut self) -> Result<Option<Vec<f32>>> {
        while self.buffer.len() < WINDOW_SAMPLES {
            let Some(source) = self.source.as_mut() else { break };
            match guard("a packet", || source.next_block())? {
                Some(block) => {
                    if block.iter().any(|x| !x.is_finite()) {
                        return Err(audio_error("the file holds NaN or infinite samples; it is corrupt"));
                    }
                    self.resampler.push(&block, &mut self.buffer)?;
                }
                None => {
                    source.check_complete()?;
                    if source.frames == 0 {
                        return Err(audio_error("the clip holds no audio samples"));
                    }
                    self.resampler.finish(&mut self.buffer)?;
                    self.source = None;
                }
            }
        }
        if self.buffer.is_empty() {
            return Ok(None);
        }
        let rest = if self.buffer.len() > WINDOW_SAMPLES { self.buffer.split_off(WINDOW_SAMPLES) } else { Vec::new() };
        let mut window = std::mem::replace(&mut self.buffer, rest);
        window.shrink_to_fit();
        self.buffer.reserve(WINDOW_SAMPLES.saturating_sub(self.buffer.len()));
        Ok(Some(window))
    }
}

impl Iterator for AudioWindows {
    type Item = Result<Vec<f32>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let item = self.fill();
        if !matches!(item, Ok(Some(_))) {
            self.finished = true;
        }
        item.transpose()
    }
}
