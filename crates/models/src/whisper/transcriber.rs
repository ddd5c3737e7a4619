//! Speech to text with a Whisper model: load a Hugging Face directory, decode
//! greedily window by window, and return the text with its segments.
//!
//! Clips up to 30 s are one window whose features are padded to 30 s; longer
//! clips are transcribed as transformers does it (long-form): features of
//! the whole clip, windows of 30 s starting where the previous window's last
//! complete segment ended, timestamps always on.

use super::config::WhisperConfig;
use super::encoder::WhisperEncoder;
use super::model::{WhisperModel, WindowState};
use super::rules::{argmax, LogitRules};
use super::segments::{split_window, TokenSegment, SECONDS_PER_FRAME};
use crate::audio::{load_audio, LogMelSpectrogram, SAMPLE_RATE, WINDOW_SAMPLES};
use crate::backend::{BackendChoice, BackendKind, Precision};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::llm::cpu_ops::CpuOps;
use crate::llm::gpu_ops::GpuDecoderOps;
use crate::llm::ops::DecoderOps;
use crate::llm::weights::{WeightBits, WeightFile};
use crate::safetensors_file::SafetensorsFile;
use ipfs_accelerate_gpu::GpuContext;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokenizers::Tokenizer;

/// Translate into English, or transcribe in the spoken language.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Task {
    /// Text in the spoken language.
    #[default]
    Transcribe,
    /// English text (multilingual models only).
    Translate,
}

/// How to transcribe.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TranscribeOptions {
    /// Segment start and end times (clips over 30 s always decode with them).
    pub timestamps: bool,
    /// The spoken language as a code (`en`, `fr`, …) for multilingual
    /// models; detected from the first window when `None`.
    pub language: Option<String>,
    /// Transcribe or translate.
    pub task: Task,
}

/// A stretch of the transcript.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// Start, seconds from the clip's start.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
    /// The text (with its leading space, as Whisper writes it).
    pub text: String,
    /// Its tokens, timestamps included.
    pub tokens: Vec<u32>,
}

/// What [`Transcriber::transcribe`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Transcript {
    /// The whole text.
    pub text: String,
    /// Segments with times (one segment for a clip decoded without
    /// timestamps).
    pub segments: Vec<Segment>,
    /// The language code used (`en` for English-only models).
    pub language: String,
    /// The clip's length, seconds.
    pub duration: f64,
    /// Every window's tokens: its prompt, then what was generated (with the
    /// end-of-text token when the model produced it).
    pub windows: Vec<Vec<u32>>,
}

/// Runs the decoder of windows on one backend; the weights and the backend
/// behind one lock (a window decodes on one backend at a time).
trait WindowRunner: Send + Sync {
    fn name(&self) -> String;
    /// Takes the window's encoder output (`[positions, d_model]`, row-major)
    /// and hands `decode` a stepper over the window.
    fn window(&self, encoded: &[f32], decode: &mut dyn FnMut(&mut dyn Stepper) -> Result<()>) -> Result<()>;
}

/// Feeds tokens to the decoder of one window.
trait Stepper {
    /// Logits after the last of `tokens`.
    fn feed(&mut self, tokens: &[u32]) -> Result<Vec<f32>>;
}

struct Backend<O: DecoderOps> {
    ops: Mutex<O>,
    model: WhisperModel<O>,
}

struct BackendStepper<'a, O: DecoderOps> {
    ops: &'a mut O,
    model: &'a WhisperModel<O>,
    state: WindowState<O>,
}

impl<O: DecoderOps> Stepper for BackendStepper<'_, O> {
    fn feed(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.model.decode(self.ops, &mut self.state, tokens)
    }
}

impl<O> WindowRunner for Backend<O>
where
    O: DecoderOps + Send,
    WhisperModel<O>: Send + Sync,
{
    fn name(&self) -> String {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).name()
    }

    fn window(&self, encoded: &[f32], decode: &mut dyn FnMut(&mut dyn Stepper) -> Result<()>) -> Result<()> {
        let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        let d = self.model.config().d_model;
        let encoded = ops.upload(encoded, encoded.len() / d, d)?;
        let state = self.model.start_window(&mut ops, &encoded)?;
        let mut stepper = BackendStepper { ops: &mut *ops, model: &self.model, state };
        decode(&mut stepper)
    }
}

