//! Native WebGPU backend for ipfs-accelerate: adapter/device selection on
//! [wgpu](https://wgpu.rs) and the WGSL kernel library that the browser WebGPU executor
//! runs unchanged.
//!
//! * [`GpuContext`] finds adapters ([`GpuContext::adapters`] for `devices`), picks one
//!   (high-performance by default, `IPFS_ACCELERATE_ADAPTER=<index|name>` to override)
//!   and opens a device with the adapter's own limits and `shader-f16` when present.
//! * [`kernels`] is the kernel library: one WGSL file per op family under
//!   `crates/gpu/kernels/`, each with a stable id, a `Params` uniform (its Rust twin in
//!   [`params`]) and `override` constants for variants. [`KernelRunner`] compiles
//!   pipelines (cached per id + constants), makes buffers, dispatches and reads back.
//!
//! On a machine without a GPU, Mesa's software Vulkan driver (Debian
//! `mesa-vulkan-drivers libvulkan1`, adapter "llvmpipe") runs everything, slowly.
//!
//! ```no_run
//! use ipfs_accelerate_gpu::{params::UnaryParams, params::UnaryOp, GpuContext, KernelRunner, Launch};
//!
//! let ctx = GpuContext::new()?;
//! let runner = KernelRunner::new(&ctx);
//! let x = [-1.0f32, 0.0, 2.0];
//! let params = UnaryParams::new(3);
//! let y = runner.run_f32(&Launch {
//!     kernel: UnaryParams::KERNEL,
//!     constants: &[("OP", UnaryOp::Relu as u32 as f64)],
//!     uniform: bytemuck::bytes_of(&params),
//!     inputs: &[Some(bytemuck::cast_slice(&x))],
//!     output_bytes: 12,
//!     workgroups: ipfs_accelerate_gpu::params::linear_workgroups(3, 256),
//! })?;
//! assert_eq!(y, [0.0, 0.0, 2.0]);
//! # Ok::<(), ipfs_accelerate_gpu::GpuError>(())
//! ```
#![deny(missing_docs)]

mod context;
mod error;
pub mod executor;
pub mod kernels;
pub mod llm;
pub mod params;
pub mod pipeline_cache;
pub mod plan;

/// The bytemuck the `Params` uniforms are written with (`bytemuck::bytes_of`).
pub use bytemuck;
/// The wgpu this crate is built on, so dependents use the same version.
pub use wgpu;

pub use context::{AdapterReport, AdapterSelector, GpuContext, KeyLimits, ADAPTER_ENV};
pub use error::{GpuError, Result};
pub use executor::{weight_tensor, DeviceWeights, LoadedPlan};
pub use kernels::{kernel, BindingKind, BindingSpec, CompiledKernel, KernelRunner, KernelSpec, Launch, KERNELS};
pub use pipeline_cache::PipelineCacheStatus;
pub use plan::{compile, compile_with, CompileOptions, Plan};
