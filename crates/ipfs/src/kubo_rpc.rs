//! A client of a local Kubo node's RPC API (`/api/v0/…`), for users who
//! already run `ipfs daemon` and want models added to, pinned in and read
//! from it.
//!
//! Kubo's RPC API takes POST for every command, arguments in the query
//! string and files as `multipart/form-data`; it answers errors with HTTP
//! 500 (or 400) and a JSON body `{"Message", "Code", "Type": "error"}`.
//! Every failure here names the endpoint and, where Kubo sent one, Kubo's
//! own message. Blocks read with [`KuboRpc::block_get`] are hashed here and
//! refused when they do not match the CID: Kubo is trusted less than our
//! own hashing.

use crate::block::{cid_for, parse_cid, verify, CidVersion, RAW, SHA2_256};
use crate::error::{Error, Result};
use crate::importer::ImportOptions;
use cid::Cid;
use std::path::PathBuf;
use std::time::Duration;

/// Where Kubo listens for RPC by default (its `Addresses.API`).
pub const DEFAULT_API: &str = "http://127.0.0.1:5001";

/// The environment variable that overrides [`DEFAULT_API`].
pub const API_ENV: &str = "IPFS_ACCELERATE_KUBO_API";

/// How long one RPC request may take, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// What to add: a file on disk or bytes in memory.
#[derive(Debug, Clone)]
pub enum AddInput {
    /// A regular file, sent under its file name.
    Path(PathBuf),
    /// Bytes, sent as one file.
    Bytes(Vec<u8>),
}

impl From<PathBuf> for AddInput {
    fn from(p: PathBuf) -> Self {
        AddInput::Path(p)
    }
}

impl From<Vec<u8>> for AddInput {
    fn from(b: Vec<u8>) -> Self {
        AddInput::Bytes(b)
    }
}

impl From<&[u8]> for AddInput {
    fn from(b: &[u8]) -> Self {
        AddInput::Bytes(b.to_vec())
    }
}

/// The `ipfs add` options that decide the CID, plus pinning.
///
/// Every option is always sent explicitly, so Kubo's own defaults (CIDv0,
/// dag-pb leaves) never apply by accident: the CID Kubo returns is the one
/// our importer computes with the same [`ImportOptions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddOptions {
    /// `cid-version`.
    pub cid_version: CidVersion,
    /// `raw-leaves`.
    pub raw_leaves: bool,
    /// Fixed chunk size in bytes, sent as `chunker=size-N`.
    pub chunk_size: usize,
    /// `pin`: whether Kubo pins the added root.
    pub pin: bool,
}

impl Default for AddOptions {
    /// Our importer's defaults (CIDv1, raw leaves, 256 KiB), pinned.
    fn default() -> Self {
        AddOptions::from(&ImportOptions::default())
    }
}

impl From<&ImportOptions> for AddOptions {
    /// The Kubo options that give the CID our importer gives with `opts`
    /// (pinned).
    fn from(opts: &ImportOptions) -> Self {
        AddOptions {
            cid_version: opts.cid_version,
            raw_leaves: opts.raw_leaves,
            chunk_size: opts.chunk_size,
            pin: true,
        }
    }
}

/// A client of one Kubo node's RPC API.
#[derive(Debug, Clone)]
pub struct KuboRpc {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
}

impl KuboRpc {
    /// A client of the API at `api_base_url` (e.g. `http://127.0.0.1:5001`)
    /// with [`DEFAULT_TIMEOUT`].
    pub fn new(api_base_url: &str) -> Result<Self> {
        Self::with_timeout(api_base_url, DEFAULT_TIMEOUT)
    }

    /// A client of the API named by `IPFS_ACCELERATE_KUBO_API`, or of
    /// [`DEFAULT_API`] when it is unset or empty.
    pub fn from_env() -> Result<Self> {
        let url = std::env::var(API_ENV).ok().filter(|v| !v.trim().is_empty());
        Self::new(url.as_deref().unwrap_or(DEFAULT_API))
    }

