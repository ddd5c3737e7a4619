//! Content addressing for ipfs-accelerate, byte-for-byte identical to Kubo's
//! `ipfs add`.
//!
//! Models are UnixFS directories named by their root CID (see
//! `DESIGN.md`). For a CID computed here to be the CID Kubo or Helia compute
//! for the same bytes, every encoding choice follows Kubo (boxo's importer):
//!
//! - [`importer`]: fixed-size chunks (256 KiB by default), a balanced DAG of
//!   at most 174 links per node, raw leaves with CIDv1 by default or Kubo's
//!   legacy CIDv0 DAG, directories as dag-pb UnixFS Directory nodes, HAMT
//!   sharded (murmur3, fanout 256) above Kubo's 256 KiB threshold.
//! - [`exporter`]: reads files and directory trees back from any
//!   [`exporter::BlockSource`], checking every block's hash, and refuses
//!   entry names that could escape the target directory.
//! - [`blockstore`]: one file per block on disk, atomic writes, hashes
//!   verified on read, pins and garbage collection.
//! - [`car`]: CAR v1 archives, every block verified on read.
//! - [`registry`]: human-readable model names for root CIDs, in `registry.json`.
//! - [`gateway`]: the IPFS Trustless Gateway over HTTP — an axum router
//!   serving raw blocks and CARs, and a client that fetches from several
//!   gateways in order, verifying every block and resuming broken transfers.
//!
//! Blocks flow through two small traits — [`importer::BlockSink`] and
//! [`exporter::BlockSource`] — so the same importer feeds a blockstore, a
//! CAR file or a hash-only dry run.
#![deny(missing_docs)]

pub mod block;
pub mod blockstore;
pub mod car;
pub mod dagpb;
pub mod error;
pub mod exporter;
pub mod gateway;
pub mod importer;
pub mod kubo_rpc;
pub mod memory;
pub mod model_cache;
pub mod registry;
pub mod unixfs;
pub mod varint;

pub use block::{cid_for, parse_cid, verify, CidVersion};
pub use blockstore::FsBlockstore;
pub use cid::Cid;
pub use error::{Error, Result};
pub use exporter::{cat, export_to, BlockSource};
pub use importer::{import_file, import_path, BlockSink, ImportOptions, Imported};
pub use kubo_rpc::KuboRpc;
pub use memory::MemoryStore;
