//! OpenAI's text generation: `POST /v1/chat/completions` and `POST
//! /v1/completions`, whole or streamed as Server-Sent Events
//! (`chat.completion.chunk` / `text_completion` objects, then
//! `data: [DONE]`), as the official clients expect.
//!
//! Options this server cannot honour (`n` > 1, logprobs, tools, additive
//! frequency or presence penalties, ...) are refused with 400
//! `unsupported_parameter` rather than ignored, so a client never gets an
//! answer to a question it did not ask.

use crate::body::{json_object, kind, optional_bool};
use crate::errors::{json_response, ApiError, Flavor};
use crate::generation::{
    self, invalid, optional_count, optional_f32, optional_seed, stop_strings, unsupported_unless, Event,
    GenerationRequest,
};
use crate::openai;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use ipfs_accelerate_models::llm::chat_template::ChatMessage;
use ipfs_accelerate_models::llm::generate::GenerationOptions;
use ipfs_accelerate_models::llm::sampler::SamplingOptions;
use ipfs_accelerate_models::llm::text::{Prompt, TextGeneration, TextOptions};
use serde_json::{json, Map, Value};
use std::sync::Arc;

const FLAVOR: Flavor = Flavor::OpenAi;

/// OpenAI's default sampling temperature.
const DEFAULT_TEMPERATURE: f32 = 1.0;

/// The options every OpenAI generation request shares.
struct Common {
    options: TextOptions,
    max_tokens: Option<usize>,
    stream: bool,
    include_usage: bool,
}

/// Reads and checks the shared fields: `n`, `max_tokens` /
/// `max_completion_tokens`, `temperature`, `top_p`, `top_k` (extension),
/// `seed`, `stop`, `repetition_penalty` (extension), `ignore_eos`
/// (extension), `stream`, `stream_options`, and refuses the unsupported ones.
fn common(map: &Map<String, Value>) -> Result<Common, ApiError> {
    if let Some(n) = optional_count(FLAVOR, map, "n")? {
        if n != 1 {
            return Err(invalid(FLAVOR, format!("`n` is {n}: this server generates one choice per request (n = 1)"))
                .param("n")
                .code("unsupported_parameter"));
        }
    }
    let max_tokens = match optional_count(FLAVOR, map, "max_completion_tokens")? {
        Some(n) => Some((n, "max_completion_tokens")),
        None => optional_count(FLAVOR, map, "max_tokens")?.map(|n| (n, "max_tokens")),
    };
    if let Some((0, field)) = max_tokens {
        return Err(invalid(FLAVOR, format!("`{field}` is 0; it must be at least 1")).param(field));
    }
    let max_tokens = max_tokens.map(|(n, _)| usize::try_from(n).unwrap_or(usize::MAX));
    let mut temperature = optional_f32(FLAVOR, map, "temperature")?.unwrap_or(DEFAULT_TEMPERATURE);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(
            invalid(FLAVOR, format!("`temperature` is {temperature}; it must be between 0 and 2")).param("temperature")
        );
    }
    let mut top_p = optional_f32(FLAVOR, map, "top_p")?.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&top_p) {
        return Err(invalid(FLAVOR, format!("`top_p` is {top_p}; it must be between 0 and 1")).param("top_p"));
    }
    if top_p == 0.0 {
        // A nucleus of probability 0 holds only the most likely token.
        temperature = 0.0;
        top_p = 1.0;
    }
    let top_k = optional_count(FLAVOR, map, "top_k")?.map(|k| usize::try_from(k).unwrap_or(usize::MAX)).unwrap_or(0);
    let repetition_penalty = optional_f32(FLAVOR, map, "repetition_penalty")?.unwrap_or(1.0);
    if repetition_penalty <= 0.0 {
        return Err(invalid(FLAVOR, format!("`repetition_penalty` is {repetition_penalty}; it must be positive"))
            .param("repetition_penalty"));
    }
    let seed = optional_seed(FLAVOR, map, "seed")?;
    let stop = stop_strings(FLAVOR, map, "stop")?;
    let ignore_eos = optional_bool(FLAVOR, map, "ignore_eos")?.unwrap_or(false);
    let additive = "this server has only the multiplicative `repetition_penalty` (an extension), which is not the same";
    unsupported_unless(FLAVOR, map, "frequency_penalty", &[json!(0)], additive)?;
    unsupported_unless(FLAVOR, map, "presence_penalty", &[json!(0)], additive)?;
    unsupported_unless(FLAVOR, map, "logprobs", &[json!(false)], "log-probabilities are not computed")?;
    unsupported_unless(FLAVOR, map, "top_logprobs", &[json!(0)], "log-probabilities are not computed")?;
    unsupported_unless(FLAVOR, map, "logit_bias", &[json!({})], "logit biases are not applied")?;
    unsupported_unless(FLAVOR, map, "tools", &[json!([])], "tool calls are not generated")?;
    unsupported_unless(FLAVOR, map, "functions", &[json!([])], "function calls are not generated")?;
    unsupported_unless(FLAVOR, map, "tool_choice", &[json!("none"), json!("auto")], "tool calls are not generated")?;
    unsupported_unless(
        FLAVOR,
        map,
        "response_format",
        &[json!({ "type": "text" })],
        "only plain text is generated (no JSON mode)",
    )?;
    let stream = optional_bool(FLAVOR, map, "stream")?.unwrap_or(false);
    let include_usage = match map.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(options)) => {
            if !stream {
                return Err(
                    invalid(FLAVOR, "`stream_options` is only allowed when `stream` is true").param("stream_options")
                );
            }
            optional_bool(FLAVOR, options, "include_usage")?.unwrap_or(false)
        }
        Some(other) => {
            return Err(invalid(FLAVOR, format!("`stream_options` is {}; it must be an object", kind(other)))
                .param("stream_options"))
        }
    };
    let sampling = SamplingOptions { temperature, top_k, top_p, repetition_penalty, seed };
    let generation = GenerationOptions { sampling, ..GenerationOptions::default() };
    Ok(Common { options: TextOptions { generation, stop, ignore_eos }, max_tokens, stream, include_usage })
}

