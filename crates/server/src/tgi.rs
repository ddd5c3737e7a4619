//! Hugging Face text-generation-inference's routes: `POST /generate`
//! (`{"generated_text", "details"?}`), `POST /generate_stream` (Server-Sent
//! Events of `{"index", "token", "generated_text", "details"}`), and `POST
//! /` when the server holds only generation models (TGI's compat route).
//!
//! Validation errors are 422 with TGI's `{"error", "error_type"}` body.
//! Sampling follows TGI: greedy unless `do_sample` is true or a warper
//! (`temperature` other than 1, `top_k`, `top_p` below 1) is given.
//!
//! Streamed events carry text pieces as the generator releases them (never
//! half a character): a piece may span several tokens, so `token.id` is
//! null in the stream and `token.logprob` is null everywhere (not
//! computed). `details.tokens` of `/generate` lists the real token ids.

use crate::body::{json_object, kind, optional_bool};
use crate::errors::{json_response, ApiError, Flavor};
use crate::generation::{
    self, invalid, optional_count, optional_f32, optional_seed, stop_strings, unsupported_unless, Event,
    GenerationRequest, ServedGenerator,
};
use crate::state::AppState;
use crate::tei;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ipfs_accelerate_models::llm::generate::{FinishReason, GenerationOptions};
use ipfs_accelerate_models::llm::sampler::SamplingOptions;
use ipfs_accelerate_models::llm::text::{Prompt, TextGeneration, TextGenerator, TextOptions};
use serde_json::{json, Map, Value};
use std::sync::Arc;

const FLAVOR: Flavor = Flavor::Tei;

/// TGI's default `max_new_tokens`.
const DEFAULT_MAX_NEW_TOKENS: usize = 100;

/// A checked TGI request.
struct Parsed {
    request: GenerationRequest,
    details: bool,
    /// The input, when `return_full_text` asks for it before the output.
    prefix: Option<String>,
    /// The seed used when sampling (reported in `details`).
    seed: Option<u64>,
}

