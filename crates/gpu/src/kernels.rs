//! The WGSL kernel library and a small runner that compiles and dispatches kernels.
//!
//! # Kernel interface (shared with the browser executor)
//!
//! Every kernel is one WGSL file in `crates/gpu/kernels/`, with one entry point `main`
//! and all resources in `@group(0)`:
//!
//! * `@binding(0)` is a `var<uniform> params: Params` — shapes, strides, offsets,
//!   epsilon. Its Rust twin lives in [`crate::params`] and is written with
//!   `bytemuck::bytes_of`.
//! * then the inputs, `var<storage, read>`, in the order [`KernelSpec::bindings`] lists;
//! * last the output, `var<storage, read_write>` (a kernel that needs scratch space
//!   between two of its passes, `llm_attention`, binds it read-write before the output).
//!
//! Variants are chosen with pipeline-overridable constants (`override` in WGSL,
//! [`wgpu::PipelineCompilationOptions::constants`] here, `constants` in the browser's
//! `createComputePipeline`) — never by editing the source. A pipeline is therefore
//! identified by `(kernel id, constants)`. Optional inputs (a matmul without bias, a
//! layerNorm without scale) still need *some* buffer bound: bind any buffer of ≥ 4
//! bytes; the kernel does not read it.
//!
//! Sizes are `u32` element counts. Storage is f32, except in the kernels build.rs
//! derives with float16 weights (`_f16w`) or float16 decoder activations (`_f16a`),
//! which need the adapter's `shader-f16`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use wgpu::util::DeviceExt;

use crate::context::GpuContext;
use crate::error::{GpuError, Result};
use crate::pipeline_cache::{self, DiskPipelineCache, PipelineCacheStatus};

/// How a kernel uses one binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BindingKind {
    /// `var<uniform>`: the kernel's `Params`.
    Uniform,
    /// `var<storage, read>`: an input.
    ReadStorage,
    /// `var<storage, read_write>`: the output.
    ReadWriteStorage,
}

/// One binding of a kernel (all in group 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BindingSpec {
    /// `@binding(n)`.
    pub binding: u32,
    /// The WGSL variable name.
    pub name: &'static str,
    /// How it is used.
    pub kind: BindingKind,
    /// Element type of a storage binding (`f32`, `f16`, `i32`), empty for the uniform.
    pub element: &'static str,
}

/// A kernel of the library: stable id, source, entry point and binding layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KernelSpec {
    /// Stable id; plans name kernels by it.
    pub id: &'static str,
    /// The WGSL source (the file `kernels/<id>.wgsl`).
    pub source: &'static str,
    /// Entry point.
    pub entry_point: &'static str,
    /// Bindings in order: uniform, inputs, output.
    pub bindings: &'static [BindingSpec],
    /// Names of the `override` constants, each with its default in the source.
    pub overrides: &'static [&'static str],
    /// Size of the `Params` uniform, bytes.
    pub uniform_size: u64,
    /// Needs the `shader-f16` feature (kernels storing f16 weights or activations).
    pub shader_f16: bool,
}

impl KernelSpec {
    /// The read-only storage bindings (the inputs), in order.
    pub fn inputs(&self) -> impl Iterator<Item = &BindingSpec> {
        self.bindings.iter().filter(|b| b.kind == BindingKind::ReadStorage)
    }

    /// The output: the last read-write storage binding (`llm_attention` has a
    /// read-write scratch binding before it).
    pub fn output(&self) -> Option<&BindingSpec> {
        self.bindings.iter().rev().find(|b| b.kind == BindingKind::ReadWriteStorage)
    }
}

const fn uniform() -> BindingSpec {
    BindingSpec { binding: 0, name: "params", kind: BindingKind::Uniform, element: "" }
}
const fn input(binding: u32, name: &'static str) -> BindingSpec {
    BindingSpec { binding, name, kind: BindingKind::ReadStorage, element: "f32" }
}
const fn f16_input(binding: u32, name: &'static str) -> BindingSpec {
    BindingSpec { binding, name, kind: BindingKind::ReadStorage, element: "f16" }
}
const fn u32_input(binding: u32, name: &'static str) -> BindingSpec {
    BindingSpec { binding, name, kind: BindingKind::ReadStorage, element: "u32" }
}
const fn output(binding: u32, name: &'static str) -> BindingSpec {
    BindingSpec { binding, name, kind: BindingKind::ReadWriteStorage, element: "f32" }
}

