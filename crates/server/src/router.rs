//! The one place routes are listed. To add a route (the dashboard, say):
//! add a `.route(...)` line to [`api_routes`], its path to [`ROUTES`] (so
//! it gets its own metrics label), and its description to `openapi.rs`.

use crate::errors::{ApiError, Flavor};
use crate::state::AppState;
use crate::{auth, chat, dashboard, generation, limits, openai, openapi, tei, tgi, transcription};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use std::time::Duration;

/// Every route path this crate serves (the gateway's `/ipfs/{cid}` aside).
pub const ROUTES: [&str; 16] = [
    "/",
    "/v1/models",
    "/v1/embeddings",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
    "/embed",
    "/info",
    "/health",
    "/generate",
    "/generate_stream",
    "/metrics",
    "/openapi.json",
    "/dashboard",
    "/dashboard/data",
];

/// The API's routes, before the shared layers. Inference routes sit behind
/// the concurrency limit; the rest stay answerable under load.
pub fn api_routes(state: &Arc<AppState>, max_audio_bytes: usize) -> Router<Arc<AppState>> {
    // Recordings are larger than any JSON request: their own body limit.
    let audio_limit = DefaultBodyLimit::max(max_audio_bytes);
    let inference = Router::new()
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/embed", post(tei::embed))
        .route("/v1/audio/transcriptions", post(transcription::transcriptions).layer(audio_limit))
        .route("/v1/audio/translations", post(transcription::translations).layer(audio_limit))
        .route_layer(from_fn_with_state(state.clone(), limits::limit_concurrency));
    // The same slots, held until a streamed answer ends.
    let generation = Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/completions", post(chat::completions))
        .route("/generate", post(tgi::generate))
        .route("/generate_stream", post(tgi::generate_stream))
        // TEI and TGI answer `POST /` as their model's main route (embed,
        // for an embedding model; generate on a server of generation models
        // only); clients given only a base URL post there.
        .route("/", post(tei::root))
        .route_layer(from_fn_with_state(state.clone(), generation::limit_concurrency));
    Router::new()
        .route("/v1/models", get(openai::models))
        .route("/info", get(tei::info))
        .route("/health", get(tei::health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi::serve))
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/data", get(dashboard::data))
        .merge(inference)
        .merge(generation)
}

/// The whole application: the API routes, the trustless gateway when a
/// block store is given, auth and metrics on every route, the body limit,
/// and JSON answers for unknown routes and methods.
pub fn router(state: Arc<AppState>, gateway: Option<Router>, max_body_bytes: usize, max_audio_bytes: usize) -> Router {
    let mut app = api_routes(&state, max_audio_bytes).with_state(state.clone());
    if let Some(gateway) = gateway {
        app = app.merge(gateway);
    }
    let fallback_state = state.clone();
    app.route_layer(from_fn_with_state(state.clone(), auth::require_key))
        .route_layer(from_fn_with_state(state, limits::observe))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .fallback(move |uri: Uri| {
            let state = fallback_state.clone();
            async move {
                state.metrics.record("unmatched", 404, Duration::ZERO);
                let flavor = Flavor::for_path(uri.path());
                ApiError::new(
                    flavor,
                    StatusCode::NOT_FOUND,
                    format!("there is no route {}: see GET /openapi.json", uri.path()),
                )
                .code("not_found")
            }
        })
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            let flavor = Flavor::for_path(uri.path());
            ApiError::new(
                flavor,
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{} does not take {method}: see GET /openapi.json", uri.path()),
            )
            .code("method_not_allowed")
        })
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut text = state.metrics.render(state.pool.queued(), &state.pool.status());
    state.generation_metrics.render(&mut text);
    let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], text).into_response()
}
