//! Hugging Face text-embeddings-inference routes: `POST /embed`, `GET
//! /info`, `GET /health`, `POST /` (embed, or TGI's generate on a server of
//! generation models only); and the answer of TGI's routes on a server
//! without generation models. Generation itself is in [`crate::tgi`].
//!
//! Status codes follow TEI: an input over the token limit is 413
//! (`Validation`) unless `truncate` is true, a full server is 429
//! (`Overloaded`), no ready worker is 503 (`Unhealthy`).

use crate::body::{self, json_object, optional_bool, optional_str};
use crate::errors::{json_response, ApiError, Flavor};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use std::sync::Arc;

const FLAVOR: Flavor = Flavor::Tei;

/// `POST /embed`: `{"inputs": str | [str], "normalize"?: bool, "truncate"?:
/// bool, "model"?: name}` → `[[f32, ...], ...]`. `model` is this server's
/// addition (TEI serves one model); without it the first model answers.
pub async fn embed(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let map = json_object(FLAVOR, body)?;
    let model = state.model(optional_str(FLAVOR, &map, "model")?, FLAVOR)?;
    let normalize = optional_bool(FLAVOR, &map, "normalize")?.unwrap_or(true);
    let truncate = optional_bool(FLAVOR, &map, "truncate")?.unwrap_or(false);
    if !normalize && model.normalize {
        // The pipeline's own Normalize module already ran on the workers;
        // the raw vectors are not available to return.
        return Err(body::wrong_type(
            FLAVOR,
            format!(
                "{} normalizes its embeddings in its pipeline, so `normalize: false` cannot be honoured",
                model.name
            ),
        ));
    }
    let texts = body::texts(FLAVOR, "inputs", map.get("inputs"))?;
    if texts.len() > state.max_batch_size {
        return Err(ApiError::new(
            FLAVOR,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("batch size {} > maximum allowed batch size {}", texts.len(), state.max_batch_size),
        ));
    }
    let texts = if truncate {
        texts
    } else {
        let (texts, counts) = model.count_tokens(texts, FLAVOR).await?;
        if let Some(n) = counts.iter().find(|n| **n > model.max_input_length) {
            return Err(ApiError::new(
                FLAVOR,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "Input validation error: `inputs` must have less than {} tokens. Given: {n}; send `truncate: true` to cut it",
                    model.max_input_length
                ),
            ));
        }
        texts
    };
    // With truncate, the workers' tokenizer cuts each text at the limit.
    let mut vectors = state.embed(model, texts, FLAVOR).await?;
    if normalize && !model.normalize {
        for v in &mut vectors {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                v.iter_mut().for_each(|x| *x /= norm);
            }
        }
    }
    Ok(json_response(StatusCode::OK, &json!(vectors)))
}

/// `POST /`: TEI's and TGI's main route. With an embedding model it
/// embeds; on a server of generation models only it generates, as TGI's
/// compat route does.
pub async fn root(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    if state.models.is_empty() && !state.generators.is_empty() {
        return crate::tgi::compat_generate(state, body).await;
    }
    match embed(State(state), body).await {
        Ok(response) => response,
        Err(e) => axum::response::IntoResponse::into_response(e),
    }
}

/// `GET /info`: TEI's description of the served model (the first one); on
/// a server of generation models only, TGI's description of the first.
pub async fn info(State(state): State<Arc<AppState>>) -> Response {
    let generators: Vec<serde_json::Value> =
        state.generators.iter().map(|g| json!({ "id": g.name, "max_total_tokens": g.context_length })).collect();
    let Some(model) = state.models.first() else {
        return generation_info(&state, generators);
    };
    json_response(
        StatusCode::OK,
        &json!({
            "model_id": model.name,
            "model_sha": null,
            "model_dtype": "float32",
            "model_type": { "embedding": { "pooling": model.pooling } },
            "max_concurrent_requests": state.max_concurrency,
            "max_input_length": model.max_input_length,
            "max_batch_tokens": model.max_input_length * state.max_batch_size,
            "max_batch_requests": null,
            "max_client_batch_size": state.max_batch_size,
            "auto_truncate": false,
            "tokenization_workers": 1,
            "version": env!("CARGO_PKG_VERSION"),
            "sha": null,
            "docker_label": null,
            "models": state.models.iter().map(|m| json!({
                "id": m.name, "dim": m.dim, "max_input_length": m.max_input_length,
            })).collect::<Vec<_>>(),
            "generation_models": generators,
        }),
    )
}

/// TGI's `/info` for the first generation model.
fn generation_info(state: &AppState, generators: Vec<serde_json::Value>) -> Response {
    let Some(model) = state.generators.first() else {
        let e = ApiError::new(FLAVOR, StatusCode::NOT_FOUND, "this server serves no model");
        return json_response(e.status, &e.body());
    };
    json_response(
        StatusCode::OK,
        &json!({
            "model_id": model.name,
            "model_sha": null,
            "model_dtype": "quantized",
            "model_device_type": "cpu",
            "model_pipeline_tag": "text-generation",
            "max_concurrent_requests": state.max_concurrency,
            "max_best_of": 1,
            "max_stop_sequences": 16,
            "max_input_tokens": model.context_length.saturating_sub(1),
            "max_total_tokens": model.context_length,
            "validation_workers": 1,
            "max_client_batch_size": 1,
            "router": "ipfs-accelerate",
            "version": env!("CARGO_PKG_VERSION"),
            "sha": null,
            "docker_label": null,
            "generation_models": generators,
        }),
    )
}

/// `GET /health`: 200 when some worker can take a request now (ready, or
/// idle and started on demand), 503 otherwise. A server of generation
/// models only is healthy once started: its models are loaded and run in
/// the server itself.
pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    let workers = state.pool.status();
    let generation_only = state.models.is_empty() && !state.generators.is_empty();
    let ready = generation_only || workers.iter().any(|w| matches!(w.state(), "ready" | "idle" | "circuit-half-open"));
    if ready {
        return json_response(StatusCode::OK, &json!({ "status": "ok" }));
    }
    let message = if workers.is_empty() {
        "the pool has no workers".to_string()
    } else {
        let states: Vec<String> = workers.iter().map(|w| format!("{} is {}", w.id, w.state())).collect();
        format!("no worker is ready: {}", states.join(", "))
    };
    let e = ApiError::new(FLAVOR, StatusCode::SERVICE_UNAVAILABLE, message);
    json_response(e.status, &e.body())
}

/// TGI's `POST /generate` and `POST /generate_stream` on a server without
/// generation models.
pub async fn no_generation_model() -> ApiError {
    ApiError::new(
        FLAVOR,
        StatusCode::NOT_FOUND,
        "no text-generation model is loaded on this server; it serves embedding models only (see GET /info; serve one with --model NAME=FILE.gguf)",
    )
}