/// A storage binding read as `element`.
const fn typed_input(binding: u32, name: &'static str, element: &'static str) -> BindingSpec {
    BindingSpec { binding, name, kind: BindingKind::ReadStorage, element }
}
/// A storage binding written as `element`.
const fn typed_output(binding: u32, name: &'static str, element: &'static str) -> BindingSpec {
    BindingSpec { binding, name, kind: BindingKind::ReadWriteStorage, element }
}

const LLM_MATMUL_OVERRIDES: &[&str] = &["DTYPE", "GEMV", "HAS_BIAS"];

// The `llm_*` kernels' bindings, with the activations' element type (`act`).
const fn llm_matmul_bindings(act: &'static str, out: &'static str) -> [BindingSpec; 6] {
    [
        uniform(),
        typed_input(1, "x", act),
        u32_input(2, "wq"),
        input(3, "ws"),
        input(4, "bias"),
        typed_output(5, "out", out),
    ]
}
const fn llm_embed_bindings(act: &'static str) -> [BindingSpec; 5] {
    [uniform(), u32_input(1, "wq"), input(2, "ws"), u32_input(3, "ids"), typed_output(4, "out", act)]
}
const fn llm_norm_bindings(act: &'static str) -> [BindingSpec; 5] {
    [uniform(), typed_input(1, "x", act), input(2, "weight"), input(3, "bias"), typed_output(4, "y", act)]
}
const fn llm_rope_bindings(act: &'static str) -> [BindingSpec; 3] {
    [uniform(), input(1, "table"), typed_output(2, "x", act)]
}
// `partials` (f32 in both variants) is written by the split pass and read by the
// combining one, so it is read-write too.
const fn llm_attention_bindings(act: &'static str) -> [BindingSpec; 6] {
    [
        uniform(),
        typed_input(1, "q", act),
        typed_input(2, "k_cache", act),
        typed_input(3, "v_cache", act),
        output(4, "partials"),
        typed_output(5, "out", act),
    ]
}
const fn llm_elementwise_bindings(act: &'static str) -> [BindingSpec; 4] {
    [uniform(), typed_input(1, "a", act), typed_input(2, "b", act), typed_output(3, "out", act)]
}