fn parse(map: &Map<String, Value>) -> Result<Parsed, ApiError> {
    let inputs = match map.get("inputs") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) => {
            return Err(invalid(FLAVOR, "Input validation error: `inputs` cannot be empty").code("empty"))
        }
        None | Some(Value::Null) => return Err(invalid(FLAVOR, "`inputs` is required: the text to continue")),
        Some(other) => return Err(invalid(FLAVOR, format!("`inputs` is {}; it must be a string", kind(other)))),
    };
    let empty = Map::new();
    let p = match map.get("parameters") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(p)) => p,
        Some(other) => return Err(invalid(FLAVOR, format!("`parameters` is {}; it must be an object", kind(other)))),
    };
    let max_new_tokens = match optional_count(FLAVOR, p, "max_new_tokens")? {
        Some(0) => return Err(invalid(FLAVOR, "Input validation error: `max_new_tokens` must be strictly positive")),
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => DEFAULT_MAX_NEW_TOKENS,
    };
    let temperature = optional_f32(FLAVOR, p, "temperature")?;
    if temperature.is_some_and(|t| t <= 0.0) {
        return Err(invalid(FLAVOR, "Input validation error: `temperature` must be strictly positive"));
    }
    let top_p = optional_f32(FLAVOR, p, "top_p")?;
    if top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
        return Err(invalid(FLAVOR, "Input validation error: `top_p` must be > 0.0 and <= 1.0"));
    }
    let top_k = optional_count(FLAVOR, p, "top_k")?;
    if top_k == Some(0) {
        return Err(invalid(FLAVOR, "Input validation error: `top_k` must be strictly positive"));
    }
    let repetition_penalty = optional_f32(FLAVOR, p, "repetition_penalty")?.unwrap_or(1.0);
    if repetition_penalty <= 0.0 {
        return Err(invalid(FLAVOR, "Input validation error: `repetition_penalty` must be strictly positive"));
    }
    let do_sample = optional_bool(FLAVOR, p, "do_sample")?.unwrap_or(false);
    let seed = optional_seed(FLAVOR, p, "seed")?;
    let stop = stop_strings(FLAVOR, p, "stop")?;
    let details = optional_bool(FLAVOR, p, "details")?.unwrap_or(false);
    let full_text = optional_bool(FLAVOR, p, "return_full_text")?.unwrap_or(false);
    let truncate = optional_count(FLAVOR, p, "truncate")?.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    unsupported_unless(FLAVOR, p, "typical_p", &[json!(1)], "typical sampling is not implemented")?;
    unsupported_unless(FLAVOR, p, "watermark", &[json!(false)], "watermarking is not implemented")?;
    unsupported_unless(
        FLAVOR,
        p,
        "decoder_input_details",
        &[json!(false)],
        "prompt log-probabilities are not computed",
    )?;
    unsupported_unless(FLAVOR, p, "best_of", &[json!(1)], "one sequence is generated")?;
    unsupported_unless(FLAVOR, p, "top_n_tokens", &[json!(0)], "log-probabilities are not computed")?;
    unsupported_unless(FLAVOR, p, "frequency_penalty", &[json!(0)], "use `repetition_penalty`")?;
    unsupported_unless(FLAVOR, p, "grammar", &[], "constrained generation is not implemented")?;
    // As TGI: a warper turns sampling on even without do_sample.
    let warped = temperature.is_some_and(|t| t != 1.0) || top_k.is_some() || top_p.is_some_and(|p| p < 1.0);
    let sampling = if do_sample || warped {
        // TGI reports the seed it sampled with; pick one so this can too.
        let seed = seed.unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
        });
        SamplingOptions {
            temperature: temperature.unwrap_or(1.0),
            top_k: top_k.map(|k| usize::try_from(k).unwrap_or(usize::MAX)).unwrap_or(0),
            top_p: top_p.unwrap_or(1.0),
            repetition_penalty,
            seed: Some(seed),
        }
    } else {
        SamplingOptions { repetition_penalty, ..SamplingOptions::greedy() }
    };
    let seed = sampling.seed;
    let options = TextOptions {
        generation: GenerationOptions { sampling, ..GenerationOptions::default() },
        stop,
        ignore_eos: false,
    };
    let prefix = full_text.then(|| inputs.clone());
    let request = GenerationRequest {
        prompt: Prompt::Text(inputs),
        options,
        max_tokens: Some(max_new_tokens),
        truncate,
        prompt_field: "inputs",
    };
    Ok(Parsed { request, details, prefix, seed })
}

/// TGI's finish reason: `length`, `eos_token` or `stop_sequence`.
fn finish_reason(generator: &TextGenerator, done: &TextGeneration, stop: &[String]) -> &'static str {
    match done.tokens.finish_reason {
        FinishReason::Length => "length",
        FinishReason::Stop | FinishReason::Cancelled => {
            // The output stops before a stop string, so the tokens hold one
            // past the text only when a stop string ended it.
            let decoded = generator.tokenizer().decode(&done.tokens.token_ids, false).unwrap_or_default();
            if stop.iter().any(|s| decoded.contains(s.as_str())) {
                "stop_sequence"
            } else {
                "eos_token"
            }
        }
    }
}

