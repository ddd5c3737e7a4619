//! OpenAI's speech routes, `POST /v1/audio/transcriptions` and
//! `POST /v1/audio/translations`, on the served Whisper models.
//!
//! The request is a multipart form: `file` (WAV, MP3, FLAC or Ogg Vorbis),
//! `model`, and optionally `language`, `response_format` (`json`, `text`,
//! `verbose_json`, `srt`, `vtt`), `timestamp_granularities[]` (`segment`)
//! and `temperature` (0: decoding is greedy). Fields this server cannot
//! honour (`prompt`, `stream`, word timestamps, a non-zero temperature) are
//! refused with 400 `unsupported_parameter` rather than ignored.
//!
//! Decoding and transcription run on a blocking thread, behind the same
//! concurrency limit as every inference route.

use crate::errors::{json_response, ApiError, Flavor};
use crate::generation::unix_now;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ipfs_accelerate_models::audio::decode_bytes;
use ipfs_accelerate_models::llm::weights::WeightBits;
use ipfs_accelerate_models::whisper::{Task, TranscribeOptions, Transcriber, Transcript};
use ipfs_accelerate_models::BackendChoice;
use serde_json::{json, Value};
use std::fmt::Write;
use std::sync::Arc;

const FLAVOR: Flavor = Flavor::OpenAi;

/// A speech-recognition model to serve: the name clients use and the
/// loaded model.
#[derive(Clone)]
pub struct SpeechSpec {
    /// The name in `model` fields and `/v1/models`.
    pub name: String,
    /// The model.
    pub transcriber: Arc<Transcriber>,
}

impl SpeechSpec {
    /// Loads the Whisper directory `dir` on the CPU with its weights at `bits`.
    pub fn load(name: impl Into<String>, dir: &std::path::Path, bits: WeightBits) -> Result<Self, crate::Error> {
        Ok(Self::load_on(name, dir, bits, BackendChoice::Cpu)?.0)
    }

    /// Loads the Whisper directory `dir` on the backend `choice` names (see
    /// [`Transcriber::load`]), with its notice when `auto` fell back to the CPU.
    pub fn load_on(
        name: impl Into<String>,
        dir: &std::path::Path,
        bits: WeightBits,
        choice: BackendChoice,
    ) -> Result<(Self, Option<String>), crate::Error> {
        let name = name.into();
        let (transcriber, notice) = Transcriber::load(dir, choice, bits).map_err(|e| crate::Error::Model {
            name: name.clone(),
            message: format!("cannot load the speech model {}: {e}", dir.display()),
        })?;
        Ok((SpeechSpec { name, transcriber: Arc::new(transcriber) }, notice))
    }
}

impl std::fmt::Debug for SpeechSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpeechSpec").field("name", &self.name).finish_non_exhaustive()
    }
}

/// A speech model the server serves.
pub struct ServedSpeech {
    /// The name clients use.
    pub name: String,
    /// The model.
    pub transcriber: Arc<Transcriber>,
    /// When the server started serving it (Unix seconds).
    pub created: u64,
}

impl ServedSpeech {
    /// Describes a loaded model.
    pub fn new(spec: &SpeechSpec) -> Self {
        ServedSpeech { name: spec.name.clone(), transcriber: spec.transcriber.clone(), created: unix_now() }
    }
}

/// `POST /v1/audio/transcriptions`.
pub async fn transcriptions(State(state): State<Arc<AppState>>, request: Request) -> Result<Response, ApiError> {
    speech(state, request, Task::Transcribe).await
}

/// `POST /v1/audio/translations`: English text from speech in any language
/// the (multilingual) model knows.
pub async fn translations(State(state): State<Arc<AppState>>, request: Request) -> Result<Response, ApiError> {
    speech(state, request, Task::Translate).await
}

/// How the answer is written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Text,
    VerboseJson,
    Srt,
    Vtt,
}

/// The fields of one request.
struct Form {
    audio: Vec<u8>,
    file_name: Option<String>,
    model: String,
    language: Option<String>,
    format: Format,
    segment_times: bool,
}