/// Every kernel of the library.
pub static KERNELS: &[KernelSpec] = &[
    KernelSpec {
        id: "matmul",
        source: include_str!("../kernels/matmul.wgsl"),
        entry_point: "main",
        bindings: &[uniform(), input(1, "a"), input(2, "b"), input(3, "bias"), output(4, "c")],
        overrides: &["TRANSPOSE_B", "HAS_BIAS", "ACTIVATION"],
        uniform_size: 48,
        shader_f16: false,
    },
    KernelSpec {
        id: "matmul_f16w",
        // kernels/matmul.wgsl with B stored as f16 (see build.rs).
        source: include_str!(concat!(env!("OUT_DIR"), "/matmul_f16w.wgsl")),
        entry_point: "main",
        bindings: &[uniform(), input(1, "a"), f16_input(2, "b"), input(3, "bias"), output(4, "c")],
        overrides: &["TRANSPOSE_B", "HAS_BIAS", "ACTIVATION"],
        uniform_size: 48,
        shader_f16: true,
    },
    KernelSpec {
        id: "unary",
        source: include_str!("../kernels/unary.wgsl"),
        entry_point: "main",
        bindings: &[uniform(), input(1, "x"), output(2, "y")],
        overrides: &["OP", "WG"],
        uniform_size: 16,
        shader_f16: false,
    },
    KernelSpec {
        id: "binary",
        source: include_str!("../kernels/binary.wgsl"),
        entry_point: "main",
        bindings: &[uniform(), input(1, "a"), input(2, "b"), output(3, "c")],
        overrides: &["OP", "WG"],
        uniform_size: 112,
        shader_f16: false,
    },
    KernelSpec {
        id: "copy",
        source: include_str!("../kernels/copy.wgsl"),
        entry_point: "main",
        bindings: &[uniform(), input(1, "x"), output(2, "y")],
        overrides: &["WG"],
        uniform_size: 80,
        shader_f16: false,
    },
    KernelSpec {
        id: "gather",
        source: include_str!("../kernels/gather.wgsl"),
        entry_point: "main",
        bindings: &[
            uniform(),
            input(1, "x"),
            BindingSpec { binding: 2, name: "indices", kind: BindingKind::ReadStorage, element: "i32" },
            output(3, "y"),
        ],
        overrides: &["WG"],
        uniform_size: 32,
        shader_f16: false,
    },
    KernelSpec {
        id: "gather_f16w",
        // kernels/gather.wgsl with the table stored as f16 (see build.rs).
        source: include_str!(concat!(env!("OUT_DIR"), "/gather_f16w.wgsl")),
        entry_point: "main",
        bindings: &[
            uniform(),
            f16_input(1, "x"),
            BindingSpec { binding: 2, name: "indices", kind: BindingKind::ReadStorage, element: "i32" },
            output(3, "y"),
        ],
        overrides: &["WG"],
        uniform_size: 32,
        shader_f16: true,
    },
    KernelSpec {
        id: "softmax",
        source: include_str!("../kernels/softmax.wgsl"),
        entry_point: "main",
        bindings: &[uniform(), input(1, "x"), output(2, "y")],
        overrides: &["WG"],
        uniform_size: 16,
        shader_f16: false,
    },
    KernelSpec {
        id: "layernorm",
        source: include_str!("../kernels/layernorm.wgsl"),
        entry_point: "main",
        bindings: &[uniform(), input(1, "x"), input(2, "scale"), input(3, "bias"), output(4, "y")],
        overrides: &["HAS_SCALE", "HAS_BIAS", "WG"],
        uniform_size: 16,
        shader_f16: false,
    },
    KernelSpec {
        id: "reduce",
        source: include_str!("../kernels/reduce.wgsl"),
        entry_point: "main",
        bindings: &[uniform(), input(1, "x"), output(2, "y")],
        overrides: &["OP", "WG"],
        uniform_size: 16,
        shader_f16: false,
    },
    KernelSpec {
        id: "attention",
        source: include_str!("../kernels/attention.wgsl"),
        entry_point: "main",
        bindings: &[uniform(), input(1, "q"), input(2, "k"), input(3, "v"), input(4, "mask"), output(5, "out")],
        overrides: &["HAS_MASK", "CAUSAL", "WG"],
        uniform_size: 144,
        shader_f16: false,
    },
    KernelSpec {
        id: "conv2d",
        source: include_str!("../kernels/conv2d.wgsl"),
        entry_point: "main",
        bindings: &[uniform(), input(1, "x"), input(2, "weight"), input(3, "bias"), output(4, "y")],
        overrides: &["HAS_BIAS", "CLAMP", "WG"],
        uniform_size: 80,
        shader_f16: false,
    },
    KernelSpec {
        id: "pool2d",
        source: include_str!("../kernels/pool2d.wgsl"),
        entry_point: "main",
        bindings: &[uniform(), input(1, "x"), output(2, "y")],
        overrides: &["OP", "WG"],
        uniform_size: 64,
        shader_f16: false,
    },
    KernelSpec {
        id: "clamp",
        source: include_str!("../kernels/clamp.wgsl"),
        entry_point: "main",
        bindings: &[uniform(), input(1, "x"), output(2, "y")],
        overrides: &["WG"],
        uniform_size: 16,
        shader_f16: false,
    },
    // The decoder (text generation) kernels; see crate::llm. Each has an `_f16a`
    // twin (build.rs) that stores activations and the KV cache as f16.
    KernelSpec {
        id: "llm_matmul",
        source: include_str!("../kernels/llm_matmul.wgsl"),
        entry_point: "main",
        bindings: &llm_matmul_bindings("f32", "f32"),
        overrides: LLM_MATMUL_OVERRIDES,
        uniform_size: 16,
        shader_f16: false,
    },
    KernelSpec {
        id: "llm_matmul_f16a",
        source: include_str!(concat!(env!("OUT_DIR"), "/llm_matmul_f16a.wgsl")),
        entry_point: "main",
        bindings: &llm_matmul_bindings("f16", "f16"),
        overrides: LLM_MATMUL_OVERRIDES,
        uniform_size: 16,
        shader_f16: true,
    },
    KernelSpec {
        id: "llm_matmul_f16a_f32out",
        source: include_str!(concat!(env!("OUT_DIR"), "/llm_matmul_f16a_f32out.wgsl")),
        entry_point: "main",
        bindings: &llm_matmul_bindings("f16", "f32"),
        overrides: LLM_MATMUL_OVERRIDES,
        uniform_size: 16,
        shader_f16: true,
    },
    KernelSpec {
        id: "llm_embed",
        source: include_str!("../kernels/llm_embed.wgsl"),
        entry_point: "main",
        bindings: &llm_embed_bindings("f32"),
        overrides: &["DTYPE"],
        uniform_size: 16,
        shader_f16: false,
    },
    KernelSpec {
        id: "llm_embed_f16a",
        source: include_str!(concat!(env!("OUT_DIR"), "/llm_embed_f16a.wgsl")),
        entry_point: "main",
        bindings: &llm_embed_bindings("f16"),
        overrides: &["DTYPE"],
        uniform_size: 16,
        shader_f16: true,
    },
    KernelSpec {
        id: "llm_norm",
        source: include_str!("../kernels/llm_norm.wgsl"),
        entry_point: "main",
        bindings: &llm_norm_bindings("f32"),
        overrides: &["LAYER"],
        uniform_size: 16,
        shader_f16: false,
    },
    KernelSpec {
        id: "llm_norm_f16a",
        source: include_str!(concat!(env!("OUT_DIR"), "/llm_norm_f16a.wgsl")),
        entry_point: "main",
        bindings: &llm_norm_bindings("f16"),
        overrides: &["LAYER"],
        uniform_size: 16,
        shader_f16: true,
    },
    KernelSpec {
        id: "llm_rope",
        source: include_str!("../kernels/llm_rope.wgsl"),
        entry_point: "main",
        bindings: &llm_rope_bindings("f32"),
        overrides: &["HALVES"],
        uniform_size: 32,
        shader_f16: false,
    },
    KernelSpec {
        id: "llm_rope_f16a",
        source: include_str!(concat!(env!("OUT_DIR"), "/llm_rope_f16a.wgsl")),
        entry_point: "main",
        bindings: &llm_rope_bindings("f16"),
        overrides: &["HALVES"],
        uniform_size: 32,
        shader_f16: true,
    },
    KernelSpec {
        id: "llm_attention",
        source: include_str!("../kernels/llm_attention.wgsl"),
        entry_point: "main",
        bindings: &llm_attention_bindings("f32"),
        overrides: &["PHASE"],
        uniform_size: 32,
        shader_f16: false,
    },
    KernelSpec {
        id: "llm_attention_f16a",
        source: include_str!(concat!(env!("OUT_DIR"), "/llm_attention_f16a.wgsl")),
        entry_point: "main",
        bindings: &llm_attention_bindings("f16"),
        overrides: &["PHASE"],
        uniform_size: 32,
        shader_f16: true,
    },
    KernelSpec {
        id: "llm_elementwise",
        source: include_str!("../kernels/llm_elementwise.wgsl"),
        entry_point: "main",
        bindings: &llm_elementwise_bindings("f32"),
        overrides: &["OP"],
        uniform_size: 16,
        shader_f16: false,
    },
    KernelSpec {
        id: "llm_elementwise_f16a",
        source: include_str!(concat!(env!("OUT_DIR"), "/llm_elementwise_f16a.wgsl")),
        entry_point: "main",
        bindings: &llm_elementwise_bindings("f16"),
        overrides: &["OP"],
        uniform_size: 16,
        shader_f16: true,
    },
];