    /// A client whose requests each fail after `timeout`.
    pub fn with_timeout(api_base_url: &str, timeout: Duration) -> Result<Self> {
        let base = api_base_url.trim().trim_end_matches('/').to_string();
        let bad = |reason: &str| {
            Error::InvalidOption(format!(
                "Kubo RPC API URL {api_base_url:?}: {reason} (expected e.g. {DEFAULT_API}; set {API_ENV})"
            ))
        };
        let parsed = reqwest::Url::parse(&base).map_err(|e| bad(&e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(bad("not an http(s) URL with a host"));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("ipfs-accelerate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::InvalidOption(format!("cannot set up the HTTP client: {e}")))?;
        Ok(KuboRpc { http, base, timeout })
    }

    /// The API base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Adds a file (`POST /api/v0/add`) and returns its root CID.
    ///
    /// Only single files are sent; a directory path is refused (import it
    /// with our importer and send its blocks, or use `ipfs add -r`).
    pub async fn add(&self, input: impl Into<AddInput>, opts: &AddOptions) -> Result<Cid> {
        let (name, data) = match input.into() {
            AddInput::Bytes(b) => ("data".to_string(), b),
            AddInput::Path(p) => {
                // Blocking reads (the crate's tokio has no `fs`): a local
                // file read is short next to the upload that follows.
                let meta = std::fs::metadata(&p).map_err(|e| Error::io(&p, e))?;
                if !meta.is_file() {
                    return Err(Error::InvalidOption(format!(
                        "{} is not a regular file; only single files can be added over Kubo RPC here",
                        p.display()
                    )));
                }
                let data = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
                (name, data)
            }
        };
        // A boundary must not occur in the body; one made of the data's own
        // hash cannot (short of a sha2-256 preimage).
        let boundary = format!("ipfs-accelerate-{}", cid_for(CidVersion::V1, RAW, &data));
        let body = multipart_file(&boundary, &name, &data);
        let query = [
            ("cid-version", if opts.cid_version == CidVersion::V0 { "0" } else { "1" }.to_string()),
            ("raw-leaves", opts.raw_leaves.to_string()),
            ("chunker", format!("size-{}", opts.chunk_size)),
            ("pin", opts.pin.to_string()),
            // No progress lines: one line per added entry, the root last.
            ("progress", "false".into()),
        ];
        let request = self
            .post("add")
            .query(&query)
            .header(reqwest::header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"))
            .body(body);
        let text = self.send("add", request).await?;
        let text = String::from_utf8_lossy(&text);
        // Kubo streams one JSON object per line; the root is the last one.
        let last = text.lines().rev().find(|l| !l.trim().is_empty()).ok_or_else(|| rpc_err("add", "empty response"))?;
        let entry: AddEntry = serde_json::from_str(last)
            .map_err(|e| rpc_err("add", format!("unexpected response line {last:?}: {e}")))?;
        if entry.kind.as_deref() == Some("error") {
            return Err(rpc_err("add", entry.message.unwrap_or_default()));
        }
        let hash = entry.hash.ok_or_else(|| rpc_err("add", format!("response line {last:?} has no Hash")))?;
        parse_cid(&hash)
    }

    /// Reads a file's bytes (`POST /api/v0/cat?arg=<cid>`).
    ///
    /// Kubo assembles the file, so these bytes are not checked against the
    /// CID here; fetch blocks with [`KuboRpc::block_get`] where that matters.
    ///
    /// A file whose stream breaks off part-way is refused: Kubo announces the
    /// size in `X-Content-Length` and reports late failures only in an HTTP
    /// trailer, which would otherwise pass for a shorter file.
    pub async fn cat(&self, cid: &Cid) -> Result<Vec<u8>> {
        let (headers, data) =
            self.send_with_headers("cat", self.post("cat").query(&[("arg", cid.to_string())])).await?;
        let announced = headers.get("x-content-length").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        match announced {
            Some(n) if n != data.len() as u64 => Err(rpc_err(
                "cat",
                format!("sent {} of the {n} bytes of {cid} (the stream broke off; check the daemon's log)", data.len()),
            )),
            _ => Ok(data),
        }
    }

    /// Reads one raw block (`POST /api/v0/block/get?arg=<cid>`) and returns
    /// it only if it hashes to `cid` ([`Error::HashMismatch`] otherwise).
    pub async fn block_get(&self, cid: &Cid) -> Result<Vec<u8>> {
        // Refuse hashes we cannot verify before asking Kubo at all.
        if cid.hash().code() != SHA2_256 {
            return Err(Error::UnsupportedHash { cid: Box::new(*cid), code: cid.hash().code() });
        }
        let data = self.send("block/get", self.post("block/get").query(&[("arg", cid.to_string())])).await?;
        verify(cid, &data)?;
        Ok(data)
    }

    /// Pins `cid` and everything under it (`POST /api/v0/pin/add?arg=<cid>`).
    pub async fn pin_add(&self, cid: &Cid) -> Result<()> {
        let request = self.post("pin/add").query(&[("arg", cid.to_string()), ("recursive", "true".into())]);
        let body = self.send("pin/add", request).await?;
        let pins: PinResponse = serde_json::from_slice(&body).map_err(|e| {
            rpc_err("pin/add", format!("unexpected response {:?}: {e}", String::from_utf8_lossy(&body)))
        })?;
        // Kubo echoes the pinned roots; a different answer means it pinned
        // something else.
        if pins.pins.iter().any(|p| parse_cid(p).map(|c| c.hash() == cid.hash()).unwrap_or(false)) {
            Ok(())
        } else {
            Err(rpc_err("pin/add", format!("response does not list {cid} among the pins: {:?}", pins.pins)))
        }
    }

    fn post(&self, endpoint: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}/api/v0/{endpoint}", self.base))
    }

    /// Sends a request and returns the body of a 2xx answer; anything else
    /// becomes an error naming the endpoint.
    async fn send(&self, endpoint: &str, request: reqwest::RequestBuilder) -> Result<Vec<u8>> {
        Ok(self.send_with_headers(endpoint, request).await?.1)
    }

    /// [`Self::send`], also returning the answer's headers.
    async fn send_with_headers(
        &self,
        endpoint: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::header::HeaderMap, Vec<u8>)> {
        let response = request.send().await.map_err(|e| self.transport_err(endpoint, &e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| self.transport_err(endpoint, &e))?;
        if status.is_success() {
            return Ok((headers, body.to_vec()));
        }
        let message = match serde_json::from_slice::<KuboError>(&body) {
            Ok(e) => e.message,
            Err(_) => format!("HTTP {status}: {}", String::from_utf8_lossy(&body).trim()),
        };
        Err(rpc_err(endpoint, message))
    }

    fn transport_err(&self, endpoint: &str, e: &reqwest::Error) -> Error {
        if e.is_connect() {
            Error::KuboUnreachable { api: self.base.clone(), reason: crate::gateway::client::describe(e) }
        } else if e.is_timeout() {
            rpc_err(endpoint, format!("timed out after {:?}", self.timeout))
        } else {
            rpc_err(endpoint, crate::gateway::client::describe(e))
        }
    }
}

fn rpc_err(endpoint: &str, message: impl Into<String>) -> Error {
    Error::KuboRpc { endpoint: format!("/api/v0/{endpoint}"), message: message.into() }
}

/// One file as the only part of a `multipart/form-data` body.
fn multipart_file(boundary: &str, name: &str, data: &[u8]) -> Vec<u8> {
    // Quotes and line breaks would end the header early.
    let name: String = name.chars().map(|c| if matches!(c, '"' | '\r' | '\n' | '\\') { '_' } else { c }).collect();
    let mut body = Vec::with_capacity(data.len() + 256);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

/// One line of `/api/v0/add`'s answer (or an error object in the stream).
#[derive(serde::Deserialize)]
struct AddEntry {
    #[serde(rename = "Hash")]
    hash: Option<String>,
    #[serde(rename = "Type")]
    kind: Option<String>,
    #[serde(rename = "Message")]
    message: Option<String>,
}

/// `/api/v0/pin/add`'s answer.
#[derive(serde::Deserialize)]
struct PinResponse {
    #[serde(rename = "Pins", default)]
    pins: Vec<String>,
}

/// Kubo's error body.
#[derive(serde::Deserialize)]
struct KuboError {
    #[serde(rename = "Message")]
    message: String,
}
