//! Which response a trustless-gateway request asks for: the `format` query
//! parameter and the `Accept` header, negotiated as the spec describes.

/// Media type of a single raw block.
pub const RAW_MEDIA_TYPE: &str = "application/vnd.ipld.raw";
/// Media type of a CAR stream.
pub const CAR_MEDIA_TYPE: &str = "application/vnd.ipld.car";
/// The exact `Content-Type` of CAR responses: version 1, depth-first order,
/// no duplicate blocks (what [`crate::car::export_car`] writes).
pub const CAR_CONTENT_TYPE: &str = "application/vnd.ipld.car; version=1; order=dfs; dups=n";

/// A verifiable response type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One block, exactly as stored.
    Raw,
    /// A CAR v1 of the DAG under the CID.
    Car,
}

/// Why a request cannot be answered with a verifiable response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The request is malformed or asks for something unsupported (HTTP 400).
    BadRequest(String),
    /// The `Accept` header names nothing this gateway can send (HTTP 406).
    NotAcceptable(String),
}

/// Picks the response format. A specific IPLD type in `Accept` wins over
/// `format` (the spec's SHOULD); `format` wins over non-IPLD `Accept` values
/// such as a browser's `text/html`, so a URL alone is enough to ask.
pub fn negotiate(format_param: Option<&str>, accept: Option<&str>) -> Result<Format, Rejection> {
    if let Some(accept) = accept {
        if let Some(format) = from_accept(accept) {
            return Ok(format);
        }
    }
    match format_param {
        Some("raw") => return Ok(Format::Raw),
        Some("car") => return Ok(Format::Car),
        Some(other) => {
            return Err(Rejection::BadRequest(format!(
                "unsupported format {other:?}: this trustless gateway serves only ?format=raw (one block) and ?format=car (the whole DAG)"
            )))
        }
        None => {}
    }
    match accept.map(str::trim) {
        Some(a) if !a.is_empty() && !a.split(',').any(|t| matches!(media_type(t).0.as_str(), "*/*" | "application/*")) => {
            Err(Rejection::NotAcceptable(format!(
                "cannot answer Accept: {a}; this trustless gateway sends only {RAW_MEDIA_TYPE} or {CAR_MEDIA_TYPE} (version=1)"
            )))
        }
        _ => Err(Rejection::BadRequest(format!(
            "no response format requested: add ?format=raw or ?format=car, or send Accept: {RAW_MEDIA_TYPE} or {CAR_MEDIA_TYPE}"
        ))),
    }
}

/// The first acceptable IPLD media type in an `Accept` header, in the
/// client's order. A CAR asking for another version or an order other than
/// depth-first (or "unk") cannot be served and is skipped.
fn from_accept(accept: &str) -> Option<Format> {
    for item in accept.split(',') {
        let (ty, params) = media_type(item);
        let q_zero = params.iter().any(|(k, v)| k == "q" && v.parse::<f32>().is_ok_and(|q| q <= 0.0));
        if q_zero {
            continue;
        }
        match ty.as_str() {
            RAW_MEDIA_TYPE => return Some(Format::Raw),
            CAR_MEDIA_TYPE => {
                let ok = params.iter().all(|(k, v)| match k.as_str() {
                    "version" => v == "1",
                    "order" => v == "dfs" || v == "unk",
                    _ => true, // dups=y|n, q: either is fine, we send no duplicates.
                });
                if ok {
                    return Some(Format::Car);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits `type/subtype; k=v; …` into a lowercase type and its parameters.
fn media_type(item: &str) -> (String, Vec<(String, String)>) {
    let mut parts = item.split(';');
    let ty = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let params = parts
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().trim_matches('"').to_ascii_lowercase()))
        })
        .collect();
    (ty, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_param_and_accept() {
        assert_eq!(negotiate(Some("raw"), None), Ok(Format::Raw));
        assert_eq!(negotiate(Some("car"), Some("text/html,*/*")), Ok(Format::Car));
        assert_eq!(negotiate(None, Some("application/vnd.ipld.raw")), Ok(Format::Raw));
        assert_eq!(negotiate(None, Some("application/vnd.ipld.car; version=1; order=dfs")), Ok(Format::Car));
        // A specific IPLD Accept wins over the query parameter.
        assert_eq!(negotiate(Some("car"), Some("application/vnd.ipld.raw")), Ok(Format::Raw));
    }

    #[test]
    fn rejections() {
        assert!(matches!(negotiate(Some("tar"), None), Err(Rejection::BadRequest(_))));
        assert!(matches!(negotiate(None, None), Err(Rejection::BadRequest(_))));
        assert!(matches!(negotiate(None, Some("*/*")), Err(Rejection::BadRequest(_))));
        assert!(matches!(negotiate(None, Some("text/html")), Err(Rejection::NotAcceptable(_))));
        assert!(matches!(
            negotiate(None, Some("application/vnd.ipld.car; version=2")),
            Err(Rejection::NotAcceptable(_))
        ));
        assert!(matches!(negotiate(None, Some("application/vnd.ipld.raw;q=0")), Err(Rejection::NotAcceptable(_))));
    }
}
