//! Incremental decoding of one audio stream into mono f32 blocks at the
//! source's rate: WAV through `hound`, everything else through `symphonia`.
//!
//! Both libraries read lazily, so a [`Source`] holds one packet (or one block
//! of WAV frames) at a time whatever the file's length.

use std::io::{Read, Seek, SeekFrom};

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{Decoder, DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::{audio_error, metadata_check};
use crate::Result;

/// Bytes at the start of a FLAC or Ogg file whose tag headers are checked.
const HEAD_CHECK_BYTES: u64 = 4 << 20;
/// WAV frames decoded per block.
const WAV_BLOCK: usize = 16 * 1024;
/// Channels we accept; more is a corrupt header, not a real recording.
const MAX_CHANNELS: usize = 64;

/// A readable, seekable byte source symphonia can own.
pub(crate) trait ByteSource: Read + Seek + Send + Sync {}
impl<T: Read + Seek + Send + Sync> ByteSource for T {}

struct ReadSeekSource(Box<dyn ByteSource>, Option<u64>);

impl Read for ReadSeekSource {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}
impl Seek for ReadSeekSource {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.0.seek(pos)
    }
}
impl MediaSource for ReadSeekSource {
    fn is_seekable(&self) -> bool {
        true
    }
    fn byte_len(&self) -> Option<u64> {
        self.1
    }
}

enum Inner {
    Wav { reader: hound::WavReader<Box<dyn ByteSource>>, scale: f32, float: bool, left: u64 },
    Symphonia { format: Box<dyn FormatReader>, decoder: Box<dyn Decoder>, track: u32, buf: Option<SampleBuffer<f32>> },
}

/// One decoded stream, read block by block.
pub(crate) struct Source {
    inner: Inner,
    /// Sample rate of the stream, Hz (nonzero).
    pub(crate) rate: u32,
    /// Channels of the stream (1..=64).
    pub(crate) channels: u16,
    /// Frames the header announces, when it does.
    pub(crate) declared_frames: Option<u64>,
    /// Frames decoded so far.
    pub(crate) frames: u64,
}

fn check_format(rate: u32, channels: usize) -> Result<()> {
    if rate == 0 {
        return Err(audio_error("the header gives a sample rate of 0 Hz; the file is corrupt"));
    }
    if channels == 0 || channels > MAX_CHANNELS {
        return Err(audio_error(format!(
            "the header gives {channels} channels (1 to {MAX_CHANNELS} are accepted); the file is corrupt"
        )));
    }
    Ok(())
}

fn sym_error(e: SymError) -> crate::Error {
    match e {
        SymError::Unsupported(what) => audio_error(format!(
            "unsupported format or codec ({what}): WAV (PCM or float), MP3, FLAC and Ogg Vorbis are supported"
        )),
        SymError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            audio_error("the file ends before its header does: it is empty, truncated or not audio")
        }
        other => audio_error(format!("cannot decode the file: {other}")),
    }
}

