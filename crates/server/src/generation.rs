//! Text generation behind the HTTP API, shared by OpenAI's completions
//! ([`crate::chat`]) and TGI's `/generate` ([`crate::tgi`]): the served
//! generators, the checks of the request fields both APIs have, running a
//! generation on a blocking thread while its text streams back over a
//! channel, Server-Sent Events, and the generation metrics.
//!
//! Cancellation: the generator calls back with each piece of text; the
//! callback sends it down a bounded channel to the handler (or the response
//! stream). When the client goes away, the receiving end is dropped, the
//! send fails, and the callback answers `Break`, which ends the generation
//! and frees its KV cache at once.

use crate::body::kind;
use crate::errors::{ApiError, Flavor};
use crate::state::AppState;
use crate::GeneratorSpec;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use ipfs_accelerate_models::llm::generate::FinishReason;
use ipfs_accelerate_models::llm::text::{Prompt, TextGeneration, TextGenerator, TextOptions};
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::fmt::Write;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Pieces of text in flight between a generation and its client: enough
/// to ride over a slow reader's hiccups, small enough that a stalled
/// client stalls its own generation rather than buffering without bound.
const CHANNEL_PIECES: usize = 64;

/// A text-generation model the server serves.
pub struct ServedGenerator {
    /// The name clients use.
    pub name: String,
    /// The model.
    pub generator: Arc<TextGenerator>,
    /// The most tokens (prompt and output together) one sequence holds.
    pub context_length: usize,
    /// When the server started serving it (Unix seconds), for `/v1/models`.
    pub created: u64,
}

