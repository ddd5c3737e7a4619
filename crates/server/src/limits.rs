//! The concurrency limit and the request metrics, as middleware.

use crate::errors::{ApiError, Flavor};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Instant;

/// Middleware on the inference routes: a request beyond the
/// `max_concurrency` running now is answered 429 at once. Nothing waits in
/// an unbounded line; the pool's own bounded queue sits behind this.
pub async fn limit_concurrency(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Ok(_permit) = state.inference_slots.clone().try_acquire_owned() else {
        let flavor = Flavor::for_path(request.uri().path());
        let response = ApiError::new(
            flavor,
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many requests: {} are already running (the server's --max-concurrency); retry later",
                state.max_concurrency
            ),
        )
        .code("rate_limit_exceeded")
        .into_response();
        // The body was not read, so this connection cannot carry another
        // request: say so, or a keep-alive client's next request on it
        // meets a closed socket instead of an answer.
        let mut response = response;
        response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        return response;
    };
    next.run(request).await
}

/// Middleware on every route: counts the request and its latency under its
/// route's pattern, and as in flight meanwhile.
pub async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = route_label(request.uri().path());
    let started = Instant::now();
    let _in_flight = state.metrics.start();
    let response = next.run(request).await;
    state.metrics.record(route, response.status().as_u16(), started.elapsed());
    response
}

/// The route pattern of a matched path (this layer only sees matched
/// routes): the gateway's CIDs collapse into one label so the metrics stay
/// a fixed, small set.
fn route_label(path: &str) -> &'static str {
    if path.starts_with("/ipfs/") {
        return "/ipfs/{cid}";
    }
    crate::router::ROUTES.iter().find(|r| **r == path).copied().unwrap_or("other")
}