/// The `model` field, required.
fn model_name(map: &Map<String, Value>) -> Result<&str, ApiError> {
    match map.get("model") {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => {
            Err(invalid(FLAVOR, "`model` is required: one of GET /v1/models").param("model").code("missing_model"))
        }
        Some(other) => Err(invalid(FLAVOR, format!("`model` is {}; it must be a string", kind(other))).param("model")),
    }
}

/// The `messages` of a chat request: roles `system` (or `developer`),
/// `user` and `assistant`, with text content (a string or text parts).
fn messages(map: &Map<String, Value>) -> Result<Vec<ChatMessage>, ApiError> {
    let bad = |message: String| invalid(FLAVOR, message).param("messages");
    let items = match map.get("messages") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(Value::Array(_)) => return Err(bad("`messages` is empty: send at least one message".into())),
        None | Some(Value::Null) => {
            return Err(bad("`messages` is required: an array of {\"role\", \"content\"} objects".into()))
        }
        Some(other) => return Err(bad(format!("`messages` is {}; it must be an array of messages", kind(other)))),
    };
    let mut messages = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(message) = item else {
            return Err(bad(format!("`messages[{i}]` is {}; it must be an object", kind(item))));
        };
        let role = match message.get("role") {
            Some(Value::String(role)) => role.as_str(),
            _ => return Err(bad(format!("`messages[{i}].role` is required: system, user or assistant"))),
        };
        let role = match role {
            "system" | "user" | "assistant" => role,
            // OpenAI's newer name for the system role.
            "developer" => "system",
            "tool" | "function" => {
                return Err(bad(format!("`messages[{i}]` has role {role:?}: tool calls are not supported"))
                    .code("unsupported_parameter"))
            }
            other => {
                return Err(bad(format!(
                    "`messages[{i}].role` is {other:?}; it must be system, developer, user or assistant"
                )))
            }
        };
        let content = match message.get("content") {
            Some(Value::String(text)) => text.clone(),
            None | Some(Value::Null) if role == "assistant" => String::new(),
            Some(Value::Array(parts)) => {
                let mut text = String::new();
                for (j, part) in parts.iter().enumerate() {
                    match (part.get("type").and_then(Value::as_str), part.get("text").and_then(Value::as_str)) {
                        (Some("text"), Some(piece)) => text.push_str(piece),
                        (Some(other), _) if other != "text" => {
                            return Err(bad(format!(
                                "`messages[{i}].content[{j}]` is of type {other:?}: this server takes text only"
                            ))
                            .code("unsupported_parameter"))
                        }
                        _ => {
                            return Err(bad(format!(
                                "`messages[{i}].content[{j}]` must be {{\"type\": \"text\", \"text\": string}}"
                            )))
                        }
                    }
                }
                text
            }
            _ => return Err(bad(format!("`messages[{i}].content` must be a string or an array of text parts"))),
        };
        messages.push(ChatMessage::new(role, content));
    }
    Ok(messages)
}

