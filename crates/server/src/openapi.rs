//! `GET /openapi.json`: an OpenAPI 3.0 description of the routes, for
//! clients, code generators and API fuzzers such as schemathesis.

use crate::errors::json_response;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

/// Serves [`document`].
pub async fn serve() -> Response {
    json_response(StatusCode::OK, &document())
}

fn error_responses(codes: &[&str], schema: &str) -> serde_json::Map<String, Value> {
    codes
        .iter()
        .map(|c| {
            let body =
                json!({ "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } });
            (c.to_string(), json!({ "description": "error", "content": body }))
        })
        .collect()
}

fn op(summary: &str, ok: Value, errors: serde_json::Map<String, Value>, body: Option<Value>) -> Value {
    let mut responses = errors;
    responses
        .insert("200".into(), json!({ "description": "success", "content": { "application/json": { "schema": ok } } }));
    let mut op = json!({ "summary": summary, "responses": responses });
    if let Some(schema) = body {
        op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema } } });
    }
    op
}

/// The OpenAPI document.
pub fn document() -> Value {
    let texts = json!({ "oneOf": [
        { "type": "string", "minLength": 1 },
        { "type": "array", "minItems": 1, "items": { "type": "string", "minLength": 1 } }
    ]});
    let openai_errors = |codes: &[&str]| error_responses(codes, "OpenAiError");
    let tei_errors = |codes: &[&str]| error_responses(codes, "TeiError");
    let embeddings_body = json!({
        "type": "object", "required": ["input", "model"],
        "properties": {
            "input": texts,
            "model": { "type": "string" },
            "encoding_format": { "type": "string", "enum": ["float", "base64"] },
            "dimensions": { "type": "integer" },
            "user": { "type": "string" }
        }
    });
    let embeddings_ok = json!({ "type": "object", "properties": {
        "object": { "type": "string" },
        "data": { "type": "array", "items": { "type": "object", "properties": {
            "object": { "type": "string" }, "index": { "type": "integer" },
            "embedding": { "oneOf": [ { "type": "array", "items": { "type": "number" } }, { "type": "string" } ] }
        }}},
        "model": { "type": "string" },
        "usage": { "type": "object", "properties": {
            "prompt_tokens": { "type": "integer" }, "total_tokens": { "type": "integer" } } }
    }});
    let embed_body = json!({
        "type": "object", "required": ["inputs"],
        "properties": {
            "inputs": texts,
            "normalize": { "type": "boolean", "default": true },
            "truncate": { "type": "boolean", "default": false },
            "model": { "type": "string" }
        }
    });
    let vectors = json!({ "type": "array", "items": { "type": "array", "items": { "type": "number" } } });
    let any_object = json!({ "type": "object" });
    let speech_form = json!({ "type": "object", "required": ["file", "model"], "properties": {
        "file": { "type": "string", "format": "binary" }, "model": { "type": "string" },
        "language": { "type": "string" },
        "response_format": { "type": "string", "enum": ["json", "text", "verbose_json", "srt", "vtt"] },
        "timestamp_granularities[]": { "type": "string", "enum": ["segment"] },
        "temperature": { "type": "number", "enum": [0] } } });
    let speech_op = |summary: &str| {
        let mut responses = openai_errors(&["400", "401", "404", "413", "429", "500"]);
        responses.insert(
            "200".into(),
            json!({ "description": "the transcript", "content": {
            "application/json": { "schema": { "type": "object", "properties": { "text": { "type": "string" } } } },
            "text/plain": { "schema": { "type": "string" } } } }),
        );
        json!({ "summary": summary, "responses": responses, "requestBody": { "required": true, "content": {
            "multipart/form-data": { "schema": speech_form.clone() } } } })
    };
    let stop = json!({ "oneOf": [
        { "type": "string" }, { "type": "array", "items": { "type": "string" }, "maxItems": 16 }
    ]});
    let sampling = json!({
        "model": { "type": "string" },
        "max_tokens": { "type": "integer", "minimum": 1 },
        "max_completion_tokens": { "type": "integer", "minimum": 1 },
        "temperature": { "type": "number", "minimum": 0, "maximum": 2, "default": 1 },
        "top_p": { "type": "number", "minimum": 0, "maximum": 1, "default": 1 },
        "top_k": { "type": "integer", "minimum": 0, "description": "extension" },
        "repetition_penalty": { "type": "number", "exclusiveMinimum": 0, "description": "extension" },
        "ignore_eos": { "type": "boolean", "description": "extension" },
        "seed": { "type": "integer" },
        "stop": stop.clone(),
        "n": { "type": "integer", "enum": [1] },
        "stream": { "type": "boolean", "default": false },
        "stream_options": { "type": "object", "properties": { "include_usage": { "type": "boolean" } } }
    });
    let with = |extra: Value, required: &[&str]| {
        let mut properties = sampling.clone();
        for (k, v) in extra.as_object().into_iter().flatten() {
            properties[k] = v.clone();
        }
        json!({ "type": "object", "required": required, "properties": properties })
    };
    let chat_body = with(
        json!({ "messages": { "type": "array", "minItems": 1, "items": { "type": "object",
            "required": ["role"],
            "properties": {
                "role": { "type": "string", "enum": ["system", "developer", "user", "assistant"] },
                "content": { "oneOf": [ { "type": "string" }, { "type": "array", "items": { "type": "object" } } ] }
            } } } }),
        &["model", "messages"],
    );
    let completions_body = with(
        json!({ "prompt": { "oneOf": [
            { "type": "string" },
            { "type": "array", "minItems": 1, "maxItems": 1, "items": { "type": "string" } },
            { "type": "array", "items": { "type": "integer" } }
        ] } }),
        &["model", "prompt"],
    );
    let generate_body = json!({
        "type": "object", "required": ["inputs"],
        "properties": {
            "inputs": { "type": "string", "minLength": 1 },
            "model": { "type": "string" },
            "parameters": { "type": "object", "properties": {
                "max_new_tokens": { "type": "integer", "minimum": 1, "default": 100 },
                "do_sample": { "type": "boolean", "default": false },
                "temperature": { "type": "number", "exclusiveMinimum": 0 },
                "top_p": { "type": "number", "exclusiveMinimum": 0, "maximum": 1 },
                "top_k": { "type": "integer", "minimum": 1 },
                "seed": { "type": "integer" },
                "stop": stop,
                "repetition_penalty": { "type": "number", "exclusiveMinimum": 0 },
                "details": { "type": "boolean", "default": false },
                "return_full_text": { "type": "boolean", "default": false },
                "truncate": { "type": "integer", "minimum": 0 }
            } }
        }
    });
    let events = |summary: &str, errors: serde_json::Map<String, Value>, body: Value| {
        let mut op = op(summary, any_object.clone(), errors, Some(body));
        op["responses"]["200"]["content"]["text/event-stream"] = json!({ "schema": { "type": "string" } });
        op
    };
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "ipfs-accelerate",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "OpenAI- and text-embeddings-inference-compatible embeddings over the ipfs-accelerate resource pool, and OpenAI- and text-generation-inference-compatible text generation. With an API key configured, every route but /health needs `Authorization: Bearer KEY`."
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "OpenAiError": { "type": "object", "properties": { "error": { "type": "object", "properties": {
                    "message": { "type": "string" }, "type": { "type": "string" },
                    "param": { "type": "string", "nullable": true }, "code": { "type": "string", "nullable": true } } } } },
                "TeiError": { "type": "object", "properties": {
                    "error": { "type": "string" }, "error_type": { "type": "string" } } }
            }
        },
        "security": [ { "bearer": [] } ],
        "paths": {
            "/v1/models": { "get": op("The served models", any_object.clone(), openai_errors(&["401"]), None) },
            "/v1/embeddings": { "post": op("Embeddings (OpenAI)", embeddings_ok, openai_errors(&["400", "401", "404", "413", "429", "503"]), Some(embeddings_body)) },
            "/v1/chat/completions": { "post": events("Chat completions (OpenAI); Server-Sent Events with `stream`", openai_errors(&["400", "401", "404", "413", "429", "500"]), chat_body) },
            "/v1/completions": { "post": events("Completions (OpenAI); Server-Sent Events with `stream`", openai_errors(&["400", "401", "404", "413", "429", "500"]), completions_body) },
            "/v1/audio/transcriptions": { "post": speech_op("Transcriptions (OpenAI): multipart form with `file`, `model`, optional `language`, `response_format` (json, text, verbose_json, srt, vtt), `timestamp_granularities[]` (segment)") },
            "/v1/audio/translations": { "post": speech_op("Translations into English (OpenAI; multilingual Whisper models): the same form as transcriptions") },
            "/embed": { "post": op("Embeddings (text-embeddings-inference)", vectors.clone(), tei_errors(&["400", "401", "404", "413", "422", "429", "503"]), Some(embed_body.clone())) },
            "/": { "post": op("Embeddings (text-embeddings-inference's main route; the same as /embed); on a server of generation models only, TGI's generate (an array of one answer, or events with `stream`)", vectors.clone(), tei_errors(&["400", "401", "404", "413", "422", "429", "503"]), Some(embed_body.clone())) },
            "/info": { "get": op("The served model (text-embeddings-inference)", any_object.clone(), tei_errors(&["401"]), None) },
            "/health": { "get": {
                "summary": "200 when a worker is ready, 503 otherwise; needs no API key",
                "security": [],
                "responses": { "200": { "description": "a worker is ready" }, "503": { "description": "no worker is ready" } }
            } },
            "/generate": { "post": op("Generation (text-generation-inference)", any_object.clone(), tei_errors(&["400", "401", "404", "413", "422", "429", "500"]), Some(generate_body.clone())) },
            "/generate_stream": { "post": events("Streamed generation (text-generation-inference): Server-Sent Events", tei_errors(&["400", "401", "404", "413", "422", "429", "500"]), generate_body) },
            "/metrics": { "get": {
                "summary": "Prometheus text format: requests, latency histograms, queue depth, worker states",
                "responses": { "200": { "description": "metrics", "content": { "text/plain": { "schema": { "type": "string" } } } } }
            } },
            "/dashboard": { "get": {
                "summary": "A live page of the workers, models, throughput and latency",
                "responses": { "200": { "description": "the page", "content": { "text/html": { "schema": { "type": "string" } } } } }
            } },
            "/dashboard/data": { "get": op("What the dashboard draws: workers, models, the journal's timeline", any_object.clone(), serde_json::Map::new(), None) },
            "/openapi.json": { "get": op("This document", any_object, serde_json::Map::new(), None) },
            "/ipfs/{cid}": { "get": {
                "summary": "Trustless gateway: a raw block or a CAR of the DAG under the CID (served when the server has a block store)",
                "parameters": [ { "name": "cid", "in": "path", "required": true, "schema": { "type": "string" } } ],
                "responses": {
                    "200": { "description": "application/vnd.ipld.raw or application/vnd.ipld.car" },
                    "400": { "description": "not a CID, or no acceptable format" },
                    "404": { "description": "the block is not stored here" }
                }
            } }
        }
    })
}
