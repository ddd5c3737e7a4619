//! Trustless gateway routes as a reusable axum [`Router`].
//!
//! Only responses a client can verify are served: one raw block, or a CAR
//! of the DAG under a CID. Blocks are read through
//! [`crate::exporter::get_verified`], so a block that went bad on disk is
//! reported as a server error and never sent.

use super::format::{negotiate, Format, Rejection, CAR_CONTENT_TYPE, RAW_MEDIA_TYPE};
use super::stream_io::{ChannelWriter, Chunk};
use crate::block::parse_cid;
use crate::car::{export_car, CarWriter};
use crate::error::Error;
use crate::exporter::{get_verified, BlockSource};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use cid::Cid;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The block source the routes read from, shared between requests.
pub type SharedSource = Arc<dyn BlockSource + Send + Sync>;

/// Content-addressed responses never change, so caches may keep them for
/// the longest time HTTP caches honour (one year less a bit, as Kubo sends).
const CACHE_CONTROL: &str = "public, max-age=29030400, immutable";

/// The gateway as a stand-alone router: serve it with `axum::serve`, or
/// `merge` it into another `Router<()>`.
pub fn router<S: BlockSource + Send + Sync + 'static>(source: Arc<S>) -> Router {
    routes(source)
}

/// The gateway routes for a router of any state type, so servers with their
/// own state (the HTTP API, the browser bridge) can `merge` them directly.
pub fn routes<St, S>(source: Arc<S>) -> Router<St>
where
    St: Clone + Send + Sync + 'static,
    S: BlockSource + Send + Sync + 'static,
{
    let source: SharedSource = source;
    Router::new()
        // `get` also answers HEAD; the handler skips the body work for it.
        .route("/ipfs/{cid}", get(serve_cid))
        .route("/ipfs/{cid}/{*path}", get(serve_path))
        .with_state(source)
}

async fn serve_path(Path((cid, _path)): Path<(String, String)>) -> Response {
    text_error(
        StatusCode::BAD_REQUEST,
        format!("paths under a CID are not supported by this trustless gateway; request /ipfs/{cid} itself"),
    )
}

async fn serve_cid(
    State(source): State<SharedSource>,
    Path(cid_text): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let cid = match parse_cid(&cid_text) {
        Ok(cid) => cid,
        Err(e) => return text_error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = match negotiate(params.get("format").map(String::as_str), accept) {
        Ok(f) => f,
        Err(Rejection::BadRequest(m)) => return text_error(StatusCode::BAD_REQUEST, m),
        Err(Rejection::NotAcceptable(m)) => return text_error(StatusCode::NOT_ACCEPTABLE, m),
    };
    let block_only = match (format, params.get("dag-scope").map(String::as_str)) {
        (Format::Raw, _) | (Format::Car, None | Some("all")) => false,
        (Format::Car, Some("block")) => true,
        (Format::Car, Some(other)) => {
            return text_error(
                StatusCode::BAD_REQUEST,
                format!("unsupported dag-scope {other:?}: use dag-scope=all (default) or dag-scope=block"),
            )
        }
    };
    if params.contains_key("entity-bytes") {
        return text_error(StatusCode::BAD_REQUEST, "entity-bytes is not supported; request the whole DAG".into());
    }

    let etag = match (format, block_only) {
        (Format::Raw, _) => format!("\"{cid}.raw\""),
        (Format::Car, false) => format!("\"{cid}.car.dfs.all\""),
        (Format::Car, true) => format!("\"{cid}.car.dfs.block\""),
    };
    // Everything but HEAD needs the root block; reading it first turns a
    // missing or corrupt root into a proper status before any body is sent.
    let root = {
        let source = source.clone();
        match tokio::task::spawn_blocking(move || get_verified(&*source, &cid)).await {
            Ok(Ok(data)) => data,
            Ok(Err(e)) => return store_error(&e),
            Err(e) => return text_error(StatusCode::INTERNAL_SERVER_ERROR, format!("block read task failed: {e}")),
        }
    };
    let mut response = if if_none_match(&headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        match format {
            Format::Raw => {
                let mut r = Body::from(root).into_response();
                set(&mut r, header::CONTENT_TYPE, RAW_MEDIA_TYPE);
                set(&mut r, header::CONTENT_DISPOSITION, &format!("attachment; filename=\"{cid}.bin\""));
                r
            }
            Format::Car => {
                let body = if method == Method::HEAD { Body::empty() } else { car_body(source, cid, root, block_only) };
                let mut r = body.into_response();
                set(&mut r, header::CONTENT_TYPE, CAR_CONTENT_TYPE);
                set(&mut r, header::CONTENT_DISPOSITION, &format!("attachment; filename=\"{cid}.car\""));
                r
            }
        }
    };
    set(&mut response, header::ETAG, &etag);
    set(&mut response, header::CACHE_CONTROL, CACHE_CONTROL);
    set(&mut response, header::VARY, "Accept");
    set(&mut response, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(&mut response, "x-ipfs-path", &format!("/ipfs/{cid}"));
    set(&mut response, "x-ipfs-roots", &cid.to_string());
    response
}

/// Streams the CAR from a blocking thread. A failure after the first byte
/// (a block missing or corrupt deep in the DAG) can no longer change the
/// status, so it aborts the body: the client sees a broken transfer, never a
/// CAR that silently lacks blocks.
fn car_body(source: SharedSource, root: Cid, root_data: Vec<u8>, block_only: bool) -> Body {
    let (tx, rx) = mpsc::channel::<Chunk>(4);
    tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter::new(tx.clone());
        let result = if block_only {
            CarWriter::new(writer, std::slice::from_ref(&root))
                .and_then(|mut car| car.write_block(&root, &root_data).and_then(|()| car.finish()))
        } else {
            export_car(&*source, &root, writer)
        };
        if let Err(e) = result {
            tracing::warn!(%root, error = %e, "aborting CAR response");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    Body::from_stream(stream)
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == etag || t.trim() == "*" || t.trim().strip_prefix("W/") == Some(etag))
}

/// One table from store errors to statuses.
fn store_error(e: &Error) -> Response {
    let status = match e {
        Error::BlockNotFound { .. } => StatusCode::NOT_FOUND,
        Error::InvalidCid { .. } | Error::UnsupportedHash { .. } => StatusCode::BAD_REQUEST,
        // A corrupt stored block is our fault, and must not be served.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %e, "gateway cannot serve a block");
    }
    text_error(status, e.to_string())
}

fn text_error(status: StatusCode, message: String) -> Response {
    let mut r = (status, format!("{message}\n")).into_response();
    set(&mut r, header::CONTENT_TYPE, "text/plain; charset=utf-8");
    set(&mut r, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    r
}

fn set<K: header::IntoHeaderName>(r: &mut Response, name: K, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}