/// The `prompt` of a completions request: a string, an array of one
/// string, token ids, or an array of one array of token ids.
fn prompt(map: &Map<String, Value>) -> Result<Prompt, ApiError> {
    let bad = |message: String| invalid(FLAVOR, message).param("prompt");
    let one_prompt = || bad("`prompt` holds several prompts: this server completes one prompt per request".into());
    let tokens = |items: &[Value]| -> Result<Prompt, ApiError> {
        let mut ids = Vec::with_capacity(items.len());
        for item in items {
            match item.as_u64().and_then(|id| u32::try_from(id).ok()) {
                Some(id) => ids.push(id),
                None => return Err(bad(format!("`prompt` holds {item}, which is not a token id"))),
            }
        }
        Ok(Prompt::Tokens(ids))
    };
    match map.get("prompt") {
        Some(Value::String(text)) => Ok(Prompt::Text(text.clone())),
        Some(Value::Array(items)) => match items.as_slice() {
            [] => Err(bad("`prompt` is empty: send a string".into())),
            [Value::String(text)] => Ok(Prompt::Text(text.clone())),
            [Value::Array(ids)] => tokens(ids),
            [Value::Number(_), ..] => tokens(items),
            [_, _, ..] => Err(one_prompt()),
            [other] => Err(bad(format!("`prompt[0]` is {}; it must be a string", kind(other)))),
        },
        None | Some(Value::Null) => Err(bad("`prompt` is required: a string".into())),
        Some(other) => Err(bad(format!("`prompt` is {}; it must be a string", kind(other)))),
    }
}

