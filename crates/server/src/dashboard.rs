//! `GET /dashboard`: a live page of the workers (kind, browser, health,
//! circuit, loaded models), the models (name, directory, where loaded) and
//! charts of throughput and latency from the journal. The page is static
//! (embedded `web/dashboard.html`, no external scripts: it works offline)
//! and polls `GET /dashboard/data` every two seconds.

use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use ipfs_accelerate_pool::journal::TimelinePoint;
use ipfs_accelerate_pool::WorkerStatus;
use serde::Serialize;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The page.
const PAGE: &str = include_str!("../web/dashboard.html");

/// How far back the charts reach.
pub const WINDOW_MS: i64 = 10 * 60 * 1000;

/// The width of one chart bucket.
pub const BUCKET_MS: i64 = 5000;

/// `GET /dashboard`.
pub async fn page() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

/// A served model, as the dashboard lists it.
#[derive(Serialize)]
struct ModelRow {
    name: String,
    dir: String,
    dim: usize,
    max_input_length: usize,
    /// Workers that have it loaded now.
    loaded_on: Vec<String>,
}

/// What the page polls.
#[derive(Serialize)]
struct Data {
    now_ms: i64,
    queued: usize,
    workers: Vec<WorkerStatus>,
    models: Vec<ModelRow>,
    bucket_ms: i64,
    window_ms: i64,
    timeline: Vec<TimelinePoint>,
    /// Why the timeline is empty when the journal could not be read.
    timeline_error: Option<String>,
}

/// `GET /dashboard/data`: workers and models now, and the journal's
/// timeline of the last [`WINDOW_MS`].
pub async fn data(State(state): State<Arc<AppState>>) -> Response {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let workers = state.pool.status();
    let models = state
        .models
        .iter()
        .map(|m| {
            let dir = m.dir.display().to_string();
            let loaded_on = workers.iter().filter(|w| w.models.contains(&dir)).map(|w| w.id.clone()).collect();
            ModelRow { name: m.name.clone(), dir, dim: m.dim, max_input_length: m.max_input_length, loaded_on }
        })
        .collect();
    let pool = state.pool.clone();
    // SQLite is blocking: off the async threads.
    let timeline = tokio::task::spawn_blocking(move || match pool.journal() {
        Some(journal) => journal.timeline(now_ms - WINDOW_MS, BUCKET_MS).map_err(|e| e.to_string()),
        None => Ok(Vec::new()),
    })
    .await
    .unwrap_or_else(|e| Err(format!("the journal reader stopped: {e}")));
    let (timeline, timeline_error) = match timeline {
        Ok(t) => (t, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let data = Data {
        now_ms,
        queued: state.pool.queued(),
        workers,
        models,
        bucket_ms: BUCKET_MS,
        window_ms: WINDOW_MS,
        timeline,
        timeline_error,
    };
    match serde_json::to_value(&data) {
        Ok(value) => crate::errors::json_response(StatusCode::OK, &value),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the dashboard data: {e}")).into_response(),
    }
}
