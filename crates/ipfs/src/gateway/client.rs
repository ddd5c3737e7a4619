//! Fetching verified blocks and DAGs from trustless gateways.
//!
//! Gateways are tried in the configured order. A gateway that fails, times
//! out, or sends bytes that do not hash to the requested CID is skipped and
//! the next one is tried; only when all have failed is an error returned,
//! naming the CID and what went wrong at each gateway.

use super::format::RAW_MEDIA_TYPE;
use super::GatewayStore;
use crate::block::{verify, SHA2_256};
use crate::car::MAX_BLOCK_SIZE;
use crate::error::{Error, GatewayFailure, Result};
use cid::Cid;
use std::time::Duration;

/// Well-known public trustless gateways, for users who opt in to fetching
/// over the internet (the default list is empty: offline). They are run by
/// the IPFS community; every block they send is verified here all the same.
///
/// ```
/// use ipfs_accelerate_ipfs::gateway::{GatewayConfig, PUBLIC_GATEWAYS};
/// let online = GatewayConfig {
///     gateways: PUBLIC_GATEWAYS.iter().map(|g| g.to_string()).collect(),
///     ..GatewayConfig::default()
/// };
/// assert!(!online.gateways.is_empty());
/// ```
pub const PUBLIC_GATEWAYS: &[&str] = &[
    // Serves only verifiable responses (raw blocks and CARs).
    "https://trustless-gateway.link",
    "https://ipfs.io",
    "https://dweb.link",
];

/// How long one gateway may take before the next is tried, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Which gateways to use and how long to wait for each.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Base URLs (`http(s)://host[:port][/prefix]`), tried in order. Empty
    /// means offline: only the local store is used.
    pub gateways: Vec<String>,
    /// Limit for one raw-block request, and for each pause between chunks
    /// of a CAR stream (a large DAG may take longer as long as it flows).
    pub timeout: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig { gateways: Vec::new(), timeout: DEFAULT_TIMEOUT }
    }
}

/// What [`GatewayClient::fetch_dag`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// Blocks received from gateways and newly stored.
    pub blocks_fetched: usize,
    /// Blocks of the DAG that were already in the store.
    pub blocks_present: usize,
    /// Bytes of the newly stored blocks.
    pub bytes_fetched: u64,
    /// Blocks fetched one at a time (after a CAR broke or when resuming).
    pub raw_requests: usize,
}

/// A client of one or more trustless gateways.
#[derive(Debug, Clone)]
pub struct GatewayClient {
    pub(super) http: reqwest::Client,
    pub(super) gateways: Vec<String>,
    pub(super) timeout: Duration,
}

impl GatewayClient {
    /// Builds a client; fails on a gateway URL that is not http(s).
    pub fn new(config: GatewayConfig) -> Result<Self> {
        let mut gateways = Vec::with_capacity(config.gateways.len());
        for url in config.gateways {
            let trimmed = url.trim().trim_end_matches('/').to_string();
            let parsed = reqwest::Url::parse(&trimmed)
                .map_err(|e| Error::InvalidGatewayUrl { url: url.clone(), reason: e.to_string() })?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                return Err(Error::InvalidGatewayUrl { url, reason: "not an http(s) URL with a host".into() });
            }
            if parsed.query().is_some() || parsed.fragment().is_some() {
                return Err(Error::InvalidGatewayUrl { url, reason: "a base URL takes no query or fragment".into() });
            }
            gateways.push(trimmed);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .user_agent(concat!("ipfs-accelerate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::InvalidOption(format!("cannot set up the HTTP client: {e}")))?;
        Ok(GatewayClient { http, gateways, timeout: config.timeout })
    }

    /// The gateways in the order they are tried.
    pub fn gateways(&self) -> &[String] {
        &self.gateways
    }

    /// Fetches one block with `?format=raw` and checks that its bytes hash
    /// to `cid`; a gateway sending other bytes is skipped.
    pub async fn fetch_block(&self, cid: &Cid) -> Result<Vec<u8>> {
        check_hash_supported(cid)?;
        if self.gateways.is_empty() {
            return Err(Error::NoGateways { cid: Box::new(*cid) });
        }
        let mut failures = Vec::new();
        for gateway in &self.gateways {
            match self.try_block(gateway, cid).await {
                Ok(data) => return Ok(data),
                Err(reason) => {
                    tracing::debug!(%cid, gateway, reason, "gateway failed; trying the next one");
                    failures.push(GatewayFailure { gateway: gateway.clone(), reason });
                }
            }
        }
        Err(Error::GatewayFetch { cid: Box::new(*cid), failures })
    }

    async fn try_block(&self, gateway: &str, cid: &Cid) -> Result<Vec<u8>, String> {
        let request = async {
            let mut response = self
                .http
                .get(format!("{gateway}/ipfs/{cid}?format=raw"))
                .header(reqwest::header::ACCEPT, RAW_MEDIA_TYPE)
                .send()
                .await
                .map_err(|e| describe(&e))?;
            if !response.status().is_success() {
                return Err(format!("HTTP {}", response.status()));
            }
            // Read at most one block's worth: a gateway cannot make us buffer
            // more than the largest block IPFS transfers.
            let mut data = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
                if (data.len() + chunk.len()) as u64 > MAX_BLOCK_SIZE {
                    return Err(format!("response is larger than the {MAX_BLOCK_SIZE}-byte block limit"));
                }
                data.extend_from_slice(&chunk);
            }
            Ok(data)
        };
        let data = tokio::time::timeout(self.timeout, request)
            .await
            .map_err(|_| format!("timed out after {:?}", self.timeout))??;
        verify(cid, &data).map_err(|_| "sent bytes that do not hash to the CID (rejected)".to_string())?;
        Ok(data)
    }

    /// Fetches the whole DAG under `root` into `store`, verifying every
    /// block, and returns what was done.
    ///
    /// When the root is missing, the DAG is first asked for as one CAR
    /// stream (blocks are verified and stored as they arrive, and a block
    /// that is not part of the DAG stops the stream). Then the DAG is walked
    /// in the store and every block still missing — because the store held
    /// part of it already, or a CAR broke off — is fetched on its own. So a
    /// repeated call after an interruption only transfers what is missing.
    pub async fn fetch_dag<S>(&self, root: &Cid, store: &S) -> Result<FetchReport>
    where
        S: GatewayStore + Clone + 'static,
    {
        super::dag_fetch::fetch_dag(self, root, store).await
    }
}

/// Refuses CIDs whose hash cannot be verified before any request is made.
fn check_hash_supported(cid: &Cid) -> Result<()> {
    let code = cid.hash().code();
    if code == SHA2_256 {
        Ok(())
    } else {
        Err(Error::UnsupportedHash { cid: Box::new(*cid), code })
    }
}

/// A short reason for a transport error, with its cause chain (reqwest's
/// own message alone often just says "error sending request").
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_timeout() {
        text.push_str(" (timed out)");
    }
    text
}
