//! Where a model's graphs run: the CPU backend or the native WebGPU backend,
//! each with a cache of compiled plans.
//!
//! Models build a [`Graph`] for each input shape and hand it here with the
//! inputs. Both engines compile it once per shape key and keep the most
//! recently used plans ([`PLAN_CACHE_SIZE`]). The CPU engine keeps a
//! [`CpuExecutable`], whose constants share the model's weight bytes (no
//! copy); the WebGPU engine compiles a plan (`ipfs_accelerate_gpu::compile`)
//! and loads it (pipelines, buffers, bind groups), while the model's weights
//! are uploaded once and shared by all of them.

use crate::backend::{BackendKind, Precision};
use crate::error::{Error, Result};
use ipfs_accelerate_gpu::{compile_with, CompileOptions, DeviceWeights, GpuContext, KernelRunner, LoadedPlan};
use ipfs_accelerate_tensor::{CpuBackend, CpuExecutable, Graph, Tensor, Weights};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// How many compiled plans (shape keys) the CPU and WebGPU engines each keep.
pub const PLAN_CACHE_SIZE: usize = 16;

/// A backend that runs graphs.
///
/// An engine serves one model: the plans it caches are keyed by shape key
/// alone (see [`Engine::run`]).
pub enum Engine {
    /// The multi-threaded CPU backend.
    Cpu(CpuEngine),
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

    /// Compiled plans kept (0 for an external backend, which keeps its own).
    pub fn cached_plans(&self) -> usize {
        match self {
            Engine::Cpu(cpu) => cpu.plans.len(),
            Engine::WebGpu(gpu) => gpu.plans.len(),
            Engine::External(_) => 0,
        }
    }

    /// Runs the graph `build` makes for `shape_key` on `inputs`, returning
    /// the outputs in the graph's order. `build` is called (and its graph
    /// compiled) only when no plan for `shape_key` is cached.
    ///
    /// The contract on `shape_key`: on one engine, equal keys must mean the
    /// same graph with the same weights, since a cached plan is reused
    /// without calling `build`. An engine serves one model, so its input
    /// dims usually suffice (BERT, EfficientNet, Whisper's encoder); a model
    /// with several graphs on one engine (CLIP's image and text towers, a
    /// BERT layer-range stage) starts each kind of key with a marker of its
    /// own near `usize::MAX`, which no dim can equal (ViT's keys carry one
    /// too). Models keyed by dims alone must not share an engine.
    pub fn run(
        &self,
        shape_key: &[usize],
        build: impl FnOnce() -> Result<(Graph, Weights)>,
        inputs: &[(&str, &Tensor)],
    ) -> Result<Vec<Tensor>> {
        match self {
            Engine::Cpu(cpu) => cpu.run(shape_key, build, inputs),
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

/// The most recently used compiled plans, by shape key, at most
/// [`PLAN_CACHE_SIZE`]; shared by concurrent callers.
struct PlanCache<P> {
    /// Most recently used last.
    plans: Mutex<Plans<P>>,
}

/// Plans and their shape keys, most recently used last.
type Plans<P> = VecDeque<(Vec<usize>, Arc<P>)>;

impl<P> Default for PlanCache<P> {
    fn default() -> Self {
        PlanCache { plans: Mutex::default() }
    }
}

impl<P> PlanCache<P> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Plans<P>> {
        // A panic elsewhere cannot leave the deque half-updated: every change
        // is one push or remove.
        self.plans.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    /// The plan for `key`, compiled by `compile` on a miss; either way it
    /// becomes the most recently used. The lock is not held while compiling,
    /// so other shapes run meanwhile; when two callers compile the same key
    /// at once, the plan stored first is kept and the other dropped.
    fn get_or_compile(&self, key: &[usize], compile: impl FnOnce() -> Result<P>) -> Result<Arc<P>> {
        if let Some(plan) = touch(&mut self.lock(), key) {
            return Ok(plan);
        }
        let compiled = Arc::new(compile()?);
        let mut plans = self.lock();
        if let Some(plan) = touch(&mut plans, key) {
            return Ok(plan);
        }
        if plans.len() >= PLAN_CACHE_SIZE {
            plans.pop_front();
        }
        plans.push_back((key.to_vec(), compiled.clone()));
        Ok(compiled)
    }
}

/// The plan for `key` in `plans`, moved to the most recently used end.
fn touch<P>(plans: &mut Plans<P>, key: &[usize]) -> Option<Arc<P>> {
    let i = plans.iter().position(|(k, _)| k == key)?;
    let hit = plans.remove(i).expect("found");
    let plan = hit.1.clone();
    plans.push_back(hit);
    Some(plan)
}

/// The CPU engine: the backend and its most recently used compiled graphs.
///
/// A cached [`CpuExecutable`] holds the graph's instructions, its memory
/// plan and references to the weight bytes (shared with the model, not
/// copied); its scratch arena comes from the backend's pool when it runs, so
/// keeping plans costs little memory beyond their small inline constants.
#[derive(Default)]
pub struct CpuEngine {
    backend: CpuBackend,
    plans: PlanCache<CpuExecutable>,
}

impl CpuEngine {
    /// A CPU engine on a new backend.
    pub fn new() -> Self {
        CpuEngine::default()
    }

    /// The backend (threads, shared arenas and packed weights).
    pub fn backend(&self) -> &CpuBackend {
        &self.backend
    }

    fn run(
        &self,
        shape_key: &[usize],
        build: impl FnOnce() -> Result<(Graph, Weights)>,
        inputs: &[(&str, &Tensor)],
    ) -> Result<Vec<Tensor>> {
        let plan = self.plans.get_or_compile(shape_key, || {
            let (graph, weights) = build()?;
            let exe = self.backend.compile(&graph, &weights)?;
            tracing::debug!(?shape_key, instructions = exe.instruction_count(), "compiled a cpu plan");
            Ok(exe)
        })?;
        Ok(plan.run(inputs)?)
    }
}

impl From<CpuBackend> for CpuEngine {
    fn from(backend: CpuBackend) -> Self {
        CpuEngine { backend, plans: PlanCache::default() }
    }
}

impl std::fmt::Debug for CpuEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuEngine").field("backend", &self.backend).field("cached_plans", &self.plans.len()).finish()
    }
}

/// The WebGPU engine: a device, the model's weights on it, and recent plans.
pub struct GpuEngine {
    runner: KernelRunner,
    options: CompileOptions,
    weights: DeviceWeights,
    plans: PlanCache<LoadedPlan>,
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
            plans: PlanCache::default(),
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
        self.plans.get_or_compile(shape_key, || {
            let (graph, weights) = build()?;
            let compiled = compile_with(&graph, self.options).map_err(gpu_error)?;
            let loaded = LoadedPlan::load(&self.runner, &compiled, &weights, &self.weights).map_err(gpu_error)?;
            tracing::debug!(?shape_key, dispatches = loaded.dispatch_count(), "compiled a webgpu plan");
            Ok(loaded)
        })
    }
}

