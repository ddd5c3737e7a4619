//! The crate's one error type.

use cid::Cid;
use std::path::PathBuf;

/// Everything that can go wrong while importing, storing, exporting or
/// transferring content-addressed data.
///
/// Each message says what is wrong and, where the caller can act on it, what
/// to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation on a file or directory failed.
    #[error("I/O error on {path}: {source} (check that the path exists and is readable/writable)")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Reading from or writing to a stream (not a named file) failed.
    #[error("I/O error while {context}: {source}")]
    Stream {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A string is not a valid CID.
    #[error("invalid CID {input:?}: {reason} (expected a CIDv0 `Qm…` or a multibase CIDv1 such as `bafy…`)")]
    InvalidCid {
        /// The text that failed to parse.
        input: String,
        /// Why it failed.
        reason: String,
    },

    /// A CID names a codec this crate cannot interpret.
    #[error("CID {cid} has codec 0x{codec:x}, which cannot be read here (expected {expected})")]
    UnsupportedCodec {
        /// The CID.
        cid: Box<Cid>,
        /// Its multicodec code.
        codec: u64,
        /// The codecs the operation accepts.
        expected: &'static str,
    },

    /// A CID uses a hash function this crate cannot verify.
    #[error("CID {cid} uses multihash 0x{code:x}, which cannot be verified here (only sha2-256 0x12 is supported)")]
    UnsupportedHash {
        /// The CID.
        cid: Box<Cid>,
        /// Its multihash code.
        code: u64,
    },

    /// Block bytes do not hash to the CID they were stored or sent under.
    #[error("block {cid} is corrupt: its bytes do not hash to its CID (discard it and fetch it again)")]
    HashMismatch {
        /// The CID the bytes claimed to be.
        cid: Box<Cid>,
    },

    /// A block stored on disk no longer matches its CID.
    #[error("stored block {cid} at {path} is corrupt (its bytes do not hash to its CID); delete the file and fetch or re-import the block")]
    CorruptBlock {
        /// The block.
        cid: Box<Cid>,
        /// The file that holds it.
        path: PathBuf,
    },

    /// A block needed to finish an operation is not available.
    #[error("block {cid} not found (import or fetch it first)")]
    BlockNotFound {
        /// The missing block.
        cid: Box<Cid>,
    },

    /// A dag-pb block could not be decoded.
    #[error("block {cid} is not valid dag-pb: {reason}")]
    InvalidDagPb {
        /// The block.
        cid: Box<Cid>,
        /// What is wrong with it.
        reason: String,
    },

    /// A dag-pb block's Data field is not a valid UnixFS message.
    #[error("block {cid} has invalid UnixFS data: {reason}")]
    InvalidUnixFs {
        /// The block.
        cid: Box<Cid>,
        /// What is wrong with it.
        reason: String,
    },

    /// A UnixFS node has a type the operation cannot handle.
    #[error("{cid} is a UnixFS {found}, but {expected} was expected")]
    WrongNodeType {
        /// The node.
        cid: Box<Cid>,
        /// What was found (e.g. "directory").
        found: &'static str,
        /// What the operation needs (e.g. "a file").
        expected: &'static str,
    },

    /// A directory entry name is unsafe to write to disk.
    #[error("refusing directory entry {name:?} in {parent}: {reason}")]
    UnsafeEntryName {
        /// The directory that holds the entry.
        parent: Box<Cid>,
        /// The offending name.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },

    /// An option has an invalid value.
    #[error("invalid option: {0}")]
    InvalidOption(String),

    /// A CAR stream is malformed.
    #[error("invalid CAR data at byte {offset}: {reason}")]
    InvalidCar {
        /// Byte offset in the stream where the problem was detected.
        offset: u64,
        /// What is wrong.
        reason: String,
    },

    /// A DAG is deeper or larger than the exporter accepts.
    #[error("DAG under {cid} is too deep (more than {limit} levels); refusing to follow it")]
    TooDeep {
        /// The root being exported.
        cid: Box<Cid>,
        /// The depth limit.
        limit: usize,
    },

    /// A file's size fields disagree with its content.
    #[error("file node {cid} is inconsistent: {reason}")]
    InconsistentFile {
        /// The node.
        cid: Box<Cid>,
        /// What disagrees.
        reason: String,
    },

    /// No configured gateway could deliver a verified block.
    #[error("could not fetch {cid} from any gateway: {} (check the gateway URLs, that they are reachable, and that one of them has this CID)", list_failures(.failures))]
    GatewayFetch {
        /// The CID that was requested.
        cid: Box<Cid>,
        /// What went wrong at each gateway, in the order they were tried.
        failures: Vec<GatewayFailure>,
    },

    /// A block is missing locally and there is no gateway to fetch it from.
    #[error("block {cid} is not in the local store and no gateways are configured (offline); configure a trustless gateway URL to fetch it")]
    NoGateways {
        /// The missing block.
        cid: Box<Cid>,
    },

    /// Garbage collection could not get the store to itself: another
    /// process is adding or fetching blocks it has not pinned yet.
    #[error("the block store {path} is being written by another process (an add, import or fetch in progress) and garbage collection would delete its blocks before it pins them; waited {waited:?}, try again when it has finished")]
    StoreBusy {
        /// The store's directory.
        path: PathBuf,
        /// How long garbage collection waited.
        waited: std::time::Duration,
    },

    /// A configured gateway URL cannot be used.
    #[error("invalid gateway URL {url:?}: {reason} (expected an http:// or https:// base URL such as http://127.0.0.1:8080)")]
    InvalidGatewayUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Nothing answers at the configured Kubo RPC API address.
    #[error("cannot reach the Kubo RPC API at {api}: {reason} (is `ipfs daemon` running? set IPFS_ACCELERATE_KUBO_API to its RPC address)")]
    KuboUnreachable {
        /// The API base URL that was tried.
        api: String,
        /// The transport error.
        reason: String,
    },

    /// Kubo answered an RPC call with an error, timed out, or sent a
    /// response that cannot be understood.
    #[error("Kubo RPC {endpoint} failed: {message}")]
    KuboRpc {
        /// The endpoint, e.g. `/api/v0/add`.
        endpoint: String,
        /// Kubo's own error message, or what was wrong with its answer.
        message: String,
    },
}

/// One gateway's failure to deliver a block or DAG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayFailure {
    /// The gateway's base URL.
    pub gateway: String,
    /// What went wrong there.
    pub reason: String,
}

fn list_failures(failures: &[GatewayFailure]) -> String {
    if failures.is_empty() {
        return "no gateway was tried".into();
    }
    failures.iter().map(|f| format!("{}: {}", f.gateway, f.reason)).collect::<Vec<_>>().join("; ")
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
