//! OpenAI-compatible routes: `GET /v1/models`, `POST /v1/embeddings`, and
//! the answers for a route whose kind of model is not loaded. Generation
//! is in [`crate::chat`], speech in [`crate::transcription`].

use crate::body::{self, json_object, optional_str, wrong_type};
use crate::errors::{json_response, ApiError, Flavor};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

const FLAVOR: Flavor = Flavor::OpenAi;

/// `GET /v1/models`: one entry per served model name, embedding models
/// first; `type` (an extension) says which routes take it.
pub async fn models(State(state): State<Arc<AppState>>) -> Response {
    let created = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let embedders = state.models.iter().map(|m| {
        json!({ "id": m.name, "object": "model", "created": created, "owned_by": "ipfs-accelerate", "type": "embedding" })
    });
    let generators = state.generators.iter().map(|g| {
        json!({
            "id": g.name, "object": "model", "created": g.created, "owned_by": "ipfs-accelerate",
            "type": "text-generation", "context_length": g.context_length,
        })
    });
    let speech = state.speech.iter().map(|s| {
        json!({ "id": s.name, "object": "model", "created": s.created, "owned_by": "ipfs-accelerate", "type": "speech-to-text" })
    });
    let data: Vec<Value> = embedders.chain(generators).chain(speech).collect();
    json_response(StatusCode::OK, &json!({ "object": "list", "data": data }))
}

/// `POST /v1/embeddings`.
///
/// Inputs over the model's token limit are refused with 400
/// `context_length_exceeded` (OpenAI answers 400 `invalid_request_error`
/// for a too-long input rather than truncating it silently).
pub async fn embeddings(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let map = json_object(FLAVOR, body)?;
    let model_name = match map.get("model") {
        Some(Value::String(s)) => s.as_str(),
        None | Some(Value::Null) => {
            return Err(ApiError::bad_request(FLAVOR, "`model` is required: one of GET /v1/models").param("model"))
        }
        Some(other) => {
            return Err(
                wrong_type(FLAVOR, format!("`model` is {}; it must be a string", body::kind(other))).param("model")
            )
        }
    };
    let model = state.model(Some(model_name), FLAVOR)?;
    let base64 = match optional_str(FLAVOR, &map, "encoding_format")? {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                FLAVOR,
                format!("`encoding_format` {other:?} is not supported: use \"float\" or \"base64\""),
            )
            .param("encoding_format"))
        }
    };
    match map.get("dimensions") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_u64() == Some(model.dim as u64) => {}
        Some(other) => {
            return Err(ApiError::bad_request(
                FLAVOR,
                format!(
                "`dimensions` {other} is not supported: {} produces {}-dimensional embeddings and cannot shorten them",
                model.name, model.dim
            ),
            )
            .param("dimensions"))
        }
    }
    let texts = body::texts(FLAVOR, "input", map.get("input"))?;
    if texts.len() > state.max_batch_size {
        return Err(ApiError::bad_request(
            FLAVOR,
            format!(
                "`input` has {} texts; this server takes at most {} per request",
                texts.len(),
                state.max_batch_size
            ),
        )
        .param("input"));
    }
    let (texts, counts) = model.count_tokens(texts, FLAVOR).await?;
    if let Some((i, n)) = counts.iter().enumerate().find(|(_, n)| **n > model.max_input_length) {
        return Err(ApiError::bad_request(
            FLAVOR,
            format!(
                "This model's maximum context length is {} tokens, however input {i} has {n} tokens. Please shorten it.",
                model.max_input_length
            ),
        )
        .param("input")
        .code("context_length_exceeded"));
    }
    let tokens: usize = counts.iter().sum();
    let vectors = state.embed(model, texts, FLAVOR).await?;
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 { Value::String(encode_base64(v)) } else { json!(v) };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "object": "list",
            "data": data,
            "model": model.name,
            "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
        }),
    ))
}

/// The vector as OpenAI's base64 encoding: little-endian float32 bytes.
pub fn encode_base64(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `POST /v1/chat/completions` and `POST /v1/completions` on a server
/// without generation models: there is nothing to route to.
pub async fn no_generation_model() -> ApiError {
    ApiError::new(
        FLAVOR,
        StatusCode::NOT_FOUND,
        "no text-generation model is loaded on this server; it serves embedding models only (see GET /v1/models; serve one with --model NAME=FILE.gguf)",
    )
    .param("model")
    .code("model_not_found")
}