/// The kernel with this id.
pub fn kernel(id: &str) -> Result<&'static KernelSpec> {
    KERNELS.iter().find(|k| k.id == id).ok_or_else(|| GpuError::UnknownKernel(id.to_string()))
}

/// A compiled pipeline with its bind group layout.
#[derive(Debug)]
pub struct CompiledKernel {
    /// The kernel.
    pub spec: &'static KernelSpec,
    /// The constants it was compiled with (sorted by name).
    pub constants: Vec<(String, f64)>,
    /// The pipeline.
    pub pipeline: wgpu::ComputePipeline,
    /// Layout of its group 0.
    pub layout: wgpu::BindGroupLayout,
}

type PipelineKey = (&'static str, Vec<(String, u64)>);

/// One kernel dispatch with host data, for tests and one-off runs: uploads the inputs,
/// runs, and reads the output back.
#[derive(Debug, Clone, Copy)]
pub struct Launch<'a> {
    /// Kernel id.
    pub kernel: &'a str,
    /// `override` constants; unnamed ones keep the source's default.
    pub constants: &'a [(&'a str, f64)],
    /// The `Params` bytes (`bytemuck::bytes_of(&params)`).
    pub uniform: &'a [u8],
    /// One entry per input binding, in order; `None` binds a placeholder (optional inputs).
    pub inputs: &'a [Option<&'a [u8]>],
    /// Size of the output, bytes.
    pub output_bytes: u64,
    /// Workgroups to dispatch (see the helpers in [`crate::params`]).
    pub workgroups: [u32; 3],
}

