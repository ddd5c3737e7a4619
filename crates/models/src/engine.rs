//! Where a model's graphs run: the CPU backend, or the native WebGPU backend
//! with a cache of compiled plans.
//!
//! Models build a [`Graph`] for each input shape and hand it here with the
//! inputs. The CPU backend compiles and runs it directly; the WebGPU engine
//! compiles it once per shape into a plan (`ipfs_accelerate_gpu::compile`),
//! loads it (pipelines, buffers, bind groups) and keeps the most recent
//! plans, while the model's weights are uploaded once and shared by all of
//! them.

use crate::backend::{BackendKind, Precision};
use crate::error::{Error, Result};
use ipfs_accelerate_gpu::{compile_with, CompileOptions, DeviceWeights, GpuContext, KernelRunner, LoadedPlan};
use ipfs_accelerate_tensor::{CpuBackend, Graph, Tensor, Weights};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// How many compiled plans (input shapes) the WebGPU engine keeps.
pub const PLAN_CACHE_SIZE: usize = 16;

/// A backend that runs graphs.
pub enum Engine {
    /// The multi-threaded CPU backend.
    Cpu(CpuBackend),
    /// The native WebGPU backend.
    WebGpu(Box<GpuEngine>),
    /// A backend implemented outside this crate (browser workers).
    External(Box<dyn GraphRunner>),
}

/// A backend outside this crate that runs graphs: implemented by the
/// browser crate's workers, so models run there without knowing browsers.
pub trait GraphRunner: Send + Sync {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;
    /// A one-line description (backend, browser, adapter).
    fn describe(&self) -> String;
    /// Runs the graph `build` makes for `shape_key` on `inputs`, returning
    /// the outputs in the graph's order; `build` is called only when no
    /// compiled form for `shape_key` is loaded yet.
    fn run(
        &self,
        shape_key: &[usize],
        build: &mut dyn FnMut() -> Result<(Graph, Weights)>,
        inputs: &[(&str, &Tensor)],
    ) -> Result<Vec<Tensor>>;
}

impl Engine {
    /// Which backend this is.
    pub fn kind(&self) -> BackendKind {
        match self {
            Engine::Cpu(_) => BackendKind::Cpu,
            Engine::WebGpu(_) => BackendKind::WebGpu,
            Engine::External(runner) => runner.kind(),
        }
    }

    /// A one-line description: the backend, and the adapter for WebGPU.
    pub fn describe(&self) -> String {
        match self {
            Engine::Cpu(_) => format!("cpu ({} threads)", rayon::current_num_threads()),
            Engine::WebGpu(gpu) => {
                let r = gpu.runner.context().report();
                let weights = if gpu.f16_weights() { ", f16 weights" } else { "" };
                format!("webgpu ({}, {}, {}{weights})", r.name, r.backend, r.device_type)
            }
            Engine::External(runner) => runner.describe(),
        }
    }

    /// Whether models should send padded batches with an attention mask (so
    /// one compiled graph serves many batch shapes) rather than packed ones:
    /// true everywhere but the CPU, which computes nothing on padding.
    pub fn prefers_padded(&self) -> bool {
        !matches!(self, Engine::Cpu(_))
    }

    /// Compiled plans kept (always 0 on the CPU, which compiles per call).
    pub fn cached_plans(&self) -> usize {
        match self {
            Engine::Cpu(_) | Engine::External(_) => 0,
            Engine::WebGpu(gpu) => gpu.plans.lock().unwrap_or_else(|p| p.into_inner()).len(),
        }
    }

    /// Runs the graph `build` makes for `shape_key` on `inputs`. The WebGPU
    /// engine calls `build` only when no plan for `shape_key` is cached.
    pub fn run(
        &self,
        shape_key: &[usize],
        build: impl FnOnce() -> Result<(Graph, Weights)>,
        inputs: &[(&str, &Tensor)],
    ) -> Result<Vec<Tensor>> {
        match self {
            Engine::Cpu(cpu) => {
                let (graph, weights) = build()?;
                Ok(cpu.compile(&graph, &weights)?.run(inputs)?)
            }
            Engine::WebGpu(gpu) => gpu.run(shape_key, build, inputs),
            Engine::External(runner) => {
                let mut build = Some(build);
                let mut once =
                    || build.take().map(|b| b()).unwrap_or_else(|| Err(Error::Backend("graph built twice".into())));
                runner.run(shape_key, &mut once, inputs)
            }
        }
    }
}

/// The WebGPU engine: a device, the model's weights on it, and recent plans.
pub struct GpuEngine {
    runner: KernelRunner,
    options: CompileOptions,
    weights: DeviceWeights,
    /// Most recently used last.
    plans: Mutex<VecDeque<(Vec<usize>, Arc<LoadedPlan>)>>,
}

impl GpuEngine {
    /// Opens the adapter `GpuContext::new` selects (`IPFS_ACCELERATE_ADAPTER`);
    /// at [`Precision::F16`] the weights are stored as float16 when the
    /// adapter has `shader-f16` (see [`GpuEngine::f16_weights`]).
    pub fn new(precision: Precision) -> Result<Self> {
        let ctx = GpuContext::new().map_err(gpu_error)?;
        let options = CompileOptions {
            f16_weights: precision == Precision::F16 && ctx.has_shader_f16(),
            // Weights larger than one binding are split to fit this device.
            max_binding_bytes: Some(ctx.limits().max_storage_buffer_binding_size),
        };
        Ok(GpuEngine {
            runner: KernelRunner::new(&ctx),
            options,
            weights: DeviceWeights::new(),
            plans: Mutex::default(),
        })
    }

    /// Whether weights are stored as float16.
    pub fn f16_weights(&self) -> bool {
        self.options.f16_weights
    }

    /// The kernel runner (device, pipelines).
    pub fn runner(&self) -> &KernelRunner {
        &self.runner
    }

    fn run(
        &self,
        shape_key: &[usize],
        build: impl FnOnce() -> Result<(Graph, Weights)>,
        inputs: &[(&str, &Tensor)],
    ) -> Result<Vec<Tensor>> {
        let plan = self.plan(shape_key, build)?;
        plan.run(&self.runner, inputs).map_err(gpu_error)
    }

    /// The loaded plan for `shape_key`, compiling it on a miss.
    fn plan(&self, shape_key: &[usize], build: impl FnOnce() -> Result<(Graph, Weights)>) -> Result<Arc<LoadedPlan>> {
        {
            let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = plans.iter().position(|(k, _)| k == shape_key) {
                let hit = plans.remove(i).expect("found");
                let plan = hit.1.clone();
                plans.push_back(hit);
                return Ok(plan);
            }
        }
        let (graph, weights) = build()?;
        let compiled = compile_with(&graph, self.options).map_err(gpu_error)?;
        let loaded = Arc::new(LoadedPlan::load(&self.runner, &compiled, &weights, &self.weights).map_err(gpu_error)?);
        tracing::debug!(?shape_key, dispatches = loaded.dispatch_count(), "compiled a webgpu plan");
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if plans.len() >= PLAN_CACHE_SIZE {
            plans.pop_front();
        }
        plans.push_back((shape_key.to_vec(), loaded.clone()));
        Ok(loaded)
    }
}

fn gpu_error(e: ipfs_accelerate_gpu::GpuError) -> Error {
    Error::Backend(e.to_string())
}