/// The usage object of a finished generation.
fn usage(done: &TextGeneration) -> Value {
    let prompt = done.tokens.prompt_tokens;
    let completion = done.tokens.token_ids.len();
    json!({ "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion })
}

/// Which of the two routes a request came to.
#[derive(Clone, Copy)]
enum Route {
    Chat,
    Completions,
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(state: State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    run(state, body, Route::Chat).await.unwrap_or_else(axum::response::IntoResponse::into_response)
}

/// `POST /v1/completions`.
pub async fn completions(state: State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    run(state, body, Route::Completions).await.unwrap_or_else(axum::response::IntoResponse::into_response)
}

async fn run(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
    route: Route,
) -> Result<Response, ApiError> {
    if state.generators.is_empty() {
        return Err(openai::no_generation_model().await);
    }
    let map = json_object(FLAVOR, body)?;
    let name = model_name(&map)?;
    // TGI serves one model and ignores `model`; its documentation sends
    // "tgi" and huggingface_hub's InferenceClient "dummy". Those names mean
    // the first generation model here, unless a model is really so named.
    let placeholder = matches!(name, "tgi" | "dummy") && !state.models.iter().any(|m| m.name == name);
    let served = state.generator(if placeholder { None } else { Some(name) }, FLAVOR)?;
    let (prompt, prompt_field) = match route {
        Route::Chat => (Prompt::Chat(messages(&map)?), "messages"),
        Route::Completions => {
            unsupported_unless(FLAVOR, &map, "echo", &[json!(false)], "the prompt is not repeated")?;
            unsupported_unless(FLAVOR, &map, "suffix", &[json!("")], "insertion is not supported")?;
            unsupported_unless(FLAVOR, &map, "best_of", &[json!(1)], "one completion is generated")?;
            unsupported_unless(FLAVOR, &map, "logprobs", &[json!(0)], "log-probabilities are not computed")?;
            (prompt(&map)?, "prompt")
        }
    };
    // `logprobs` means a count on /v1/completions and a flag on chat.
    let mut checked = map.clone();
    if matches!(route, Route::Completions) {
        checked.remove("logprobs");
    }
    let Common { options, max_tokens, stream, include_usage } = common(&checked)?;
    let request = GenerationRequest { prompt, options, max_tokens, truncate: None, prompt_field };
    let prepared = generation::prepare(served, request, FLAVOR).await?;
    let rx = generation::start(&state, served, prepared, FLAVOR);
    let id = generation::response_id(match route {
        Route::Chat => "chatcmpl",
        Route::Completions => "cmpl",
    });
    let created = generation::unix_now();
    let model = served.name.clone();
    if !stream {
        let done = generation::collect(rx, FLAVOR).await?;
        let finish = done.tokens.finish_reason.as_str();
        let choice = match route {
            Route::Chat => json!({
                "index": 0,
                "message": { "role": "assistant", "content": done.text },
                "logprobs": null,
                "finish_reason": finish,
            }),
            Route::Completions => json!({ "index": 0, "text": done.text, "logprobs": null, "finish_reason": finish }),
        };
        let object = match route {
            Route::Chat => "chat.completion",
            Route::Completions => "text_completion",
        };
        return Ok(json_response(
            StatusCode::OK,
            &json!({
                "id": id, "object": object, "created": created, "model": model,
                "system_fingerprint": null,
                "choices": [choice],
                "usage": usage(&done),
            }),
        ));
    }
    let chunk = move |choices: Value, usage: Option<Value>| -> String {
        let object = match route {
            Route::Chat => "chat.completion.chunk",
            Route::Completions => "text_completion",
        };
        let mut chunk = json!({
            "id": id, "object": object, "created": created, "model": model,
            "system_fingerprint": null, "choices": choices,
        });
        // With include_usage every chunk has `usage`: null but the last.
        if include_usage {
            chunk["usage"] = usage.unwrap_or(Value::Null);
        }
        chunk.to_string()
    };
    let choice = move |text: Option<&str>, finish: Option<&str>| -> Value {
        match route {
            Route::Chat => {
                let delta = match text {
                    Some(text) => json!({ "content": text }),
                    None => json!({}),
                };
                json!([{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }])
            }
            Route::Completions => {
                json!([{ "index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish }])
            }
        }
    };
    let first = match route {
        Route::Chat => {
            let role = json!([{ "index": 0, "delta": { "role": "assistant", "content": "" }, "logprobs": null, "finish_reason": null }]);
            vec![chunk(role, None)]
        }
        Route::Completions => Vec::new(),
    };
    Ok(generation::sse(rx, first, move |event| match event {
        Event::Text(piece) => (vec![chunk(choice(Some(&piece), None), None)], false),
        Event::Done(Ok(done)) => {
            let mut out = vec![chunk(choice(None, Some(done.tokens.finish_reason.as_str())), None)];
            if include_usage {
                out.push(chunk(json!([]), Some(usage(&done))));
            }
            out.push("[DONE]".to_string());
            (out, true)
        }
        // Headers are sent: the failure goes in the stream, as OpenAI does.
        Event::Done(Err(e)) => (vec![e.body().to_string(), "[DONE]".to_string()], true),
    }))
}