/// Compiles kernels (cached per id + constants), creates buffers, dispatches and reads
/// back. The plan executor reuses [`KernelRunner::pipeline`], the buffer helpers,
/// [`KernelRunner::bind_group`], [`KernelRunner::encode`] and [`KernelRunner::read_buffer`].
///
/// Pipelines go through an on-disk [`wgpu::PipelineCache`] where the device has one
/// (see [`crate::pipeline_cache`]); it is saved on [`KernelRunner::save_pipeline_cache`]
/// and when the runner is dropped.
#[derive(Debug)]
pub struct KernelRunner {
    ctx: GpuContext,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<CompiledKernel>>>,
    placeholder: wgpu::Buffer,
    timeout: Duration,
    disk_cache: Option<DiskPipelineCache>,
    cache_status: Mutex<PipelineCacheStatus>,
    compiled: AtomicU64,
}

/// Runs `f` inside validation and out-of-memory error scopes, turning a captured wgpu
/// error into a [`GpuError`].
pub(crate) fn scoped<T>(device: &wgpu::Device, context: &str, f: impl FnOnce() -> T) -> Result<T> {
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let value = f();
    let validation = pollster::block_on(validation.pop());
    let oom = pollster::block_on(oom.pop());
    match validation.or(oom) {
        Some(e) => Err(GpuError::from_wgpu(context, e)),
        None => Ok(value),
    }
}

fn padded_len(bytes: u64) -> u64 {
    bytes.max(4).next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT)
}

impl KernelRunner {
    /// A runner on `ctx`'s device, with the on-disk pipeline cache in
    /// [`pipeline_cache::default_pipeline_cache_dir`] unless
    /// `IPFS_ACCELERATE_PIPELINE_CACHE=off`.
    pub fn new(ctx: &GpuContext) -> Self {
        let dir = if pipeline_cache::pipeline_cache_enabled_by_env() {
            pipeline_cache::default_pipeline_cache_dir()
        } else {
            None
        };
        Self::build(ctx, dir.as_deref())
    }

    /// A runner whose pipeline cache file lives in `dir` (the environment is not read).
    pub fn with_pipeline_cache_dir(ctx: &GpuContext, dir: impl AsRef<Path>) -> Self {
        Self::build(ctx, Some(dir.as_ref()))
    }

    /// A runner without an on-disk pipeline cache.
    pub fn without_pipeline_cache(ctx: &GpuContext) -> Self {
        Self::build(ctx, None)
    }

