//! The two error shapes the API answers with, and the one table from
//! failure kind to HTTP status.
//!
//! OpenAI routes (`/v1/...`) answer `{"error": {"message", "type", "param",
//! "code"}}` as api.openai.com does, so the official clients raise their
//! usual exceptions. Hugging Face routes (`/embed`, `/info`, `/health`,
//! `/generate`) answer text-embeddings-inference's `{"error", "error_type"}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ipfs_accelerate_pool::PoolError;

/// Which error shape a route speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// OpenAI: `{"error": {"message", "type", "param", "code"}}`.
    OpenAi,
    /// text-embeddings-inference: `{"error", "error_type"}`.
    Tei,
}

impl Flavor {
    /// The flavor of the API a request path belongs to: `/v1/...` is
    /// OpenAI's, everything else answers in TEI's shape.
    pub fn for_path(path: &str) -> Flavor {
        if path == "/v1" || path.starts_with("/v1/") {
            Flavor::OpenAi
        } else {
            Flavor::Tei
        }
    }
}

/// A failed request: a status, a message, and what each API calls the kind
/// of failure.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong and what to do, for a person.
    pub message: String,
    /// The request field at fault, if one is (OpenAI's `param`).
    pub param: Option<&'static str>,
    /// OpenAI's machine-readable `code` (`model_not_found`, ...).
    pub code: Option<&'static str>,
    /// The shape to answer in.
    pub flavor: Flavor,
}

impl ApiError {
    /// An error with `status` and `message`, no param or code.
    pub fn new(flavor: Flavor, status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), param: None, code: None, flavor }
    }

    /// 400: the request is unusable as sent.
    pub fn bad_request(flavor: Flavor, message: impl Into<String>) -> Self {
        Self::new(flavor, StatusCode::BAD_REQUEST, message)
    }

    /// Names the request field at fault.
    pub fn param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    /// Sets OpenAI's machine-readable code.
    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// The answer for a request the pool could not serve: a full queue is
    /// 429 (retry later), a model no worker runs or an unusable request is
    /// 400, workers that all failed or never became free are 503.
    pub fn from_pool(flavor: Flavor, err: &PoolError) -> Self {
        let (status, code) = match err {
            PoolError::Busy(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded"),
            PoolError::NoWorker { .. } => (StatusCode::BAD_REQUEST, "model_not_supported"),
            PoolError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            PoolError::Failed { .. } | PoolError::Timeout { .. } | PoolError::Closed => {
                (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable")
            }
        };
        Self::new(flavor, status, err.to_string()).code(code)
    }

    /// OpenAI's `type` for this status.
    fn openai_type(&self) -> &'static str {
        match self.status {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::NOT_FOUND if self.code == Some("model_not_found") => "invalid_request_error",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            s if s.is_server_error() => "server_error",
            _ => "invalid_request_error",
        }
    }

    /// TEI's `error_type` for this status (its `ErrorType` variants:
    /// Overloaded 429, Validation 413, Tokenizer 422, Empty 400,
    /// Unhealthy 503; the rest of ours are named for what they are).
    fn tei_type(&self) -> &'static str {
        match self.status {
            StatusCode::TOO_MANY_REQUESTS => "Overloaded",
            StatusCode::SERVICE_UNAVAILABLE => "Unhealthy",
            StatusCode::UNAUTHORIZED => "Unauthorized",
            StatusCode::NOT_FOUND => "NotFound",
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNPROCESSABLE_ENTITY => "Validation",
            s if s.is_server_error() => "Backend",
            _ if self.code == Some("empty") => "Empty",
            _ => "Validation",
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        match self.flavor {
            Flavor::OpenAi => serde_json::json!({
                "error": {
                    "message": self.message,
                    "type": self.openai_type(),
                    "param": self.param,
                    "code": self.code,
                }
            }),
            Flavor::Tei => serde_json::json!({ "error": self.message, "error_type": self.tei_type() }),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = json_response(self.status, &self.body());
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// `value` as a JSON response with `status` (axum's `Json` needs a feature
/// this workspace leaves off; this is all it would do for us).
pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}