impl ServedGenerator {
    /// Describes a loaded generator.
    pub fn new(spec: &GeneratorSpec) -> Self {
        ServedGenerator {
            name: spec.name.clone(),
            generator: spec.generator.clone(),
            context_length: spec.generator.decoder().config().context_length,
            created: unix_now(),
        }
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// An id no other response of this process has: `PREFIX-<time><counter>`.
pub fn response_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{prefix}-{nanos:x}{n:04x}")
}

/// Counters of the generations, for `/metrics`.
#[derive(Default)]
pub struct GenerationMetrics {
    running: AtomicI64,
    finished: AtomicU64,
    cancelled: AtomicU64,
    failed: AtomicU64,
    prompt_tokens: AtomicU64,
    generated_tokens: AtomicU64,
}

/// Counts one generation as running until dropped.
struct Running(Arc<GenerationMetrics>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

impl GenerationMetrics {
    /// Generations running now.
    pub fn running(&self) -> i64 {
        self.running.load(Ordering::Relaxed)
    }

    /// Generations ended because their client went away.
    pub fn cancelled(&self) -> u64 {
        self.cancelled.load(Ordering::Relaxed)
    }

    fn begin(self: &Arc<Self>) -> Running {
        self.running.fetch_add(1, Ordering::Relaxed);
        Running(self.clone())
    }

    fn end(&self, result: &Result<TextGeneration, ipfs_accelerate_models::Error>) {
        match result {
            Ok(done) => {
                let counter =
                    if done.tokens.finish_reason == FinishReason::Cancelled { &self.cancelled } else { &self.finished };
                counter.fetch_add(1, Ordering::Relaxed);
                self.prompt_tokens.fetch_add(done.tokens.prompt_tokens as u64, Ordering::Relaxed);
                self.generated_tokens.fetch_add(done.tokens.token_ids.len() as u64, Ordering::Relaxed);
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Appends the Prometheus text of these counters to `out`.
    pub fn render(&self, out: &mut String) {
        let metrics: [(&str, &str, &str, u64); 6] = [
            (
                "ipfs_accelerate_generations_running",
                "gauge",
                "Text generations running now.",
                self.running().max(0) as u64,
            ),
            (
                "ipfs_accelerate_generations_finished_total",
                "counter",
                "Text generations that ran to their end (length, end of sequence or stop sequence).",
                self.finished.load(Ordering::Relaxed),
            ),
            (
                "ipfs_accelerate_generations_cancelled_total",
                "counter",
                "Text generations stopped early because their client went away.",
                self.cancelled(),
            ),
            (
                "ipfs_accelerate_generations_failed_total",
                "counter",
                "Text generations that failed.",
                self.failed.load(Ordering::Relaxed),
            ),
            (
                "ipfs_accelerate_generation_prompt_tokens_total",
                "counter",
                "Prompt tokens of finished and cancelled generations.",
                self.prompt_tokens.load(Ordering::Relaxed),
            ),
            (
                "ipfs_accelerate_generation_generated_tokens_total",
                "counter",
                "Tokens generated by finished and cancelled generations.",
                self.generated_tokens.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in metrics {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        }
    }
}

/// A checked request, in the terms of the generator.
pub struct GenerationRequest {
    /// What to continue.
    pub prompt: Prompt,
    /// Sampling, stop strings; `generation.max_tokens` is set by [`prepare`].
    pub options: TextOptions,
    /// Most new tokens the client asked for; `None`: as many as fit.
    pub max_tokens: Option<usize>,
    /// Keep only the last this-many prompt tokens (TGI's `truncate`).
    pub truncate: Option<usize>,
    /// The field that held the prompt, for errors.
    pub prompt_field: &'static str,
}

/// A request ready to run: its prompt as token ids and its options.
pub struct Prepared {
    /// The prompt's token ids.
    pub ids: Vec<u32>,
    /// The options, `max_tokens` resolved.
    pub options: TextOptions,
}

/// Tokenizes the prompt (on a blocking thread: a long conversation takes a
/// while) and checks it and the options against the model: 400 (OpenAI)
/// or 422 (TGI) for anything the client must change, with code
/// `context_length_exceeded` when the prompt, or the prompt and the tokens
/// asked for, do not fit in the model's context.
pub async fn prepare(
    served: &ServedGenerator,
    request: GenerationRequest,
    flavor: Flavor,
) -> Result<Prepared, ApiError> {
    let GenerationRequest { prompt, mut options, max_tokens, truncate, prompt_field } = request;
    options.generation.sampling.validate().map_err(|e| invalid(flavor, e.to_string()))?;
    if let Prompt::Chat(_) = prompt {
        if !served.generator.has_chat_template() {
            return Err(invalid(
                flavor,
                format!(
                    "`{}` has no chat template, so it cannot take `messages`: send a `prompt` to /v1/completions",
                    served.name
                ),
            )
            .param("messages"));
        }
    }
    let generator = served.generator.clone();
    let encoded = tokio::task::spawn_blocking(move || generator.encode(&prompt)).await;
    let mut ids = match encoded {
        Ok(Ok(ids)) => ids,
        Ok(Err(e)) => return Err(model_error(flavor, e)),
        Err(e) => {
            return Err(ApiError::new(flavor, StatusCode::INTERNAL_SERVER_ERROR, format!("tokenizing failed: {e}")))
        }
    };
    if let Some(keep) = truncate {
        if ids.len() > keep {
            ids.drain(..ids.len() - keep);
        }
    }
    if ids.is_empty() {
        return Err(invalid(flavor, format!("`{prompt_field}` is empty: there is nothing to continue"))
            .param(prompt_field)
            .code("empty"));
    }
    let context = served.context_length;
    if ids.len() >= context {
        return Err(too_long(
            flavor,
            format!(
                "This model's maximum context length is {context} tokens. However, your {prompt_field} resulted in {} tokens, which leaves no room for the completion. Please shorten it.",
                ids.len()
            ),
            prompt_field,
        ));
    }
    let room = context - ids.len();
    options.generation.max_tokens = match max_tokens {
        None => room,
        Some(asked) if asked <= room => asked,
        Some(asked) => {
            return Err(too_long(
                flavor,
                format!(
                    "This model's maximum context length is {context} tokens. However, you requested {} tokens ({} in the {prompt_field}, {asked} in the completion). Please reduce the length of the {prompt_field} or the completion.",
                    ids.len() + asked,
                    ids.len()
                ),
                prompt_field,
            ))
        }
    };
    Ok(Prepared { ids, options })
}

fn too_long(flavor: Flavor, message: String, field: &'static str) -> ApiError {
    invalid(flavor, message).param(field).code("context_length_exceeded")
}

/// The client's fault: 400 on OpenAI routes, 422 (TGI's `validation`) on TGI's.
pub fn invalid(flavor: Flavor, message: impl Into<String>) -> ApiError {
    let status = match flavor {
        Flavor::OpenAi => StatusCode::BAD_REQUEST,
        Flavor::Tei => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(flavor, status, message).code("invalid_request")
}

/// A model error as an answer: an unusable option or input is the client's
/// fault; anything else is the server's.
pub fn model_error(flavor: Flavor, e: ipfs_accelerate_models::Error) -> ApiError {
    use ipfs_accelerate_models::Error as E;
    match e {
        E::InvalidOption(m) => invalid(flavor, m),
        E::EmptyInput => invalid(flavor, "the prompt is empty: there is nothing to continue").code("empty"),
        E::Tokenizer(m) => invalid(flavor, format!("cannot tokenize the prompt: {m}")),
        other => ApiError::new(flavor, StatusCode::INTERNAL_SERVER_ERROR, format!("the generation failed: {other}"))
            .code("generation_failed"),
    }
}

/// What a running generation sends its handler.
pub enum Event {
    /// The next piece of text (final: never taken back).
    Text(String),
    /// The end: the whole generation, or why it failed.
    Done(Result<TextGeneration, ApiError>),
}

/// Starts `prepared` on a blocking thread; its text and then its end come
/// down the returned channel. Dropping the receiver cancels it.
pub fn start(state: &AppState, served: &ServedGenerator, prepared: Prepared, flavor: Flavor) -> mpsc::Receiver<Event> {
    let (tx, rx) = mpsc::channel(CHANNEL_PIECES);
    let generator = served.generator.clone();
    let metrics = state.generation_metrics.clone();
    tokio::task::spawn_blocking(move || {
        let _running = metrics.begin();
        let prompt = Prompt::Tokens(prepared.ids);
        let result = generator.generate(&prompt, &prepared.options, &mut |piece| {
            // A closed channel means the client is gone: stop generating.
            match tx.blocking_send(Event::Text(piece.to_string())) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            }
        });
        metrics.end(&result);
        let _ = tx.blocking_send(Event::Done(result.map_err(|e| model_error(flavor, e))));
    });
    rx
}

/// Waits for the whole generation (a non-streamed request). If the client
/// goes away meanwhile, axum drops this future and with it the receiver,
/// which cancels the generation.
pub async fn collect(mut rx: mpsc::Receiver<Event>, flavor: Flavor) -> Result<TextGeneration, ApiError> {
    while let Some(event) = rx.recv().await {
        if let Event::Done(result) = event {
            return result;
        }
    }
    Err(ApiError::new(flavor, StatusCode::INTERNAL_SERVER_ERROR, "the generation stopped without an answer"))
}

/// A Server-Sent Events response: each event of the generation becomes
/// zero or more `data: ...` lines through `frame` (which returns the
/// payloads and whether the stream is over). Dropping the response body
/// (the client went away) drops the receiver and cancels the generation.
pub fn sse<F>(rx: mpsc::Receiver<Event>, first: Vec<String>, frame: F) -> Response
where
    F: FnMut(Event) -> (Vec<String>, bool) + Send + 'static,
{
    struct Feed<F> {
        rx: mpsc::Receiver<Event>,
        frame: F,
        pending: VecDeque<String>,
        over: bool,
    }
    let feed = Feed { rx, frame, pending: first.into(), over: false };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        loop {
            if let Some(payload) = feed.pending.pop_front() {
                let bytes = Bytes::from(format!("data: {payload}\n\n"));
                return Some((Ok::<Bytes, std::convert::Infallible>(bytes), feed));
            }
            if feed.over {
                return None;
            }
            let (payloads, over) = match feed.rx.recv().await {
                Some(event) => (feed.frame)(event),
                None => (Vec::new(), true),
            };
            feed.pending.extend(payloads);
            feed.over = over;
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Middleware on the generation routes: the concurrency limit of the
/// inference routes (the same slots, the same 429), with the slot held
/// until the response body ends, so a streamed generation counts for as
/// long as it runs and not only until its headers are sent.
pub async fn limit_concurrency(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Ok(permit) = state.inference_slots.clone().try_acquire_owned() else {
        let flavor = Flavor::for_path(request.uri().path());
        let mut response = ApiError::new(
            flavor,
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many requests: {} are already running (the server's --max-concurrency); retry later",
                state.max_concurrency
            ),
        )
        .code("rate_limit_exceeded")
        .into_response();
        // The body was not read: this connection cannot carry another request.
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    };
    let (parts, body) = next.run(request).await.into_parts();
    let body = body.into_data_stream().map(move |chunk| {
        let _held = &permit;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

/// Reads the numeric field `field` as `f32`, when present and not null.
pub fn optional_f32(flavor: Flavor, map: &Map<String, Value>, field: &'static str) -> Result<Option<f32>, ApiError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if x.is_finite() => Ok(Some(x as f32)),
            _ => Err(invalid(flavor, format!("`{field}` must be a finite number")).param(field)),
        },
        Some(other) => Err(invalid(flavor, format!("`{field}` is {}; it must be a number", kind(other))).param(field)),
    }
}

/// Reads the integer field `field`, when present and not null; negative
/// values are refused.
pub fn optional_count(flavor: Flavor, map: &Map<String, Value>, field: &'static str) -> Result<Option<u64>, ApiError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
            (Some(x), _) => Ok(Some(x)),
            (None, Some(x)) => Err(invalid(flavor, format!("`{field}` is {x}; it must be 0 or more")).param(field)),
            _ => Err(invalid(flavor, format!("`{field}` is {n}; it must be a whole number")).param(field)),
        },
        Some(other) => {
            Err(invalid(flavor, format!("`{field}` is {}; it must be an integer", kind(other))).param(field))
        }
    }
}

/// Reads a seed: any integer, negative ones taken as their two's
/// complement (OpenAI's seed is a signed 64-bit integer).
pub fn optional_seed(flavor: Flavor, map: &Map<String, Value>, field: &'static str) -> Result<Option<u64>, ApiError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
            (Some(x), _) => Ok(Some(x)),
            (None, Some(x)) => Ok(Some(x as u64)),
            _ => Err(invalid(flavor, format!("`{field}` is {n}; it must be an integer")).param(field)),
        },
        Some(other) => {
            Err(invalid(flavor, format!("`{field}` is {}; it must be an integer", kind(other))).param(field))
        }
    }
}

/// Reads stop strings: one string or an array of them (at most 16, none
/// empty).
pub fn stop_strings(flavor: Flavor, map: &Map<String, Value>, field: &'static str) -> Result<Vec<String>, ApiError> {
    let stops = match map.get(field) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => {
            let mut stops = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => stops.push(s.clone()),
                    other => {
                        return Err(invalid(
                            flavor,
                            format!("`{field}[{i}]` is {}; every stop sequence must be a string", kind(other)),
                        )
                        .param(field))
                    }
                }
            }
            stops
        }
        Some(other) => {
            return Err(invalid(
                flavor,
                format!("`{field}` is {}; it must be a string or an array of strings", kind(other)),
            )
            .param(field))
        }
    };
    if stops.len() > 16 {
        return Err(
            invalid(flavor, format!("`{field}` has {} stop sequences; at most 16 are taken", stops.len())).param(field)
        );
    }
    if stops.iter().any(String::is_empty) {
        return Err(invalid(flavor, format!("`{field}` holds an empty string, which would stop at once")).param(field));
    }
    Ok(stops)
}

/// Refuses `field` unless it is absent, null, or equal to `neutral` (the
/// value that asks for nothing): for options this server does not
/// implement, which must not be silently ignored.
pub fn unsupported_unless(
    flavor: Flavor,
    map: &Map<String, Value>,
    field: &'static str,
    neutral: &[Value],
    why: &str,
) -> Result<(), ApiError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(()),
        Some(v) if neutral.iter().any(|n| same(n, v)) => Ok(()),
        Some(v) => Err(invalid(flavor, format!("`{field}` {v} is not supported: {why}"))
            .param(field)
            .code("unsupported_parameter")),
    }
}

/// JSON equality with numbers compared by value (`0` equals `0.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}
