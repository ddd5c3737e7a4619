//! Bearer API keys: when the server has one, every route but `/health`
//! requires `Authorization: Bearer KEY`. `/health` stays open so load
//! balancers and orchestrators can probe it without the secret; it says
//! nothing but whether a worker is ready.

use crate::errors::{ApiError, Flavor};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Routes that answer without a key.
const OPEN_ROUTES: [&str; 1] = ["/health"];

/// Middleware: answers 401 unless the request carries the server's key.
pub async fn require_key(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(key) = state.api_key.as_deref() else { return next.run(request).await };
    let path = request.uri().path();
    if OPEN_ROUTES.contains(&path) {
        return next.run(request).await;
    }
    let flavor = Flavor::for_path(path);
    let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let token = given.and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    match token {
        Some(token) if constant_time_eq(token.trim().as_bytes(), key.as_bytes()) => next.run(request).await,
        Some(_) => unauthorized(flavor, "the API key is wrong").into_response(),
        None => unauthorized(flavor, "this server needs an API key: send `Authorization: Bearer KEY`").into_response(),
    }
}

fn unauthorized(flavor: Flavor, message: &str) -> ApiError {
    ApiError::new(flavor, StatusCode::UNAUTHORIZED, message).code("invalid_api_key")
}

/// Compares without stopping at the first difference, so the time taken
/// does not tell an attacker how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn equal_only_when_identical() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }
}