fn gpu_error(e: ipfs_accelerate_gpu::GpuError) -> Error {
    Error::Backend(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipfs_accelerate_tensor::{DType, GraphBuilder};
    use std::cell::Cell;

    /// `x · w` for `x` of `[rows, 3]`, with a weight tensor shared by every
    /// build, as a model's are.
    fn graph(rows: usize, w: &Tensor) -> Result<(Graph, Weights)> {
        let mut b = GraphBuilder::new();
        let x = b.input("x", DType::Float32, [rows, 3])?;
        let w = b.constant("w", w.clone())?;
        let y = b.matmul(x, w)?;
        Ok(b.build(&[("y", y)])?)
    }

    fn input(rows: usize) -> Tensor {
        let values: Vec<f32> = (0..rows * 3).map(|i| i as f32 * 0.5 - 1.0).collect();
        Tensor::from_f32([rows, 3], &values).unwrap()
    }

    #[test]
    fn cpu_engine_reuses_the_plan_of_a_key_and_compiles_a_new_key() {
        let w = Tensor::from_f32([3, 2], &[1.0, -2.0, 0.5, 3.0, -1.5, 0.25]).unwrap();
        let engine = Engine::Cpu(CpuEngine::new());
        let builds = Cell::new(0);
        let run = |rows: usize| {
            let build = || {
                builds.set(builds.get() + 1);
                graph(rows, &w)
            };
            engine.run(&[rows], build, &[("x", &input(rows))]).unwrap()
        };
        let fresh = |rows: usize| {
            let (g, weights) = graph(rows, &w).unwrap();
            CpuBackend::new().compile(&g, &weights).unwrap().run(&[("x", &input(rows))]).unwrap()
        };

        let first = run(2);
        assert_eq!((builds.get(), engine.cached_plans()), (1, 1));
        let again = run(2);
        assert_eq!((builds.get(), engine.cached_plans()), (1, 1), "the same key must reuse its plan");
        assert_eq!(first, again);
        assert_eq!(again, fresh(2), "a cached plan must give what a fresh compile gives");

        let other = run(4);
        assert_eq!((builds.get(), engine.cached_plans()), (2, 2), "a new key compiles a new plan");
        assert_eq!(other[0].shape().dims(), &[4, 2]);
        assert_eq!(other, fresh(4));
        assert_eq!(run(2), first);
        assert_eq!(builds.get(), 2);
    }

    #[test]
    fn cpu_engine_keeps_the_most_recently_used_plans() {
        let w = Tensor::from_f32([3, 1], &[1.0, 2.0, 3.0]).unwrap();
        let engine = Engine::Cpu(CpuEngine::new());
        let builds = Cell::new(0);
        let run = |rows: usize| {
            let build = || {
                builds.set(builds.get() + 1);
                graph(rows, &w)
            };
            engine.run(&[rows], build, &[("x", &input(rows))]).unwrap();
        };
        for rows in 1..=PLAN_CACHE_SIZE {
            run(rows);
        }
        assert_eq!((builds.get(), engine.cached_plans()), (PLAN_CACHE_SIZE, PLAN_CACHE_SIZE));
        run(1); // now the most recently used, so the next miss evicts rows 2
        run(PLAN_CACHE_SIZE + 1);
        assert_eq!((builds.get(), engine.cached_plans()), (PLAN_CACHE_SIZE + 1, PLAN_CACHE_SIZE));
        run(1);
        assert_eq!(builds.get(), PLAN_CACHE_SIZE + 1, "rows 1 was used last and must still be cached");
        run(2);
        assert_eq!(builds.get(), PLAN_CACHE_SIZE + 2, "rows 2 was the least recently used and must be gone");
        assert_eq!(engine.cached_plans(), PLAN_CACHE_SIZE);
    }

    #[test]
    fn a_failed_build_is_not_cached() {
        let engine = Engine::Cpu(CpuEngine::new());
        let x = input(1);
        let err = engine.run(&[1], || Err(Error::Backend("no graph".into())), &[("x", &x)]).unwrap_err();
        assert!(err.to_string().contains("no graph"), "{err}");
        assert_eq!(engine.cached_plans(), 0);
        let w = Tensor::from_f32([3, 1], &[1.0, 2.0, 3.0]).unwrap();
        engine.run(&[1], || graph(1, &w), &[("x", &x)]).unwrap();
        assert_eq!(engine.cached_plans(), 1);
    }

    #[test]
    fn engines_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<CpuEngine>();
        check::<Engine>();
    }
}
