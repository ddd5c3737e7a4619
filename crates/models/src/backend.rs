//! Choosing the backend a model runs on.

use crate::engine::{CpuEngine, Engine, GpuEngine};
use crate::error::{Error, Result};
use ipfs_accelerate_gpu::{GpuContext, ADAPTER_ENV};

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
    /// WebGPU inside a browser worker.
    BrowserWebGpu,
    /// WebNN inside a browser worker.
    BrowserWebNn,
}

impl BackendKind {
    /// Name shown to users and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::WebGpu => "webgpu",
            BackendKind::BrowserWebGpu => "browser-webgpu",
            BackendKind::BrowserWebNn => "browser-webnn",
        }
    }
}

/// Numeric precision of the weights (`--precision`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// float32 everywhere.
    #[default]
    F32,
    /// float16 weights on the WebGPU backend (where the adapter has
    /// `shader-f16`), float32 arithmetic; the CPU backend stays float32.
    F16,
}

impl Precision {
    /// Parses `32` or `16` (also `f32`, `f16`).
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "32" | "f32" | "float32" => Ok(Precision::F32),
            "16" | "f16" | "float16" => Ok(Precision::F16),
            other => Err(Error::InvalidOption(format!("unknown precision {other:?}: use 32 or 16"))),
        }
    }

    /// `32` or `16`.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "32",
            Precision::F16 => "16",
        }
    }
}

/// Adapter types `auto` runs on. Software adapters (Mesa's llvmpipe,
/// SwiftShader) are real WebGPU but far slower than the CPU backend, so
/// `auto` leaves them to an explicit `--backend webgpu`.
const HARDWARE_ADAPTERS: &[&str] = &["DiscreteGpu", "IntegratedGpu", "VirtualGpu"];

/// Whether `auto` should try WebGPU: a hardware adapter exists, or
/// `IPFS_ACCELERATE_ADAPTER` names one.
pub(crate) fn auto_wants_gpu() -> bool {
    std::env::var_os(ADAPTER_ENV).is_some()
        || GpuContext::adapters().iter().any(|a| HARDWARE_ADAPTERS.contains(&a.device_type.as_str()))
}

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

    /// Opens the engine this choice runs on at `precision`, with a one-line
    /// notice when something asked for could not be had: `auto` wanted a
    /// GPU and fell back to the CPU, or float16 is unavailable and float32
    /// runs instead.
    ///
    /// `webgpu` fails when no adapter can be opened. `auto` takes WebGPU
    /// when a hardware GPU adapter exists (or `IPFS_ACCELERATE_ADAPTER`
    /// names one), else the CPU.
    pub fn open(self, precision: Precision) -> Result<(Engine, Option<String>)> {
        let cpu = |notice: Option<String>| {
            let f16_notice = (precision == Precision::F16).then(|| {
                "notice: --precision 16 applies to the webgpu backend; the cpu backend runs float32".to_string()
            });
            (Engine::Cpu(CpuEngine::new()), notice.or(f16_notice))
        };
        let gpu = |engine: GpuEngine| {
            let notice = (precision == Precision::F16 && !engine.f16_weights())
                .then(|| "notice: this GPU adapter has no shader-f16, so --precision 16 runs float32".to_string());
            (Engine::WebGpu(Box::new(engine)), notice)
        };
        match self {
            BackendChoice::Cpu => Ok(cpu(None)),
            BackendChoice::WebGpu => Ok(gpu(GpuEngine::new(precision)?)),
            BackendChoice::Auto => {
                if !auto_wants_gpu() {
                    return Ok(cpu(None));
                }
                match GpuEngine::new(precision) {
                    Ok(engine) => Ok(gpu(engine)),
                    Err(e) => Ok(cpu(Some(format!("notice: the GPU could not be used ({e}); running on the CPU")))),
                }
            }
        }
    }
}