async fn speech(state: Arc<AppState>, request: Request, task: Task) -> Result<Response, ApiError> {
    if state.speech.is_empty() {
        return Err(ApiError::new(
            FLAVOR,
            StatusCode::NOT_FOUND,
            "no speech-recognition model is loaded on this server (serve one with --model NAME=DIR of a Whisper model; see GET /v1/models)",
        )
        .param("model")
        .code("model_not_found"));
    }
    let multipart = Multipart::from_request(request, &state).await.map_err(|e| {
        ApiError::bad_request(
            FLAVOR,
            format!("the body must be a multipart/form-data form with `file` and `model` fields: {e}"),
        )
    })?;
    let form = read_form(multipart).await?;
    let served = state.speech.iter().find(|s| s.name == form.model).ok_or_else(|| {
        let names: Vec<&str> = state.speech.iter().map(|s| s.name.as_str()).collect();
        ApiError::new(
            FLAVOR,
            StatusCode::NOT_FOUND,
            format!(
                "the model `{}` is not a speech model on this server; the speech models here are: {}",
                form.model,
                names.join(", ")
            ),
        )
        .param("model")
        .code("model_not_found")
    })?;
    let transcriber = served.transcriber.clone();
    let options = TranscribeOptions { timestamps: form.segment_times, language: form.language.clone(), task };
    let (audio, hint) = (form.audio, form.file_name.as_deref().and_then(extension).map(|e| e.to_ascii_lowercase()));
    let transcript = tokio::task::spawn_blocking(move || -> Result<Transcript, ipfs_accelerate_models::Error> {
        let decoded = decode_bytes(&audio, hint.as_deref())?;
        transcriber.transcribe(&decoded.samples_16k, &options)
    })
    .await
    .map_err(|e| ApiError::new(FLAVOR, StatusCode::INTERNAL_SERVER_ERROR, format!("the transcription failed: {e}")))?
    .map_err(|e| match e {
        ipfs_accelerate_models::Error::Audio(message) => {
            ApiError::bad_request(FLAVOR, format!("`file` cannot be transcribed: {message}")).param("file")
        }
        ipfs_accelerate_models::Error::InvalidOption(message) => {
            ApiError::bad_request(FLAVOR, message).code("unsupported_parameter")
        }
        other => ApiError::new(FLAVOR, StatusCode::INTERNAL_SERVER_ERROR, format!("the transcription failed: {other}")),
    })?;
    Ok(render(&transcript, form.format, task))
}

/// Reads the form; when a field is refused, the rest of the upload is still
/// read (it is bounded by the body limit) so the client, which is still
/// sending the file, gets the error instead of a connection closed under it.
async fn read_form(mut multipart: Multipart) -> Result<Form, ApiError> {
    let form = parse_form(&mut multipart).await;
    if form.is_err() {
        while let Ok(Some(field)) = multipart.next_field().await {
            if field.bytes().await.is_err() {
                break;
            }
        }
    }
    form
}

async fn parse_form(multipart: &mut Multipart) -> Result<Form, ApiError> {
    let malformed = |e: axum::extract::multipart::MultipartError| {
        ApiError::new(FLAVOR, e.status(), format!("the multipart form cannot be read: {}", e.body_text()))
    };
    let (mut audio, mut file_name, mut model, mut language) = (None, None, None, None);
    let (mut format, mut segment_times) = (Format::Json, false);
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            file_name = field.file_name().map(str::to_string);
            audio = Some(field.bytes().await.map_err(malformed)?.to_vec());
            continue;
        }
        let value = field.text().await.map_err(malformed)?;
        match name.as_str() {
            "model" => model = Some(value),
            "language" if !value.is_empty() => language = Some(value),
            "language" => {}
            "response_format" => {
                format = match value.as_str() {
                    "json" => Format::Json,
                    "text" => Format::Text,
                    "verbose_json" => Format::VerboseJson,
                    "srt" => Format::Srt,
                    "vtt" => Format::Vtt,
                    other => {
                        return Err(ApiError::bad_request(
                            FLAVOR,
                            format!(
                            "`response_format` {other:?} is not supported: use json, text, verbose_json, srt or vtt"
                        ),
                        )
                        .param("response_format"))
                    }
                }
            }
            "timestamp_granularities[]" | "timestamp_granularities" => match value.as_str() {
                "segment" => segment_times = true,
                other => {
                    return Err(unsupported(
                        "timestamp_granularities[]",
                        format!("{other:?} timestamps are not supported: use \"segment\""),
                    ))
                }
            },
            "temperature" => match value.trim().parse::<f64>() {
                Ok(0.0) => {}
                _ => {
                    return Err(unsupported(
                        "temperature",
                        format!("`temperature` {value:?} is not supported: decoding is greedy (0)"),
                    ))
                }
            },
            "stream" if value == "false" => {}
            "prompt" | "stream" | "include[]" | "chunking_strategy" => {
                return Err(unsupported("field", format!("`{name}` is not supported by this server")))
            }
            other => return Err(unsupported("field", format!("unknown form field `{other}`"))),
        }
    }
    let audio = audio.ok_or_else(|| {
        ApiError::bad_request(FLAVOR, "`file` is required: the audio to transcribe (WAV, MP3, FLAC or Ogg Vorbis)")
            .param("file")
    })?;
    let model = model
        .ok_or_else(|| ApiError::bad_request(FLAVOR, "`model` is required: one of GET /v1/models").param("model"))?;
    // Segments need times: verbose_json, srt and vtt always carry them.
    let segment_times = segment_times || matches!(format, Format::VerboseJson | Format::Srt | Format::Vtt);
    Ok(Form { audio, file_name, model, language, format, segment_times })
}

