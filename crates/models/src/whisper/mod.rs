//! Whisper speech recognition: the encoder-decoder of transformers'
//! `WhisperForConditionalGeneration` — the encoder a graph of WebNN ops (CPU,
//! WebGPU, browser workers), the decoder on the CPU and WebGPU decoder
//! backends (`llm::ops::DecoderOps`) — with greedy decoding, timestamps and
//! long-form transcription in 30 s windows.
//!
//! Reading order: [`config`], [`encoder`] and [`model`] (the decoder), [`rules`] (what
//! greedy decoding may pick), [`segments`] (timestamps to segments and the
//! next window's start), [`transcriber`] (the whole job). The features come
//! from [`crate::audio`].
//!
//! ```no_run
//! use ipfs_accelerate_models::whisper::{Transcriber, TranscribeOptions};
//! use ipfs_accelerate_models::{llm::weights::WeightBits, BackendChoice};
//! let (model, _notice) = Transcriber::load("whisper-tiny.en".as_ref(), BackendChoice::Cpu, WeightBits::AsStored)?;
//! let transcript = model.transcribe_file("speech.wav".as_ref(), &TranscribeOptions::default())?;
//! println!("{}", transcript.text);
//! # Ok::<(), ipfs_accelerate_models::Error>(())
//! ```

pub mod config;
pub mod encoder;
pub mod model;
pub mod rules;
pub mod segments;
pub mod transcriber;

pub use config::WhisperConfig;
pub use transcriber::{Segment, Task, TranscribeOptions, Transcriber, Transcript};
