//! The IPFS Trustless Gateway over HTTP: a server that hands out verifiable
//! blocks and CARs, and a client that fetches them from a list of gateways
//! and checks every byte against its CID
//! (<https://specs.ipfs.tech/http-gateways/trustless-gateway/>).
//!
//! - [`server`]: `GET|HEAD /ipfs/{cid}` as a reusable axum [`axum::Router`]
//!   over any [`BlockSource`], answering `?format=raw` /
//!   `Accept: application/vnd.ipld.raw` with one block and `?format=car` /
//!   `Accept: application/vnd.ipld.car` with a CAR v1 of the whole DAG
//!   (depth-first, each block once), streamed as it is read.
//! - [`client`]: [`GatewayClient`] tries its gateways in order with a
//!   timeout each, rejects any block whose bytes do not hash to its CID, and
//!   fetches whole DAGs into a store, resuming where a previous or broken
//!   transfer stopped.
//!
//! Trust never moves to the gateway: the server only serves blocks the store
//! has verified, and the client verifies again whatever arrives.
//!
//! ```no_run
//! # async fn demo() -> ipfs_accelerate_ipfs::Result<()> {
//! use ipfs_accelerate_ipfs::gateway::{GatewayClient, GatewayConfig};
//! use ipfs_accelerate_ipfs::{parse_cid, FsBlockstore};
//! let store = FsBlockstore::open("/tmp/blocks")?;
//! let client = GatewayClient::new(GatewayConfig {
//!     gateways: vec!["http://127.0.0.1:8080".into()],
//!     ..GatewayConfig::default()
//! })?;
//! let root = parse_cid("bafkreieyfpmvuxeupeprndlgh5m2hrztl2gjko5l4l4olzolfpux2anyoa")?;
//! let report = client.fetch_dag(&root, &store).await?;
//! println!("{} blocks fetched", report.blocks_fetched);
//! # Ok(()) }
//! ```

pub mod client;
mod dag_fetch;
pub mod format;
pub mod server;
mod stream_io;

pub use client::{FetchReport, GatewayClient, GatewayConfig, DEFAULT_TIMEOUT, PUBLIC_GATEWAYS};
pub use server::{router, routes, SharedSource};

use crate::blockstore::FsBlockstore;
use crate::error::Result;
use crate::exporter::BlockSource;
use cid::Cid;

/// A store the gateway client can fill: it reads verified blocks (as a
/// [`BlockSource`]), says cheaply whether a block is present, and stores
/// blocks through a shared reference so fetches can run on worker threads.
pub trait GatewayStore: BlockSource + Send + Sync {
    /// True when the block is stored (its bytes are checked on read).
    fn contains(&self, cid: &Cid) -> bool;
    /// Stores a block; implementations must refuse bytes that do not hash to
    /// `cid`.
    fn store(&self, cid: &Cid, data: &[u8]) -> Result<()>;
}

impl GatewayStore for FsBlockstore {
    fn contains(&self, cid: &Cid) -> bool {
        self.has(cid)
    }

    fn store(&self, cid: &Cid, data: &[u8]) -> Result<()> {
        self.put(cid, data)
    }
}