    fn build(ctx: &GpuContext, cache_dir: Option<&Path>) -> Self {
        let (disk_cache, cache_status) = pipeline_cache::open(ctx, cache_dir);
        let placeholder = ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("placeholder"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        KernelRunner {
            ctx: ctx.clone(),
            modules: Mutex::default(),
            pipelines: Mutex::default(),
            placeholder,
            timeout: Duration::from_secs(600),
            disk_cache,
            cache_status: Mutex::new(cache_status),
            compiled: AtomicU64::new(0),
        }
    }

    /// What the pipeline cache did: its file, bytes loaded, pipelines compiled.
    pub fn pipeline_cache_status(&self) -> PipelineCacheStatus {
        let mut status = self.cache_status.lock().unwrap_or_else(|p| p.into_inner()).clone();
        status.pipelines_compiled = self.compiled.load(Ordering::Relaxed);
        status
    }

    /// Writes the pipeline cache to its file (temp file + rename) if pipelines were
    /// compiled since it was loaded or last saved. Returns the bytes written, or `None`
    /// when there was nothing to write or no cache. Also runs when the runner is dropped.
    pub fn save_pipeline_cache(&self) -> std::io::Result<Option<u64>> {
        let Some(cache) = &self.disk_cache else {
            return Ok(None);
        };
        if self.compiled.load(Ordering::Relaxed) == 0 {
            return Ok(None);
        }
        let written = cache.save()?;
        if let Some(bytes) = written {
            self.cache_status.lock().unwrap_or_else(|p| p.into_inner()).saved_bytes = bytes;
        }
        Ok(written)
    }

    /// How long [`KernelRunner::wait`] (and so every readback) waits for the GPU before
    /// giving up with [`GpuError::Device`]; 10 minutes by default (software adapters
    /// are slow).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The context.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// A 16-byte storage buffer to bind where a kernel's optional input is absent.
    pub fn placeholder(&self) -> &wgpu::Buffer {
        &self.placeholder
    }

    /// The pipeline for `id` with these `override` constants, compiled on first use.
    /// Shader and pipeline errors (e.g. a driver that rejects the kernel) are returned as
    /// [`GpuError::ShaderCompile`].
    pub fn pipeline(&self, id: &str, constants: &[(&str, f64)]) -> Result<Arc<CompiledKernel>> {
        let spec = kernel(id)?;
        let mut sorted: Vec<(String, f64)> = constants.iter().map(|(k, v)| ((*k).to_string(), *v)).collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, _) in &sorted {
            if !spec.overrides.contains(&name.as_str()) {
                return Err(GpuError::BadLaunch {
                    kernel: id.into(),
                    message: format!("no override constant {name:?} (it has {:?})", spec.overrides),
                });
            }
        }
        let key: PipelineKey = (spec.id, sorted.iter().map(|(k, v)| (k.clone(), v.to_bits())).collect());
        if let Some(hit) = self.lock_pipelines().get(&key) {
            return Ok(hit.clone());
        }
        let compiled = Arc::new(self.compile(spec, sorted)?);
        self.lock_pipelines().insert(key, compiled.clone());
        Ok(compiled)
    }