/// A loaded Whisper model.
pub struct Transcriber {
    dir: PathBuf,
    config: WhisperConfig,
    tokenizer: Tokenizer,
    features: LogMelSpectrogram,
    encoder: WhisperEncoder,
    engine: Engine,
    runner: Box<dyn WindowRunner>,
}

impl Transcriber {
    /// Loads a Hugging Face Whisper directory (`config.json`,
    /// `generation_config.json`, `tokenizer.json`, `model.safetensors`) onto
    /// the backend `choice` names, with a one-line notice when `auto` wanted a
    /// GPU and fell back to the CPU. `bits` quantizes the decoder's float
    /// weights at load (`AsStored` keeps float32).
    pub fn load(dir: &Path, choice: BackendChoice, bits: WeightBits) -> Result<(Self, Option<String>)> {
        let (engine, notice) = choice.open(Precision::F32)?;
        Ok((Transcriber::load_on(dir, engine, bits)?, notice))
    }

    /// Loads onto `engine`: the encoder runs there (any graph backend: the
    /// CPU, native WebGPU, a browser worker); the decoder runs on native
    /// WebGPU when the engine is, else on the CPU.
    pub fn load_on(dir: &Path, engine: Engine, bits: WeightBits) -> Result<Self> {
        let config = WhisperConfig::load(dir)?;
        let tokenizer_path = dir.join("tokenizer.json");
        if !tokenizer_path.is_file() {
            return Err(Error::MissingFile {
                path: tokenizer_path,
                hint: "a Whisper directory needs its tokenizer.json",
            });
        }
        let tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| {
            Error::Tokenizer(format!("{} is not a valid tokenizer.json: {e}", tokenizer_path.display()))
        })?;
        let weights_path = dir.join("model.safetensors");
        if !weights_path.is_file() {
            return Err(Error::MissingFile { path: weights_path, hint: "a Whisper directory needs model.safetensors" });
        }
        let safetensors = SafetensorsFile::open(&weights_path)?;
        let encoder = WhisperEncoder::load(&safetensors, &config)?;
        let file = WeightFile::Safetensors { file: safetensors, bits };
        let runner = match engine.kind() {
            BackendKind::WebGpu => {
                let ctx = GpuContext::new().map_err(|e| Error::Backend(e.to_string()))?;
                backend(GpuDecoderOps::new(&ctx)?, &file, &config)?
            }
            _ => backend(CpuOps, &file, &config)?,
        };
        let features = LogMelSpectrogram::new(config.num_mel_bins)?;
        Ok(Transcriber { dir: dir.to_path_buf(), config, tokenizer, features, encoder, engine, runner })
    }

    /// The model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The hyperparameters.
    pub fn config(&self) -> &WhisperConfig {
        &self.config
    }

    /// The backends, in words: the encoder's, then the decoder's.
    pub fn backend_name(&self) -> String {
        format!("encoder {}, decoder {}", self.engine.describe(), self.runner.name())
    }

    /// Transcribes an audio file (WAV, MP3, FLAC, Ogg Vorbis; any rate and
    /// channel count).
    pub fn transcribe_file(&self, path: &Path, options: &TranscribeOptions) -> Result<Transcript> {
        let audio = load_audio(path)?;
        self.transcribe(&audio.samples_16k, options)
    }

    /// Transcribes 16 kHz mono samples.
    pub fn transcribe(&self, samples: &[f32], options: &TranscribeOptions) -> Result<Transcript> {
        if samples.is_empty() {
            return Err(Error::Audio("the clip is empty: there is nothing to transcribe".into()));
        }
        let prompt = self.prompt_parts(options)?;
        let duration = samples.len() as f64 / f64::from(SAMPLE_RATE);
        let mut language = prompt.language;
        let mut windows = Vec::new();
        let mut token_segments: Vec<TokenSegment> = Vec::new();
        let timestamp_begin = self.config.timestamp_begin();
        let window_frames = 2 * self.config.max_source_positions;
        if samples.len() <= WINDOW_SAMPLES {
            let mel = self.features.compute(samples)?;
            let window = self.decode_window(&mel, &prompt.task_tokens, options.timestamps, &mut language)?;
            let generated = strip_eos(&window.tokens[window.prompt_len..], self.config.eos_token_id);
            if options.timestamps {
                let audio_frames = samples.len().div_ceil(crate::audio::HOP_LENGTH).min(window_frames);
                token_segments.extend(split_window(generated, timestamp_begin, 0, audio_frames).0);
            } else if !generated.is_empty() {
                token_segments.push(TokenSegment { start: 0.0, end: duration, tokens: generated.to_vec() });
            }
            windows.push(window.tokens);
        } else {
            let (mel, frames) = self.features.compute_full(samples)?;
            let bins = self.config.num_mel_bins;
            let mut seek = 0;
            while seek < frames {
                let take = window_frames.min(frames - seek);
                // The window's frames, zero-padded (in feature space, as
                // transformers pads) to a full window.
                let mut window_mel = vec![0.0f32; bins * window_frames];
                for bin in 0..bins {
                    let src = &mel[bin * frames + seek..bin * frames + seek + take];
                    window_mel[bin * window_frames..bin * window_frames + take].copy_from_slice(src);
                }
                let window = self.decode_window(&window_mel, &prompt.task_tokens, true, &mut language)?;
                let generated = strip_eos(&window.tokens[window.prompt_len..], self.config.eos_token_id);
                let (segments, consumed) = split_window(generated, timestamp_begin, seek, take);
                token_segments.extend(segments);
                windows.push(window.tokens);
                seek += consumed;
            }
        }
        let all_tokens: Vec<u32> = token_segments.iter().flat_map(|s| s.tokens.iter().copied()).collect();
        let text = self.decode_text(&all_tokens)?;
        let segments = token_segments
            .into_iter()
            .map(|s| {
                Ok(Segment {
                    start: round_time(s.start),
                    end: round_time(s.end),
                    text: self.decode_text(&s.tokens)?,
                    tokens: s.tokens,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let language = match language {
            Some(id) => self.language_code(id),
            None => "en".to_string(),
        };
        Ok(Transcript { text, segments, language, duration, windows })
    }

    /// Text of `tokens` without special or timestamp tokens.
    pub fn decode_text(&self, tokens: &[u32]) -> Result<String> {
        let text: Vec<u32> = tokens.iter().copied().filter(|&t| t < self.config.eos_token_id).collect();
        self.tokenizer.decode(&text, true).map_err(|e| Error::Tokenizer(format!("decoding the transcript failed: {e}")))
    }

    /// Decodes one window greedily; `language` is detected (and kept for the
    /// next windows) when a multilingual model has none yet.
    fn decode_window(
        &self,
        mel: &[f32],
        task_tokens: &[u32],
        timestamps: bool,
        language: &mut Option<u32>,
    ) -> Result<DecodedWindow> {
        let c = &self.config;
        let rules = LogitRules::new(c, timestamps);
        let mut tokens = vec![c.decoder_start_token_id];
        let mut prompt_len = 0;
        let encoded = self.encoder.encode(&self.engine, mel)?;
        self.runner.window(&encoded, &mut |step| {
            let mut fed = 0;
            if self.config.is_multilingual {
                let lang = match *language {
                    Some(id) => id,
                    None => {
                        let logits = step.feed(&tokens)?;
                        fed = tokens.len();
                        let id = self.detect_language(&logits)?;
                        *language = Some(id);
                        id
                    }
                };
                tokens.push(lang);
                tokens.extend_from_slice(task_tokens);
            }
            if !timestamps {
                tokens.push(c.no_timestamps_token_id);
            }
            prompt_len = tokens.len();
            let mut logits = step.feed(&tokens[fed..])?;
            loop {
                rules.apply(&tokens[prompt_len..], &mut logits);
                let next = argmax(&logits).ok_or_else(|| Error::Backend("every token was ruled out".into()))?;
                tokens.push(next);
                if next == c.eos_token_id || tokens.len() >= c.max_target_positions {
                    return Ok(());
                }
                logits = step.feed(&[next])?;
            }
        })?;
        Ok(DecodedWindow { tokens, prompt_len })
    }

    /// The likeliest language token after `<|startoftranscript|>`.
    fn detect_language(&self, logits: &[f32]) -> Result<u32> {
        let languages = self.language_tokens();
        languages
            .iter()
            .copied()
            .filter(|&id| (id as usize) < logits.len())
            .max_by(|&a, &b| logits[a as usize].total_cmp(&logits[b as usize]))
            .ok_or_else(|| Error::Tokenizer("the tokenizer has no language tokens (<|en|>, …)".into()))
    }

    /// Ids of the language tokens (`<|en|>`, `<|haw|>`, …): special tokens of
    /// two or three lowercase letters (`<|yue|>` too), by vocabulary.
    fn language_tokens(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .tokenizer
            .get_added_vocabulary()
            .get_vocab()
            .iter()
            .filter(|(token, _)| language_of(token).is_some())
            .map(|(_, &id)| id)
            .collect();
        ids.sort_unstable();
        ids
    }

    fn language_code(&self, id: u32) -> String {
        self.tokenizer.id_to_token(id).and_then(|t| language_of(&t).map(str::to_string)).unwrap_or_default()
    }

    /// The language (given or to detect) and task tokens of the prompt.
    fn prompt_parts(&self, options: &TranscribeOptions) -> Result<PromptParts> {
        if !self.config.is_multilingual {
            if let Some(lang) = options.language.as_deref() {
                if !lang.eq_ignore_ascii_case("en") && !lang.eq_ignore_ascii_case("english") {
                    return Err(Error::InvalidOption(format!(
                        "this model is English-only; --language {lang} needs a multilingual Whisper model"
                    )));
                }
            }
            if options.task == Task::Translate {
                return Err(Error::InvalidOption(
                    "this model is English-only; translation needs a multilingual Whisper model".into(),
                ));
            }
            return Ok(PromptParts { language: None, task_tokens: Vec::new() });
        }
        let token = |name: &str| {
            self.tokenizer
                .token_to_id(name)
                .ok_or_else(|| Error::Tokenizer(format!("the tokenizer has no {name} token")))
        };
        let language = match options.language.as_deref() {
            Some(code) => Some(token(&format!("<|{}|>", code.to_ascii_lowercase())).map_err(|_| {
                Error::InvalidOption(format!("unknown language code {code:?}: use a code such as en, fr, de, ja"))
            })?),
            None => None,
        };
        let task = match options.task {
            Task::Transcribe => token("<|transcribe|>")?,
            Task::Translate => token("<|translate|>")?,
        };
        Ok(PromptParts { language, task_tokens: vec![task] })
    }
}

struct PromptParts {
    language: Option<u32>,
    task_tokens: Vec<u32>,
}

struct DecodedWindow {
    /// Prompt then generated tokens.
    tokens: Vec<u32>,
    prompt_len: usize,
}

fn backend<O>(mut ops: O, file: &WeightFile, config: &WhisperConfig) -> Result<Box<dyn WindowRunner>>
where
    O: DecoderOps + Send + 'static,
    WhisperModel<O>: Send + Sync,
{
    let model = WhisperModel::load(&mut ops, file, config)?;
    Ok(Box::new(Backend { ops: Mutex::new(ops), model }))
}

fn strip_eos(tokens: &[u32], eos: u32) -> &[u32] {
    tokens.strip_suffix(&[eos]).unwrap_or(tokens)
}

/// The code inside a language token, `<|fr|>` → `fr`.
fn language_of(token: &str) -> Option<&str> {
    let code = token.strip_prefix("<|")?.strip_suffix("|>")?;
    ((2..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_lowercase())).then_some(code)
}

/// Times to the 0.01 s the features resolve, without float noise.
fn round_time(seconds: f64) -> f64 {
    // Divide (not multiply by 0.01) so the result is the double nearest
    // the decimal: 2440 / 100 prints as 24.4, 2440 × 0.01 does not.
    (seconds / SECONDS_PER_FRAME).round() / (1.0 / SECONDS_PER_FRAME).round()
}

#[cfg(test)]
mod tests {
    use super::{language_of, round_time};

    #[test]
    fn times_round_to_the_nearest_hundredth() {
        assert_eq!(round_time(24.400000000000002), 24.4);
        assert_eq!(round_time(41.300000000000004), 41.3);
        assert_eq!(round_time(3.8000000000000003), 3.8);
    }

    #[test]
    fn language_tokens_are_two_or_three_lowercase_letters() {
        assert_eq!(language_of("<|fr|>"), Some("fr"));
        assert_eq!(language_of("<|haw|>"), Some("haw"));
        assert_eq!(language_of("<|transcribe|>"), None);
        assert_eq!(language_of("<|0.00|>"), None);
        assert_eq!(language_of("<|EN|>"), None);
    }
}
