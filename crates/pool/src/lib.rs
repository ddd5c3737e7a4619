//! The resource pool: turns a set of workers — native CPU and WebGPU
//! backends, browser pages, remote servers — into one reliable accelerator.
//!
//! * [`circuit`]: a per-worker circuit breaker (closed / open / half-open)
//!   driven by an injectable clock.
//! * [`config`]: `pool.toml`, the file that lists a pool's workers and settings.
//! * [`journal`]: the SQLite journal of workers, placements, requests and
//!   one row per inference, and the statistics `ipfs-accelerate stats` shows.
//! * [`queue`]: the bounded priority queue in front of the workers; a full
//!   queue answers "busy" instead of growing.
//! * [`worker`]: the `Worker` trait and the workers in this process (CPU,
//!   native WebGPU, a browser page's engine).
//! * [`pool`]: dispatchers that pick the best worker (capability, circuit,
//!   load, measured latency, loaded model) and retry elsewhere on failure,
//!   so every request gets exactly one answer; a health thread that restarts
//!   dead workers and closes idle browsers; sharded pipeline requests.
//! * [`latency`]: the measured latencies and the config's priors.
//! * [`remote_worker`]: a worker that is another server (ipfs-accelerate,
//!   OpenAI-compatible or text-embeddings-inference) reached over HTTP.
#![deny(missing_docs)]

pub mod browser_worker;
pub mod circuit;
pub mod config;
mod dispatch;
mod health;
pub mod journal;
pub mod latency;
pub mod pool;
pub mod queue;
pub mod remote_worker;
mod shard;
pub mod worker;

pub use browser_worker::BrowserWorker;
pub use latency::Prior;
pub use pool::{Answer, Health, Pool, PoolConfig, PoolError, Ticket, WorkerStatus};
pub use remote_worker::{RemoteConfig, RemoteProtocol, RemoteWorker};
pub use worker::{EngineWorker, LocalWorker, Worker, WorkerError, WorkerInfo, WorkerKind};
