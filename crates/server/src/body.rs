//! Reading a request body as a JSON object, with JSON errors for every way
//! it can be wrong (axum's own rejections are plain text).

use crate::errors::{ApiError, Flavor};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde_json::{Map, Value};

/// The body as a JSON object. A body over the size limit is 413; invalid
/// JSON is 400; JSON that is not an object is 422 on TEI routes (as a wrong
/// type is there) and 400 on OpenAI's.
pub fn json_object(flavor: Flavor, body: Result<Bytes, BytesRejection>) -> Result<Map<String, Value>, ApiError> {
    let bytes = body.map_err(|rejection| {
        let status = rejection.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "the request body is larger than this server accepts (see --max-body-bytes)".to_string()
        } else {
            format!("cannot read the request body: {}", rejection.body_text())
        };
        ApiError::new(flavor, status, message)
    })?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(flavor, format!("the request body is not valid JSON: {e}")))?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(wrong_type(flavor, format!("the request body must be a JSON object, not {}", kind(&other)))),
    }
}

/// A field of the wrong type or value: 422 on TEI routes (as TEI's JSON
/// extractor answers), 400 on OpenAI's.
pub fn wrong_type(flavor: Flavor, message: impl Into<String>) -> ApiError {
    let status = match flavor {
        Flavor::OpenAi => StatusCode::BAD_REQUEST,
        Flavor::Tei => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(flavor, status, message)
}

/// What kind of JSON value this is, for messages.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The texts of an `input` (OpenAI) or `inputs` (TEI) field: one string or
/// an array of strings. Token-id arrays are refused with a clear message:
/// the pool takes text.
pub fn texts(flavor: Flavor, field: &'static str, value: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let missing = || wrong_type(flavor, format!("`{field}` is required: a string or an array of strings")).param(field);
    let value = value.ok_or_else(missing)?;
    let texts = match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => {
            if items.is_empty() {
                let e = ApiError::bad_request(flavor, format!("`{field}` is an empty array: send at least one text"));
                return Err(e.param(field).code("empty"));
            }
            let mut texts = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => texts.push(s.clone()),
                    Value::Number(_) | Value::Array(_) => {
                        return Err(wrong_type(
                            flavor,
                            format!(
                                "`{field}` holds token ids: this server embeds text only, so send the texts as strings"
                            ),
                        )
                        .param(field))
                    }
                    other => {
                        return Err(wrong_type(
                            flavor,
                            format!("`{field}[{i}]` is {}; every item must be a string", kind(other)),
                        )
                        .param(field))
                    }
                }
            }
            texts
        }
        Value::Null => return Err(missing()),
        other => {
            return Err(wrong_type(
                flavor,
                format!("`{field}` is {}; it must be a string or an array of strings", kind(other)),
            )
            .param(field))
        }
    };
    if let Some(i) = texts.iter().position(|t| t.is_empty()) {
        let what = if texts.len() == 1 { format!("`{field}`") } else { format!("`{field}[{i}]`") };
        return Err(wrong_type(flavor, format!("{what} is an empty string: there is nothing to embed")).param(field));
    }
    Ok(texts)
}

/// An optional boolean field.
pub fn optional_bool(flavor: Flavor, map: &Map<String, Value>, field: &'static str) -> Result<Option<bool>, ApiError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => {
            Err(wrong_type(flavor, format!("`{field}` is {}; it must be true or false", kind(other))).param(field))
        }
    }
}

/// An optional string field.
pub fn optional_str<'a>(
    flavor: Flavor,
    map: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, ApiError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => {
            Err(wrong_type(flavor, format!("`{field}` is {}; it must be a string", kind(other))).param(field))
        }
    }
}