impl Source {
    /// Opens a stream. `hint` is a file extension ("flac", "mp3") that helps
    /// symphonia guess the container; the bytes decide in the end.
    pub(crate) fn open(mut bytes: Box<dyn ByteSource>, byte_len: Option<u64>, hint: Option<&str>) -> Result<Self> {
        let mut magic = [0u8; 12];
        let mut got = 0;
        while got < magic.len() {
            match bytes.read(&mut magic[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(audio_error(format!("cannot read the audio: {e}"))),
            }
        }
        if got == 0 {
            return Err(audio_error("the file is empty"));
        }
        bytes.seek(SeekFrom::Start(0)).map_err(|e| audio_error(format!("cannot read the audio: {e}")))?;
        if got == 12 && &magic[..4] == b"RIFF" && &magic[8..12] == b"WAVE" {
            return Self::open_wav(bytes);
        }
        if &magic[..4] == b"fLaC" || &magic[..4] == b"OggS" {
            // The headers symphonia trusts too much (see metadata_check).
            let mut head = Vec::new();
            (&mut bytes)
                .take(HEAD_CHECK_BYTES)
                .read_to_end(&mut head)
                .map_err(|e| audio_error(format!("cannot read the audio: {e}")))?;
            bytes.seek(SeekFrom::Start(0)).map_err(|e| audio_error(format!("cannot read the audio: {e}")))?;
            if &magic[..4] == b"fLaC" {
                metadata_check::check_flac(&head)?;
            } else {
                metadata_check::check_ogg(&head)?;
            }
        }
        Self::open_symphonia(bytes, byte_len, hint)
    }

    fn open_wav(bytes: Box<dyn ByteSource>) -> Result<Self> {
        let reader = hound::WavReader::new(bytes).map_err(|e| match e {
            hound::Error::Unsupported => {
                audio_error("unsupported WAV encoding: only PCM (8/16/24/32-bit) and 32-bit float WAV are supported")
            }
            other => audio_error(format!("not a valid WAV file: {other}")),
        })?;
        let spec = reader.spec();
        check_format(spec.sample_rate, usize::from(spec.channels))?;
        let float = spec.sample_format == hound::SampleFormat::Float;
        let scale = match (float, spec.bits_per_sample) {
            (true, 32) => 1.0,
            (false, b @ 1..=32) => 1.0 / (1u64 << (b - 1)) as f32,
            (f, b) => {
                return Err(audio_error(format!(
                    "unsupported WAV sample format: {} with {b} bits",
                    if f { "float" } else { "integer" }
                )))
            }
        };
        // hound's len() is the data chunk size from the header, in samples.
        let frames = u64::from(reader.len()) / u64::from(spec.channels);
        Ok(Self {
            inner: Inner::Wav { reader, scale, float, left: frames },
            rate: spec.sample_rate,
            channels: spec.channels,
            declared_frames: Some(frames),
            frames: 0,
        })
    }

    fn open_symphonia(bytes: Box<dyn ByteSource>, byte_len: Option<u64>, hint: Option<&str>) -> Result<Self> {
        let mss = MediaSourceStream::new(Box::new(ReadSeekSource(bytes, byte_len)), Default::default());
        let mut h = Hint::new();
        if let Some(ext) = hint {
            h.with_extension(ext.trim_start_matches('.'));
        }
        let probed = symphonia::default::get_probe()
            .format(&h, mss, &FormatOptions { enable_gapless: true, ..Default::default() }, &MetadataOptions::default())
            .map_err(sym_error)?;
        let format = probed.format;
        let track = format
            .tracks()
            .iter()
            .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
            .ok_or_else(|| audio_error("the file holds no audio track"))?;
        let params = &track.codec_params;
        let rate = params.sample_rate.ok_or_else(|| audio_error("the stream does not give its sample rate"))?;
        let channels = params
            .channels
            .map(|c| c.count())
            .ok_or_else(|| audio_error("the stream does not give its channel count"))?;
        check_format(rate, channels)?;
        let declared_frames = params.n_frames;
        let decoder = symphonia::default::get_codecs().make(params, &DecoderOptions::default()).map_err(sym_error)?;
        let track = track.id;
        Ok(Self {
            inner: Inner::Symphonia { format, decoder, track, buf: None },
            rate,
            channels: channels as u16,
            declared_frames,
            frames: 0,
        })
    }

    /// The next block of mono samples (the mean of the channels), or `None`
    /// at the end of the stream. A WAV whose data ends before its header says
    /// is an error; a compressed packet that fails to decode is skipped, as
    /// ffmpeg does, but a stream where nothing decodes is an error.
    pub(crate) fn next_block(&mut self) -> Result<Option<Vec<f32>>> {
        let channels = usize::from(self.channels);
        let block = match &mut self.inner {
            Inner::Wav { reader, scale, float, left } => {
                if *left == 0 {
                    return Ok(None);
                }
                let n = (*left).min(WAV_BLOCK as u64) as usize;
                let mut mono = vec![0f32; n];
                let truncated = |e: hound::Error| {
                    audio_error(format!(
                        "the WAV data ends early or is unreadable ({e}): the file is truncated or corrupt"
                    ))
                };
                if *float {
                    let mut it = reader.samples::<f32>();
                    for m in mono.iter_mut() {
                        for _ in 0..channels {
                            let s = it.next().ok_or_else(|| truncated(hound::Error::TooWide))?.map_err(truncated)?;
                            *m += s;
                        }
                    }
                } else {
                    let mut it = reader.samples::<i32>();
                    for m in mono.iter_mut() {
                        for _ in 0..channels {
                            let s = it.next().ok_or_else(|| truncated(hound::Error::TooWide))?.map_err(truncated)?;
                            *m += s as f32 * *scale;
                        }
                    }
                }
                *left -= n as u64;
                let inv = 1.0 / channels as f32;
                mono.iter_mut().for_each(|m| *m *= inv);
                mono
            }
            Inner::Symphonia { format, decoder, track, buf } => {
                let mut failures = 0usize;
                loop {
                    let packet = match format.next_packet() {
                        Ok(p) => p,
                        Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                        Err(SymError::ResetRequired) => return Ok(None),
                        Err(e) => return Err(sym_error(e)),
                    };
                    if packet.track_id() != *track {
                        continue;
                    }
                    let decoded = match decoder.decode(&packet) {
                        Ok(d) => d,
                        Err(SymError::DecodeError(_)) | Err(SymError::IoError(_)) => {
                            failures += 1;
                            // A damaged frame or two is skipped; a stream of
                            // them means the file is not what it claims to be.
                            if failures > 1000 {
                                return Err(audio_error("too many packets fail to decode: the file is corrupt"));
                            }
                            continue;
                        }
                        Err(e) => return Err(sym_error(e)),
                    };
                    let spec = *decoded.spec();
                    let ch = spec.channels.count();
                    if ch == 0 || ch > MAX_CHANNELS || spec.rate != self.rate {
                        return Err(audio_error(
                            "the stream changes its channel count or rate midway; the file is corrupt or unsupported",
                        ));
                    }
                    let frames = decoded.frames();
                    if frames == 0 {
                        continue;
                    }
                    let b = match buf {
                        Some(b) if b.capacity() >= frames * ch => b,
                        _ => buf.insert(SampleBuffer::<f32>::new(decoded.capacity() as u64, spec)),
                    };
                    b.copy_interleaved_ref(decoded);
                    let inv = 1.0 / ch as f32;
                    break b.samples().chunks_exact(ch).map(|f| f.iter().sum::<f32>() * inv).collect::<Vec<f32>>();
                }
            }
        };
        self.frames += block.len() as u64;
        Ok(Some(block))
    }

    /// Errors when a stream with a declared length ended well before it: a
    /// truncated download must not pass for a shorter clip.
    pub(crate) fn check_complete(&self) -> Result<()> {
        if let Some(declared) = self.declared_frames {
            // Compressed headers can be approximate by a frame or so.
            let slack = (declared / 100).max(8192);
            if self.frames + slack < declared {
                return Err(audio_error(format!(
                    "the stream ends after {} of the {declared} frames its header announces: the file is truncated",
                    self.frames
                )));
            }
        }
        Ok(())
    }
}