    fn lock_pipelines(&self) -> std::sync::MutexGuard<'_, HashMap<PipelineKey, Arc<CompiledKernel>>> {
        self.pipelines.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn compile(&self, spec: &'static KernelSpec, constants: Vec<(String, f64)>) -> Result<CompiledKernel> {
        let device = self.ctx.device();
        let compile_error = |e: GpuError| GpuError::ShaderCompile {
            kernel: spec.id.into(),
            message: match e {
                GpuError::Validation { message, .. } => message,
                other => other.to_string(),
            },
        };
        let module = {
            let mut modules = self.modules.lock().unwrap_or_else(|p| p.into_inner());
            match modules.get(spec.id) {
                Some(m) => m.clone(),
                None => {
                    let m = scoped(device, spec.id, || {
                        device.create_shader_module(wgpu::ShaderModuleDescriptor {
                            label: Some(spec.id),
                            source: wgpu::ShaderSource::Wgsl(spec.source.into()),
                        })
                    })
                    .map_err(compile_error)?;
                    modules.insert(spec.id, m.clone());
                    m
                }
            }
        };
        let entries: Vec<wgpu::BindGroupLayoutEntry> = spec
            .bindings
            .iter()
            .map(|b| wgpu::BindGroupLayoutEntry {
                binding: b.binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match b.kind {
                        BindingKind::Uniform => wgpu::BufferBindingType::Uniform,
                        BindingKind::ReadStorage => wgpu::BufferBindingType::Storage { read_only: true },
                        BindingKind::ReadWriteStorage => wgpu::BufferBindingType::Storage { read_only: false },
                    },
                    has_dynamic_offset: false,
                    min_binding_size: match b.kind {
                        BindingKind::Uniform => wgpu::BufferSize::new(spec.uniform_size),
                        _ => None,
                    },
                },
                count: None,
            })
            .collect();
        let constant_refs: Vec<(&str, f64)> = constants.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let (layout, pipeline) = scoped(device, spec.id, || {
            let layout = device
                .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(spec.id), entries: &entries });
            let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(spec.id),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(spec.id),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(spec.entry_point),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &constant_refs,
                    // Every kernel initializes the workgroup memory it reads.
                    zero_initialize_workgroup_memory: false,
                },
                cache: self.disk_cache.as_ref().map(DiskPipelineCache::cache),
            });
            (layout, pipeline)
        })
        .map_err(compile_error)?;
        self.compiled.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(kernel = spec.id, ?constants, "compiled GPU kernel");
        Ok(CompiledKernel { spec, constants, pipeline, layout })
    }

    fn check_size(&self, bytes: u64, storage: bool) -> Result<()> {
        let limits = self.ctx.limits();
        if bytes > limits.max_buffer_size {
            return Err(GpuError::BufferTooLarge { bytes, limit: limits.max_buffer_size, which: "max_buffer_size" });
        }
        if storage && bytes > limits.max_storage_buffer_binding_size {
            return Err(GpuError::BufferTooLarge {
                bytes,
                limit: limits.max_storage_buffer_binding_size,
                which: "max_storage_buffer_binding_size",
            });
        }
        Ok(())
    }

    /// A storage buffer holding `contents` (padded to 4 bytes, at least 4), usable as
    /// a kernel input or output and as a copy source/destination.
    pub fn storage_buffer(&self, label: &str, contents: &[u8]) -> Result<wgpu::Buffer> {
        let size = padded_len(contents.len() as u64);
        self.check_size(size, true)?;
        let device = self.ctx.device();
        scoped(device, label, || {
            let buffer = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: true,
            });
            buffer
                .slice(..)
                .get_mapped_range_mut()
                .map(|mut view| view.slice(..contents.len()).copy_from_slice(contents))
                .map_err(|e| e.to_string())
                .map(|()| {
                    buffer.unmap();
                    buffer
                })
        })?
        .map_err(|message| GpuError::Validation { context: label.into(), message })
    }

    /// An uninitialized (zeroed) storage buffer of `bytes` (padded to 4, at least 4).
    pub fn empty_storage_buffer(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        let size = padded_len(bytes);
        self.check_size(size, true)?;
        let device = self.ctx.device();
        scoped(device, label, || {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })
    }

    /// A uniform buffer holding `contents` (a `Params` struct).
    pub fn uniform_buffer(&self, label: &str, contents: &[u8]) -> Result<wgpu::Buffer> {
        let device = self.ctx.device();
        scoped(device, label, || {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            })
        })
    }

    /// A bind group for `kernel` with `buffers` bound whole, in binding order (uniform,
    /// inputs, output).
    pub fn bind_group(&self, kernel: &CompiledKernel, buffers: &[&wgpu::Buffer]) -> Result<wgpu::BindGroup> {
        let resources: Vec<wgpu::BindingResource<'_>> = buffers.iter().map(|b| b.as_entire_binding()).collect();
        self.bind_group_resources(kernel, &resources)
    }

    /// A bind group for `kernel` from arbitrary resources in binding order — e.g.
    /// `wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer, offset, size })` to
    /// bind a range of an arena or of a tensor larger than one binding may be (offsets
    /// must be multiples of `min_storage_buffer_offset_alignment`).
    pub fn bind_group_resources(
        &self,
        kernel: &CompiledKernel,
        resources: &[wgpu::BindingResource<'_>],
    ) -> Result<wgpu::BindGroup> {
        if resources.len() != kernel.spec.bindings.len() {
            return Err(GpuError::BadLaunch {
                kernel: kernel.spec.id.into(),
                message: format!(
                    "{} buffers given, the kernel has {} bindings",
                    resources.len(),
                    kernel.spec.bindings.len()
                ),
            });
        }
        let entries: Vec<wgpu::BindGroupEntry> = kernel
            .spec
            .bindings
            .iter()
            .zip(resources)
            .map(|(b, resource)| wgpu::BindGroupEntry { binding: b.binding, resource: resource.clone() })
            .collect();
        let device = self.ctx.device();
        scoped(device, kernel.spec.id, || {
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(kernel.spec.id),
                layout: &kernel.layout,
                entries: &entries,
            })
        })
    }

    /// Records one dispatch of `kernel` into `encoder` (one compute pass).
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        kernel: &CompiledKernel,
        bind_group: &wgpu::BindGroup,
        workgroups: [u32; 3],
    ) -> Result<()> {
        let max = self.ctx.limits().max_compute_workgroups_per_dimension;
        if workgroups.iter().any(|&w| w > max) {
            return Err(GpuError::BadLaunch {
                kernel: kernel.spec.id.into(),
                message: format!("{workgroups:?} workgroups exceed the limit of {max} per dimension"),
            });
        }
        let mut pass = encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(kernel.spec.id), timestamp_writes: None });
        pass.set_pipeline(&kernel.pipeline);
        pass.set_bind_group(0, bind_group, &[]);
        pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
        Ok(())
    }

    /// Submits `encoder`, turning validation and out-of-memory errors into [`GpuError`]
    /// (e.g. a buffer bound both as an input and as the output of one dispatch, which
    /// WebGPU forbids: writable storage usage is exclusive per buffer, not per range).
    pub fn submit(&self, encoder: wgpu::CommandEncoder) -> Result<wgpu::SubmissionIndex> {
        let device = self.ctx.device();
        scoped(device, "submit", || self.ctx.queue().submit([encoder.finish()]))
    }

    /// Copies the first `bytes` of `buffer` (which needs `COPY_SRC`) to the host,
    /// waiting for all submitted work.
    pub fn read_buffer(&self, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        let device = self.ctx.device();
        let size = padded_len(bytes);
        let staging = scoped(device, "readback", || {
            let staging = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut encoder = device.create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
            self.ctx.queue().submit([encoder.finish()]);
            staging
        })?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        // Poll until the map callback has run. One poll is not always enough
        // when several threads share the device: another thread's poll may
        // be the one that runs (or is about to run) this callback.
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            self.wait("readback")?;
            match rx.recv_timeout(Duration::from_millis(5)) {
                Ok(Ok(())) => break,
                Ok(Err(e)) => return Err(GpuError::Device { context: "readback".into(), message: e.to_string() }),
                Err(_) if std::time::Instant::now() < deadline => continue,
                Err(_) => {
                    return Err(GpuError::Device {
                        context: "readback".into(),
                        message: format!("the buffer was not mapped within {:?}", self.timeout),
                    })
                }
            }
        }
        let data = {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| GpuError::Device { context: "readback".into(), message: e.to_string() })?;
            view[..bytes as usize].to_vec()
        };
        staging.unmap();
        Ok(data)
    }

    /// Blocks until the queue is idle (or the runner's timeout passes).
    pub fn wait(&self, context: &str) -> Result<()> {
        self.ctx
            .device()
            .poll(wgpu::PollType::Wait { submission_index: None, timeout: Some(self.timeout) })
            .map(|_| ())
            .map_err(|e| GpuError::Device { context: context.into(), message: e.to_string() })
    }

    /// Uploads the inputs, dispatches once, and returns the output bytes.
    pub fn run(&self, launch: &Launch<'_>) -> Result<Vec<u8>> {
        let kernel = self.pipeline(launch.kernel, launch.constants)?;
        let spec = kernel.spec;
        let n_inputs = spec.inputs().count();
        if launch.inputs.len() != n_inputs {
            return Err(GpuError::BadLaunch {
                kernel: spec.id.into(),
                message: format!("{} inputs given, the kernel takes {n_inputs}", launch.inputs.len()),
            });
        }
        if launch.uniform.len() as u64 != spec.uniform_size {
            return Err(GpuError::BadLaunch {
                kernel: spec.id.into(),
                message: format!(
                    "uniform of {} bytes, the kernel's Params is {}",
                    launch.uniform.len(),
                    spec.uniform_size
                ),
            });
        }
        let uniform = self.uniform_buffer(spec.id, launch.uniform)?;
        let mut inputs = Vec::with_capacity(n_inputs);
        for (binding, data) in spec.inputs().zip(launch.inputs) {
            inputs.push(match data {
                Some(bytes) => Some(self.storage_buffer(binding.name, bytes)?),
                None => None,
            });
        }
        let output = self.empty_storage_buffer("output", launch.output_bytes)?;
        let mut buffers: Vec<&wgpu::Buffer> = vec![&uniform];
        buffers.extend(inputs.iter().map(|b| b.as_ref().unwrap_or(&self.placeholder)));
        buffers.push(&output);
        let bind_group = self.bind_group(&kernel, &buffers)?;
        let device = self.ctx.device();
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(spec.id) });
        self.encode(&mut encoder, &kernel, &bind_group, launch.workgroups)?;
        self.submit(encoder)?;
        self.read_buffer(&output, launch.output_bytes)
    }

    /// [`KernelRunner::run`] with f32 output.
    pub fn run_f32(&self, launch: &Launch<'_>) -> Result<Vec<f32>> {
        let bytes = self.run(launch)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}

impl Drop for KernelRunner {
    /// Saves the pipeline cache, best effort.
    fn drop(&mut self) {
        if let Err(e) = self.save_pipeline_cache() {
            tracing::warn!("could not save the GPU pipeline cache: {e}");
        }
    }
}
