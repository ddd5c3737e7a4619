//! Choosing the backend a model runs on.

use crate::engine::{Engine, GpuEngine};
use crate::error::{Error, Result};
use ipfs_accelerate_gpu::{GpuContext, ADAPTER_ENV};
use ipfs_accelerate_tensor::CpuBackend;

/// What the user asked for (`--backend`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// The best backend available here.
    #[default]
    Auto,
    /// The CPU backend.
    Cpu,
    /// The native WebGPU backend (wgpu: Vulkan, Metal or DX12).
    WebGpu,
}

/// A backend that can actually run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// The multi-threaded CPU backend.
    Cpu,
    /// The native WebGPU backend.
    WebGpu,
}

impl BackendKind {
    /// Name shown to users and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::WebGpu => "webgpu",
        }
    }
}

/// Adapter types `auto` runs on. Software adapters (Mesa's llvmpipe,
/// SwiftShader) are real WebGPU but far slower than the CPU backend, so
/// `auto` leaves them to an explicit `--backend webgpu`.
const HARDWARE_ADAPTERS: &[&str] = &["DiscreteGpu", "IntegratedGpu", "VirtualGpu"];

impl BackendChoice {
    /// Parses `auto`, `cpu` or `webgpu`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "cpu" => Ok(BackendChoice::Cpu),
            "webgpu" | "wgpu" => Ok(BackendChoice::WebGpu),
            other => Err(Error::InvalidOption(format!("unknown backend {other:?}: use auto, cpu or webgpu"))),
        }
    }

    /// Opens the engine this choice runs on, with a one-line notice when
    /// `auto` wanted a GPU and fell back to the CPU.
    ///
    /// `webgpu` fails when no adapter can be opened. `auto` takes WebGPU
    /// when a hardware GPU adapter exists (or `IPFS_ACCELERATE_ADAPTER`
    /// names one), else the CPU.
    pub fn open(self) -> Result<(Engine, Option<String>)> {
        let cpu = || Engine::Cpu(CpuBackend::new());
        match self {
            BackendChoice::Cpu => Ok((cpu(), None)),
            BackendChoice::WebGpu => Ok((Engine::WebGpu(Box::new(GpuEngine::new()?)), None)),
            BackendChoice::Auto => {
                let wanted = std::env::var_os(ADAPTER_ENV).is_some()
                    || GpuContext::adapters().iter().any(|a| HARDWARE_ADAPTERS.contains(&a.device_type.as_str()));
                if !wanted {
                    return Ok((cpu(), None));
                }
                match GpuEngine::new() {
                    Ok(gpu) => Ok((Engine::WebGpu(Box::new(gpu)), None)),
                    Err(e) => Ok((cpu(), Some(format!("notice: the GPU could not be used ({e}); running on the CPU")))),
                }
            }
        }
    }
}