/// Starts a checked request: the served model (the first), the parsed
/// request and its running generation.
async fn begin(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<(&ServedGenerator, Parsed, Vec<String>, tokio::sync::mpsc::Receiver<Event>), ApiError> {
    if state.generators.is_empty() {
        return Err(tei::no_generation_model().await);
    }
    let map = json_object(FLAVOR, body)?;
    let name = match map.get("model") {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    };
    let served = state.generator(name, FLAVOR)?;
    let mut parsed = parse(&map)?;
    let stop = parsed.request.options.stop.clone();
    let request = std::mem::replace(
        &mut parsed.request,
        GenerationRequest {
            prompt: Prompt::Tokens(Vec::new()),
            options: TextOptions::default(),
            max_tokens: None,
            truncate: None,
            prompt_field: "inputs",
        },
    );
    let prepared = generation::prepare(served, request, FLAVOR).await?;
    let rx = generation::start(state, served, prepared, FLAVOR);
    Ok((served, parsed, stop, rx))
}

/// The body of a whole `/generate` answer.
async fn generate_value(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let (served, parsed, stop, rx) = begin(state, body).await?;
    let done = generation::collect(rx, FLAVOR).await?;
    let text = match &parsed.prefix {
        Some(prefix) => format!("{prefix}{}", done.text),
        None => done.text.clone(),
    };
    let mut answer = json!({ "generated_text": text });
    if parsed.details {
        let tokenizer = served.generator.tokenizer();
        let tokens: Vec<Value> = done
            .tokens
            .token_ids
            .iter()
            .map(|&id| {
                json!({
                    "id": id,
                    "text": tokenizer.decode(&[id], false).unwrap_or_default(),
                    "logprob": null,
                    "special": tokenizer.is_special(id),
                })
            })
            .collect();
        answer["details"] = json!({
            "finish_reason": finish_reason(&served.generator, &done, &stop),
            "generated_tokens": done.tokens.token_ids.len(),
            "seed": parsed.seed,
            "prefill": [],
            "tokens": tokens,
        });
    }
    Ok(answer)
}

/// `POST /generate`: `{"inputs", "parameters"?}` → `{"generated_text",
/// "details"?}`.
pub async fn generate(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    match generate_value(&state, body).await {
        Ok(answer) => json_response(StatusCode::OK, &answer),
        Err(e) => e.into_response(),
    }
}

/// `POST /generate_stream`: Server-Sent Events, one per piece of text; the
/// last carries `generated_text` and `details`.
pub async fn generate_stream(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    stream(&state, body).await.unwrap_or_else(IntoResponse::into_response)
}

async fn stream(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let (served, parsed, stop, rx) = begin(state, body).await?;
    let generator = served.generator.clone();
    // One piece is held back so the last event can carry the full text.
    let mut held: Option<String> = None;
    let mut index = 0usize;
    let event = |index: usize, text: &str, last: Option<(String, Value)>| -> String {
        let (generated_text, details) = match last {
            Some((text, details)) => (Value::String(text), details),
            None => (Value::Null, Value::Null),
        };
        json!({
            "index": index,
            "token": { "id": null, "text": text, "logprob": null, "special": false },
            "generated_text": generated_text,
            "details": details,
            "top_tokens": null,
        })
        .to_string()
    };
    let Parsed { details: want_details, prefix, seed, .. } = parsed;
    Ok(generation::sse(rx, Vec::new(), move |e| match e {
        Event::Text(piece) => {
            let previous = held.replace(piece);
            match previous {
                Some(text) => {
                    index += 1;
                    (vec![event(index, &text, None)], false)
                }
                None => (Vec::new(), false),
            }
        }
        Event::Done(Ok(done)) => {
            let full = match &prefix {
                Some(prefix) => format!("{prefix}{}", done.text),
                None => done.text.clone(),
            };
            let details = if want_details {
                json!({
                    "finish_reason": finish_reason(&generator, &done, &stop),
                    "generated_tokens": done.tokens.token_ids.len(),
                    "seed": seed,
                    "input_length": done.tokens.prompt_tokens,
                })
            } else {
                Value::Null
            };
            index += 1;
            let last = held.take().unwrap_or_default();
            (vec![event(index, &last, Some((full, details)))], true)
        }
        Event::Done(Err(e)) => (vec![e.body().to_string()], true),
    }))
}

/// `POST /` on a server with only generation models: TGI's compat route,
/// `/generate_stream` when `stream` is true, else `/generate` answered as
/// an array of one.
pub async fn compat_generate(state: Arc<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let streamed = match &body {
        Ok(bytes) => serde_json::from_slice::<Value>(bytes)
            .ok()
            .and_then(|v| v.get("stream").and_then(Value::as_bool))
            .unwrap_or(false),
        Err(_) => false,
    };
    if streamed {
        return generate_stream(State(state), body).await;
    }
    match generate_value(&state, body).await {
        Ok(answer) => json_response(StatusCode::OK, &json!([answer])),
        Err(e) => e.into_response(),
    }
}