fn unsupported(param: &'static str, message: String) -> ApiError {
    ApiError::bad_request(FLAVOR, message).param(param).code("unsupported_parameter")
}

/// The lower-case extension of an uploaded file's name, as a format hint.
fn extension(name: &str) -> Option<&str> {
    let (_, ext) = name.rsplit_once('.')?;
    (!ext.is_empty() && ext.len() <= 5 && ext.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(ext)
}

fn render(transcript: &Transcript, format: Format, task: Task) -> Response {
    let text = transcript.text.trim();
    match format {
        Format::Json => json_response(
            StatusCode::OK,
            &json!({ "text": text, "usage": { "type": "duration", "seconds": transcript.duration.ceil() as u64 } }),
        ),
        Format::VerboseJson => {
            let segments: Vec<Value> = transcript
                .segments
                .iter()
                .enumerate()
                .map(|(id, s)| {
                    json!({ "id": id, "start": s.start, "end": s.end, "text": s.text, "tokens": s.tokens, "temperature": 0.0 })
                })
                .collect();
            json_response(
                StatusCode::OK,
                &json!({
                    "task": if task == Task::Translate { "translate" } else { "transcribe" },
                    "language": transcript.language,
                    "duration": transcript.duration,
                    "text": text,
                    "segments": segments,
                }),
            )
        }
        Format::Text => plain(format!("{text}\n"), "text/plain; charset=utf-8"),
        Format::Srt => plain(subtitles(transcript, ','), "application/x-subrip; charset=utf-8"),
        Format::Vtt => plain(format!("WEBVTT\n\n{}", subtitles(transcript, '.')), "text/vtt; charset=utf-8"),
    }
}

fn plain(body: String, content_type: &'static str) -> Response {
    let mut response = (StatusCode::OK, Body::from(body)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// SRT cues (numbered, `HH:MM:SS,mmm`) or, with `.`, WebVTT's.
fn subtitles(transcript: &Transcript, separator: char) -> String {
    let mut out = String::new();
    for (i, s) in transcript.segments.iter().enumerate() {
        if separator == ',' {
            let _ = writeln!(out, "{}", i + 1);
        }
        let _ = writeln!(out, "{} --> {}", stamp(s.start, separator), stamp(s.end, separator));
        let _ = writeln!(out, "{}\n", s.text.trim());
    }
    out
}

/// `HH:MM:SS<sep>mmm`.
fn stamp(seconds: f64, separator: char) -> String {
    let millis = (seconds.max(0.0) * 1000.0).round() as u64;
    let (h, m, s, ms) = (millis / 3_600_000, millis / 60_000 % 60, millis / 1000 % 60, millis % 1000);
    format!("{h:02}:{m:02}:{s:02}{separator}{ms:03}")
}

#[cfg(test)]
mod tests {
    use super::{extension, stamp};

    #[test]
    fn stamps_and_extensions() {
        assert_eq!(stamp(3.8, ','), "00:00:03,800");
        assert_eq!(stamp(3725.25, '.'), "01:02:05.250");
        assert_eq!(extension("talk.MP3"), Some("MP3"));
        assert_eq!(extension("no_extension"), None);
        assert_eq!(extension("../../etc/passwd.wav"), Some("wav"));
        assert_eq!(extension("x.a/b"), None);
    }
}
