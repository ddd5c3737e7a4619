//! Browser workers for ipfs-accelerate: the same models, run inside real
//! browsers on WebGPU and WebNN.
//!
//! * [`discover`] and [`launch`]: find installed browsers (Chrome, Chromium,
//!   Edge, Firefox) and start them headless with the flags each needs, one
//!   profile directory per worker slot.
//! * `web/`: the worker page and its JS executors (plain ES modules, embedded
//!   in the binary): `webgpu.js` runs host-compiled plans with the same WGSL
//!   kernels as the native backend, `webnn.js` lowers the graph IR to
//!   `MLGraphBuilder`.
#![deny(missing_docs)]

pub mod bridge;
pub mod chunks;
pub mod discover;
pub mod engine;
mod error;
pub mod launch;
pub mod protocol;

pub use bridge::{Bridge, BridgeConfig, LoadStats, WorkerHandle};
pub use engine::{BrowserBackend, BrowserEngine, BrowserLaunch, DEFAULT_BRIDGE_PORT, MANUAL};
pub use error::{BridgeError, Result};
