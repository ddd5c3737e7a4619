//! [`DecoderOps`] on WebGPU (wgpu): weights, activations and the KV cache live
//! on the device, every op is one or two dispatches of the `llm_*` kernels
//! (`crates/gpu/kernels/llm_*.wgsl`), recorded into one command encoder by an
//! [`LlmStream`], and nothing comes back to the host but what [`DecoderOps::read`]
//! asks for — so a decode step is one submission and one small readback.
//!
//! * Weights stay quantized: F32, F16, Q8_0, Q4_0 and Q4_1 are repacked once
//!   at upload into word-aligned quants plus f32 scales (see
//!   `ipfs_accelerate_gpu::llm::pack`) and dequantized inside the matrix
//!   products; Q4_K and Q6_K super-blocks are rewritten into the same
//!   32-weight blocks (Q4_1, and int8 with a scale per 16), 0.75 and 1.25
//!   bytes per weight on the device.
//! * Activations are pooled device buffers ([`BufferPool`]): a decode step
//!   asks for the same few sizes every token.
//! * The cache of each layer is a keys and a values buffer of
//!   `[capacity, kv_heads · head_dim]`, so appending `n` positions is one copy
//!   of the projected `k` and `v` rows each.
//! * Activations and the cache are f32, or f16 after
//!   [`GpuDecoderOps::with_activations`] on an adapter with `shader-f16`
//!   (the `_f16a` kernels: half the bytes stored and read, f32 arithmetic;
//!   logits are still written as f32).
//! * Rotary cosines and sines are a device table computed on the host with
//!   the CPU backend's f32 arithmetic (WGSL's `cos`/`sin` are too coarse for
//!   large angles), grown as positions advance.

use std::sync::Arc;

use super::ops::{check_same_shape, check_width, full_attention_dims, shape_error, DecoderOps, Rope, RopeStyle};
use crate::error::{Error, Result};
use ipfs_accelerate_gpu::llm::params::{
    ActivationType, AttentionParams, ElementwiseOp, ElementwiseParams, EmbedParams, MatmulParams, NormParams,
    RopeParams, MAX_HEAD_DIM,
};
use ipfs_accelerate_gpu::llm::{pack, BufferPool, KQuant, LlmStream, PooledBuffer, WeightFormat};
use ipfs_accelerate_gpu::{bytemuck, wgpu, GpuContext, GpuError, KernelRunner};
use ipfs_accelerate_tensor::quant::{QuantMatrix, QuantType};

/// The WebGPU decoder backend.
#[derive(Debug)]
pub struct GpuDecoderOps {
    stream: LlmStream,
    pool: BufferPool,
    rope_tables: Vec<RopeTable>,
    adapter: String,
    /// How activations and the cache are stored.
    activations: ActivationType,
    /// Overrides [`AttentionParams::choose_splits`] (tests).
    attention_splits: Option<u32>,
}

/// An activation on the device: `[rows, cols]`, row-major, f32 or f16.
#[derive(Debug)]
pub struct GpuAct {
    buffer: PooledBuffer,
    rows: usize,
    cols: usize,
    dtype: ActivationType,
}

impl GpuAct {
    /// Rows (tokens).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (features).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// How its elements are stored.
    pub fn dtype(&self) -> ActivationType {
        self.dtype
    }

    fn bytes(&self) -> u64 {
        (self.rows * self.cols * self.dtype.bytes()) as u64
    }
}

/// A weight matrix on the device, in the `llm_matmul` layout.
#[derive(Debug)]
pub struct GpuMatrix {
    format: WeightFormat,
    rows: usize,
    cols: usize,
    blocks_per_row: usize,
    words: wgpu::Buffer,
    /// Block scales (and mins); `None` for float weights.
    scales: Option<wgpu::Buffer>,
}

impl GpuMatrix {
    /// Rows (outputs).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (inputs).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes held on the device.
    pub fn device_bytes(&self) -> u64 {
        self.words.size() + self.scales.as_ref().map_or(0, wgpu::Buffer::size)
    }
}

/// A weight vector (norm scale, bias) on the device.
#[derive(Debug)]
pub struct GpuVector {
    buffer: wgpu::Buffer,
    len: usize,
}

/// The key/value cache of one sequence on the device.
#[derive(Debug)]
pub struct GpuCache {
    /// Per layer: keys, values, each `[capacity, kv_heads · head_dim]` of the
    /// backend's activation type.
    layers: Vec<(wgpu::Buffer, wgpu::Buffer)>,
    kv_heads: usize,
    head_dim: usize,
    capacity: usize,
}

impl GpuCache {
    /// Bytes held on the device.
    pub fn bytes(&self) -> u64 {
        self.layers.iter().map(|(k, v)| k.size() + v.size()).sum()
    }
}

/// Cosines and sines of one rotary embedding for positions `0..positions`.
#[derive(Debug)]
struct RopeTable {
    inv_freq: Vec<u32>,
    attention_factor: u32,
    positions: usize,
    buffer: wgpu::Buffer,
}

fn gpu_error(e: GpuError) -> Error {
    Error::Backend(format!("webgpu: {e}"))
}

/// `value` as a kernel's `u32`, or an error naming what is too large.
fn to_u32(op: &str, what: &str, value: usize) -> Result<u32> {
    u32::try_from(value).map_err(|_| shape_error(op, format!("{what} = {value} exceeds the GPU kernels' 32-bit sizes")))
}

fn same_shape(op: &str, a: &GpuAct, b: &GpuAct) -> Result<()> {
    check_same_shape(op, (a.rows, a.cols), (b.rows, b.cols))
}

impl GpuDecoderOps {
    /// A backend on `ctx`'s device, with its own kernel runner (and the on-disk
    /// pipeline cache, see [`KernelRunner::new`]).
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        Self::with_runner(Arc::new(KernelRunner::new(ctx)))
    }

    /// A backend sharing `runner` (its compiled pipelines) with other users.
    pub fn with_runner(runner: Arc<KernelRunner>) -> Result<Self> {
        let adapter = runner.context().report().name.clone();
        let stream = LlmStream::new(runner.clone()).map_err(gpu_error)?;
        Ok(GpuDecoderOps {
            stream,
            pool: BufferPool::new(runner),
            rope_tables: Vec::new(),
            adapter,
            activations: ActivationType::F32,
            attention_splits: None,
        })
    }

    /// Stores activations and the KV cache as `activations` from now on (set
    /// it before loading a model). [`ActivationType::F16`] needs the adapter's
    /// `shader-f16`; without it this is an error naming the feature.
    pub fn with_activations(mut self, activations: ActivationType) -> Result<Self> {
        if activations == ActivationType::F16 && !self.runner().context().has_shader_f16() {
            return Err(Error::Backend(format!(
                "webgpu: f16 activations need shader-f16, which the adapter {} lacks; use f32 activations",
                self.adapter
            )));
        }
        self.activations = activations;
        Ok(self)
    }

    /// How activations and the KV cache are stored.
    pub fn activations(&self) -> ActivationType {
        self.activations
    }

    /// Splits every attention's keys into `splits` shares computed apart and
    /// then combined (`None`: chosen per call from the shape, see
    /// [`AttentionParams::choose_splits`]). For tests of the split path.
    pub fn set_attention_splits(&mut self, splits: Option<u32>) {
        self.attention_splits = splits;
    }

    /// The command stream (e.g. to count submissions).
    pub fn stream(&self) -> &LlmStream {
        &self.stream
    }

    fn runner(&self) -> &KernelRunner {
        self.stream.runner()
    }

    /// Dispatches `llm_attention` for `params` (one pass, or split over the
    /// keys and combined) and returns its output.
    fn run_attention(
        &mut self,
        mut params: AttentionParams,
        q: &GpuAct,
        keys: &wgpu::Buffer,
        values: &wgpu::Buffer,
    ) -> Result<GpuAct> {
        let out = self.act("attention", q.rows, q.cols)?;
        if let Some(splits) = self.attention_splits {
            params.splits = splits;
        }
        let placeholder = self.runner().placeholder().clone();
        let kernel = self.activations.kernel(AttentionParams::KERNEL);
        if params.splits <= 1 {
            params.splits = 1;
            self.dispatch(
                kernel,
                &[("PHASE", 0.0)],
                bytemuck::bytes_of(&params),
                &[&q.buffer, keys, values, &placeholder, &out.buffer],
                params.workgroups(),
            )?;
        } else {
            // Few (head, row) pairs over a long span: shares of the keys in
            // parallel, then one combining pass.
            to_u32("attention", "partial results", params.partial_len())?;
            let partials = self.pool.get("attention partials", (params.partial_len() * 4) as u64).map_err(gpu_error)?;
            self.dispatch(
                kernel,
                &[("PHASE", 1.0)],
                bytemuck::bytes_of(&params),
                &[&q.buffer, keys, values, &partials, &placeholder],
                params.split_workgroups(),
            )?;
            self.dispatch(
                kernel,
                &[("PHASE", 2.0)],
                bytemuck::bytes_of(&params),
                &[&placeholder, &placeholder, &placeholder, &partials, &out.buffer],
                params.workgroups(),
            )?;
        }
        Ok(out)
    }

    /// A new activation of the backend's type.
    fn act(&self, op: &str, rows: usize, cols: usize) -> Result<GpuAct> {
        self.act_of(op, rows, cols, self.activations)
    }

    fn act_of(&self, op: &str, rows: usize, cols: usize, dtype: ActivationType) -> Result<GpuAct> {
        let bytes = rows
            .checked_mul(cols)
            .and_then(|n| n.checked_mul(dtype.bytes()))
            .ok_or_else(|| shape_error(op, format!("[{rows}, {cols}] does not fit in memory")))?;
        let buffer = self.pool.get(op, bytes as u64).map_err(gpu_error)?;
        Ok(GpuAct { buffer, rows, cols, dtype })
    }

    /// Copies `bytes` between activation buffers when the copy is
    /// word-aligned (buffer copies move whole 4-byte words); `false` when it
    /// is not, for the caller to use the `columns` kernel instead (an odd
    /// number of f16 values).
    fn copy_aligned(&mut self, src: &wgpu::Buffer, src_offset: u64, dst: &wgpu::Buffer, bytes: u64) -> Result<bool> {
        if !(src_offset | bytes).is_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT) {
            return Ok(false);
        }
        self.stream.copy(src, src_offset, dst, 0, bytes).map_err(gpu_error)?;
        Ok(true)
    }

    /// `out[i] = x[(i / cols) · x.cols + offset + i % cols]` for `i < rows · cols`:
    /// columns `offset..offset + cols` of each row (or, with `rows` 1 and an
    /// offset of whole rows, one row).
    fn columns(&mut self, op: &str, x: &GpuAct, out: &GpuAct, offset: usize) -> Result<()> {
        let params = ElementwiseParams {
            numel: to_u32(op, "elements", out.rows * out.cols)?,
            cols: out.cols.max(1) as u32,
            src_cols: to_u32(op, "columns", x.cols)?,
            src_offset: to_u32(op, "offset", offset)?,
        };
        self.elementwise(ElementwiseOp::Columns, params, &x.buffer, None, &out.buffer)
    }

    /// Inputs must be of the backend's activation type (logits, which are
    /// f32 whatever it is, feed nothing).
    fn check_input(&self, op: &str, x: &GpuAct) -> Result<()> {
        if x.dtype != self.activations {
            return Err(shape_error(
                op,
                format!("a {:?} activation given to a backend storing {:?}", x.dtype, self.activations),
            ));
        }
        Ok(())
    }

    fn dispatch(
        &mut self,
        id: &str,
        constants: &[(&str, f64)],
        uniform: &[u8],
        buffers: &[&wgpu::Buffer],
        workgroups: [u32; 3],
    ) -> Result<()> {
        self.stream.dispatch(id, constants, uniform, buffers, workgroups).map_err(gpu_error)
    }

    fn elementwise(
        &mut self,
        op: ElementwiseOp,
        params: ElementwiseParams,
        a: &wgpu::Buffer,
        b: Option<&wgpu::Buffer>,
        out: &wgpu::Buffer,
    ) -> Result<()> {
        let placeholder = self.runner().placeholder().clone();
        self.dispatch(
            self.activations.kernel(ElementwiseParams::KERNEL),
            &[("OP", op.code())],
            bytemuck::bytes_of(&params),
            &[a, b.unwrap_or(&placeholder), out],
            params.workgroups(),
        )
    }

    /// `x · Wᵀ (+ bias)` into a new activation stored as `out_type` (the
    /// backend's type, or f32 for logits).
    fn matmul(
        &mut self,
        x: &GpuAct,
        weights: &GpuMatrix,
        bias: Option<&GpuVector>,
        out_type: ActivationType,
    ) -> Result<GpuAct> {
        check_width("linear", x.cols, weights.cols)?;
        self.check_input("linear", x)?;
        if let Some(bias) = bias {
            check_width("linear bias", weights.rows, bias.len)?;
        }
        let out = self.act_of("linear", x.rows, weights.rows, out_type)?;
        let params = MatmulParams {
            m: to_u32("linear", "rows", x.rows)?,
            n: to_u32("linear", "outputs", weights.rows)?,
            k: to_u32("linear", "inputs", weights.cols)?,
            nb: weights.blocks_per_row as u32,
        };
        to_u32("linear", "elements", x.rows.saturating_mul(weights.rows.max(weights.cols)))?;
        let kernel = if out_type == self.activations {
            self.activations.kernel(MatmulParams::KERNEL)
        } else {
            self.activations.f32_out_matmul()
        };
        let placeholder = self.runner().placeholder().clone();
        let constants = [
            ("DTYPE", weights.format.code()),
            ("GEMV", if params.gemv() { 1.0 } else { 0.0 }),
            ("HAS_BIAS", if bias.is_some() { 1.0 } else { 0.0 }),
        ];
        self.dispatch(
            kernel,
            &constants,
            bytemuck::bytes_of(&params),
            &[
                &x.buffer,
                &weights.words,
                weights.scales.as_ref().unwrap_or(&placeholder),
                bias.map_or(&placeholder, |b| &b.buffer),
                &out.buffer,
            ],
            params.workgroups(),
        )?;
        Ok(out)
    }

    /// The cosine/sine table of `rope` covering positions `0..positions`,
    /// made or grown on first need.
    fn rope_table(&mut self, rope: &Rope, positions: usize) -> Result<usize> {
        let inv_freq: Vec<u32> = rope.inv_freq.iter().map(|f| f.to_bits()).collect();
        let factor = rope.attention_factor.to_bits();
        let found = self.rope_tables.iter().position(|t| t.inv_freq == inv_freq && t.attention_factor == factor);
        if let Some(i) = found {
            if self.rope_tables[i].positions >= positions {
                return Ok(i);
            }
        }
        // Grow geometrically so a long generation rebuilds the table a few times only.
        let old = found.map_or(0, |i| self.rope_tables[i].positions);
        let positions = positions.max(2 * old).max(256);
        let mut table = Vec::with_capacity(positions * rope.inv_freq.len() * 2);
        for p in 0..positions {
            let position = p as f32;
            for f in &rope.inv_freq {
                // The CPU backend's arithmetic (and transformers'): angle = position · inv_freq in f32.
                let angle = position * f;
                table.push(angle.cos() * rope.attention_factor);
                table.push(angle.sin() * rope.attention_factor);
            }
        }
        let buffer = self.runner().storage_buffer("rope table", bytemuck::cast_slice(&table)).map_err(gpu_error)?;
        let entry = RopeTable { inv_freq, attention_factor: factor, positions, buffer };
        Ok(match found {
            Some(i) => {
                self.rope_tables[i] = entry;
                i
            }
            None => {
                self.rope_tables.push(entry);
                self.rope_tables.len() - 1
            }
        })
    }
}

impl DecoderOps for GpuDecoderOps {
    type Act = GpuAct;
    type Matrix = GpuMatrix;
    type Vector = GpuVector;
    type Cache = GpuCache;

    fn name(&self) -> String {
        match self.activations {
            ActivationType::F32 => format!("webgpu ({})", self.adapter),
            ActivationType::F16 => format!("webgpu ({}, f16 activations)", self.adapter),
        }
    }

    fn matrix(&mut self, weights: &QuantMatrix) -> Result<GpuMatrix> {
        let (rows, cols) = (weights.rows(), weights.cols());
        // Every GGML type the loader accepts has a device layout.
        let bytes = weights.bytes();
        let packed = match weights.dtype() {
            QuantType::F32 => pack::pack(WeightFormat::F32, rows, cols, bytes),
            QuantType::F16 => pack::pack(WeightFormat::F16, rows, cols, bytes),
            QuantType::Q8_0 => pack::pack(WeightFormat::Q8_0, rows, cols, bytes),
            QuantType::Q4_0 => pack::pack(WeightFormat::Q4_0, rows, cols, bytes),
            QuantType::Q4_1 => pack::pack(WeightFormat::Q4_1, rows, cols, bytes),
            QuantType::Q4K => pack::pack_k_quant(KQuant::Q4K, rows, cols, bytes),
            QuantType::Q6K => pack::pack_k_quant(KQuant::Q6K, rows, cols, bytes),
        }
        .map_err(gpu_error)?;
        to_u32("matrix", "elements", rows.saturating_mul(cols))?;
        let words = self.runner().storage_buffer("llm weights", &packed.words).map_err(gpu_error)?;
        let scales = if packed.scales.is_empty() {
            None
        } else {
            let bytes = bytemuck::cast_slice(&packed.scales);
            Some(self.runner().storage_buffer("llm weight scales", bytes).map_err(gpu_error)?)
        };
        Ok(GpuMatrix { format: packed.format, rows, cols, blocks_per_row: packed.blocks_per_row(), words, scales })
    }

    fn vector(&mut self, values: &[f32]) -> Result<GpuVector> {
        let buffer = self.runner().storage_buffer("llm vector", bytemuck::cast_slice(values)).map_err(gpu_error)?;
        Ok(GpuVector { buffer, len: values.len() })
    }

    fn new_cache(&mut self, layers: usize, kv_heads: usize, head_dim: usize, capacity: usize) -> Result<GpuCache> {
        let element = self.activations.bytes();
        let bytes = kv_heads
            .checked_mul(head_dim)
            .and_then(|v| v.checked_mul(capacity))
            .and_then(|v| v.checked_mul(element))
            .ok_or_else(|| shape_error("cache", format!("{capacity} positions do not fit in memory")))?;
        to_u32("cache", "elements per layer", bytes / element)?;
        // New rows are appended with buffer copies, which move whole words.
        if !(kv_heads * head_dim * element).is_multiple_of(4) {
            return Err(shape_error(
                "cache",
                format!("{kv_heads} × {head_dim} key values per position: f16 caches need an even count"),
            ));
        }
        if head_dim > MAX_HEAD_DIM as usize {
            return Err(shape_error(
                "cache",
                format!("head_dim {head_dim} exceeds the GPU attention's {MAX_HEAD_DIM}"),
            ));
        }
        let mut buffers = Vec::with_capacity(layers);
        for _ in 0..layers {
            let k = self.runner().empty_storage_buffer("kv cache keys", bytes as u64).map_err(gpu_error)?;
            let v = self.runner().empty_storage_buffer("kv cache values", bytes as u64).map_err(gpu_error)?;
            buffers.push((k, v));
        }
        Ok(GpuCache { layers: buffers, kv_heads, head_dim, capacity })
    }

    fn upload(&mut self, values: &[f32], rows: usize, cols: usize) -> Result<GpuAct> {
        if values.len() != rows.saturating_mul(cols) {
            return Err(shape_error(
                "upload",
                format!("{} values cannot be a [{rows}, {cols}] activation", values.len()),
            ));
        }
        let out = self.act("upload", rows, cols)?;
        if values.is_empty() {
            return Ok(out);
        }
        // A fresh buffer copied in the stream's order: a pooled buffer may
        // still be the target of commands recorded but not yet submitted.
        // (Staging buffers are padded to 16 bytes, so the copy may round up
        // to whole words.)
        let staging = match self.activations {
            ActivationType::F32 => self.runner().storage_buffer("upload", bytemuck::cast_slice(values)),
            ActivationType::F16 => {
                let halves: Vec<half::f16> = values.iter().map(|&v| half::f16::from_f32(v)).collect();
                self.runner().storage_buffer("upload", bytemuck::cast_slice(&halves))
            }
        }
        .map_err(gpu_error)?;
        let bytes = out.bytes().next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT);
        self.stream.copy(&staging, 0, out.buffer.buffer(), 0, bytes).map_err(gpu_error)?;
        Ok(out)
    }

    fn embed(&mut self, table: &GpuMatrix, ids: &[u32]) -> Result<GpuAct> {
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= table.rows) {
            return Err(shape_error("embed", format!("token id {id} is outside the vocabulary of {}", table.rows)));
        }
        let out = self.act("embed", ids.len(), table.cols)?;
        let params = EmbedParams {
            n_ids: to_u32("embed", "ids", ids.len())?,
            cols: to_u32("embed", "cols", table.cols)?,
            nb: to_u32("embed", "blocks", table.blocks_per_row)?,
            table_rows: to_u32("embed", "rows", table.rows)?,
        };
        to_u32("embed", "elements", ids.len() * table.cols)?;
        let id_buffer = self.runner().storage_buffer("token ids", bytemuck::cast_slice(ids)).map_err(gpu_error)?;
        let placeholder = self.runner().placeholder().clone();
        let scales = table.scales.as_ref().unwrap_or(&placeholder);
        self.dispatch(
            self.activations.kernel(EmbedParams::KERNEL),
            &[("DTYPE", table.format.code())],
            bytemuck::bytes_of(&params),
            &[&table.words, scales, &id_buffer, &out.buffer],
            params.workgroups(),
        )?;
        Ok(out)
    }

    fn rms_norm(&mut self, x: &GpuAct, weight: &GpuVector, eps: f32) -> Result<GpuAct> {
        check_width("rms_norm", x.cols, weight.len)?;
        self.check_input("rms_norm", x)?;
        let out = self.act("rms_norm", x.rows, x.cols)?;
        let params = NormParams { rows: to_u32("rms_norm", "rows", x.rows)?, cols: x.cols as u32, eps, _pad: 0 };
        let placeholder = self.runner().placeholder().clone();
        self.dispatch(
            self.activations.kernel(NormParams::KERNEL),
            &[("LAYER", 0.0)],
            bytemuck::bytes_of(&params),
            &[&x.buffer, &weight.buffer, &placeholder, &out.buffer],
            params.workgroups(),
        )?;
        Ok(out)
    }

    fn layer_norm(&mut self, x: &GpuAct, weight: &GpuVector, bias: &GpuVector, eps: f32) -> Result<GpuAct> {
        check_width("layer_norm", x.cols, weight.len)?;
        check_width("layer_norm", x.cols, bias.len)?;
        self.check_input("layer_norm", x)?;
        let out = self.act("layer_norm", x.rows, x.cols)?;
        let params = NormParams { rows: to_u32("layer_norm", "rows", x.rows)?, cols: x.cols as u32, eps, _pad: 0 };
        self.dispatch(
            self.activations.kernel(NormParams::KERNEL),
            &[("LAYER", 1.0)],
            bytemuck::bytes_of(&params),
            &[&x.buffer, &weight.buffer, &bias.buffer, &out.buffer],
            params.workgroups(),
        )?;
        Ok(out)
    }

    fn linear(&mut self, x: &GpuAct, weights: &GpuMatrix, bias: Option<&GpuVector>) -> Result<GpuAct> {
        self.matmul(x, weights, bias, self.activations)
    }

    fn logits(&mut self, x: &GpuAct, weights: &GpuMatrix) -> Result<Vec<f32>> {
        let logits = self.matmul(x, weights, None, ActivationType::F32)?;
        self.read(&logits)
    }

    fn split_columns(&mut self, x: &GpuAct, widths: &[usize]) -> Result<Vec<GpuAct>> {
        check_width("split_columns", x.cols, widths.iter().sum())?;
        self.check_input("split_columns", x)?;
        let element = x.dtype.bytes();
        let mut parts = Vec::with_capacity(widths.len());
        let mut at = 0;
        for &w in widths {
            let part = self.act("split_columns", x.rows, w)?;
            // One row: its columns are contiguous, a plain copy when word-aligned.
            let copied = x.rows == 1
                && self.copy_aligned(&x.buffer, (at * element) as u64, &part.buffer, (w * element) as u64)?;
            if !copied {
                self.columns("split_columns", x, &part, at)?;
            }
            at += w;
            parts.push(part);
        }
        Ok(parts)
    }

    fn rope(&mut self, x: &mut GpuAct, heads: usize, rope: &Rope, start: usize) -> Result<()> {
        if heads == 0 || !x.cols.is_multiple_of(heads) {
            return Err(shape_error("rope", format!("{} columns are not {heads} heads", x.cols)));
        }
        let head_dim = x.cols / heads;
        let pairs = rope.inv_freq.len();
        if 2 * pairs > head_dim {
            return Err(shape_error("rope", format!("{pairs} rotary pairs exceed the head width {head_dim}")));
        }
        self.check_input("rope", x)?;
        if pairs == 0 || x.rows == 0 {
            return Ok(());
        }
        let end = start + x.rows;
        let params = RopeParams {
            rows: to_u32("rope", "rows", x.rows)?,
            heads: heads as u32,
            head_dim: head_dim as u32,
            pairs: pairs as u32,
            start: to_u32("rope", "start", start)?,
            _pad: [0; 3],
        };
        to_u32("rope", "table entries", end.saturating_mul(pairs).saturating_mul(2))?;
        let table = self.rope_table(rope, end)?;
        let table = self.rope_tables[table].buffer.clone();
        let halves = rope.style == RopeStyle::Halves;
        self.dispatch(
            self.activations.kernel(RopeParams::KERNEL),
            &[("HALVES", if halves { 1.0 } else { 0.0 })],
            bytemuck::bytes_of(&params),
            &[&table, &x.buffer],
            params.workgroups(),
        )
    }

    fn attention(
        &mut self,
        q: &GpuAct,
        k: &GpuAct,
        v: &GpuAct,
        cache: &mut GpuCache,
        layer: usize,
        start: usize,
        heads: usize,
    ) -> Result<GpuAct> {
        let (kv_heads, head_dim, capacity) = (cache.kv_heads, cache.head_dim, cache.capacity);
        let n = q.rows;
        if kv_heads == 0
            || !heads.is_multiple_of(kv_heads)
            || q.cols != heads * head_dim
            || k.cols != kv_heads * head_dim
            || v.cols != k.cols
            || k.rows != n
            || v.rows != n
        {
            return Err(shape_error(
                "attention",
                format!(
                    "q [{n}, {}], k [{}, {}], v [{}, {}] do not match {heads} heads of {head_dim} over {kv_heads} key/value heads",
                    q.cols, k.rows, k.cols, v.rows, v.cols
                ),
            ));
        }
        if start + n > capacity {
            return Err(shape_error(
                "attention",
                format!("positions up to {} exceed the cache of {capacity}", start + n),
            ));
        }
        for (name, x) in [("attention q", q), ("attention k", k), ("attention v", v)] {
            self.check_input(name, x)?;
        }
        let (keys, values) =
            cache.layers.get(layer).ok_or_else(|| shape_error("attention", format!("no cache for layer {layer}")))?;
        // Append this call's keys and values: [n, kv_heads · head_dim] rows are
        // exactly the cache's rows start..start + n (whole words: see new_cache).
        let row_bytes = (kv_heads * head_dim * self.activations.bytes()) as u64;
        let offset = start as u64 * row_bytes;
        self.stream.copy(&k.buffer, 0, keys, offset, k.bytes()).map_err(gpu_error)?;
        self.stream.copy(&v.buffer, 0, values, offset, v.bytes()).map_err(gpu_error)?;
        let params = AttentionParams {
            rows: to_u32("attention", "rows", n)?,
            heads: to_u32("attention", "heads", heads)?,
            kv_heads: kv_heads as u32,
            head_dim: head_dim as u32,
            start: start as u32,
            scale: 1.0 / (head_dim as f32).sqrt(),
            splits: AttentionParams::choose_splits(heads, n, start + n),
            causal: 1,
        };
        self.run_attention(params, q, keys, values)
    }

    fn full_attention(&mut self, q: &GpuAct, k: &GpuAct, v: &GpuAct, heads: usize) -> Result<GpuAct> {
        let (head_dim, kv_heads) = full_attention_dims((q.rows, q.cols), (k.rows, k.cols), (v.rows, v.cols), heads)?;
        for (name, x) in [("full_attention q", q), ("full_attention k", k), ("full_attention v", v)] {
            self.check_input(name, x)?;
        }
        if head_dim > MAX_HEAD_DIM as usize {
            return Err(shape_error(
                "full_attention",
                format!("heads of {head_dim} exceed the kernel's {MAX_HEAD_DIM}"),
            ));
        }
        let params = AttentionParams {
            rows: to_u32("full_attention", "rows", q.rows)?,
            heads: to_u32("full_attention", "heads", heads)?,
            kv_heads: kv_heads as u32,
            head_dim: head_dim as u32,
            start: to_u32("full_attention", "keys", k.rows)?,
            scale: 1.0 / (head_dim as f32).sqrt(),
            splits: AttentionParams::choose_splits(heads, q.rows, k.rows),
            causal: 0,
        };
        self.run_attention(params, q, k.buffer.buffer(), v.buffer.buffer())
    }

    fn silu_mul(&mut self, gate: &GpuAct, up: &GpuAct) -> Result<GpuAct> {
        same_shape("silu_mul", gate, up)?;
        self.check_input("silu_mul", gate)?;
        self.check_input("silu_mul", up)?;
        let out = self.act("silu_mul", gate.rows, gate.cols)?;
        let params = ElementwiseParams::new(to_u32("silu_mul", "elements", gate.rows * gate.cols)?);
        self.elementwise(ElementwiseOp::SiluMul, params, &gate.buffer, Some(&up.buffer), &out.buffer)?;
        Ok(out)
    }

    fn gelu(&mut self, x: &GpuAct) -> Result<GpuAct> {
        self.check_input("gelu", x)?;
        let out = self.act("gelu", x.rows, x.cols)?;
        let params = ElementwiseParams::new(to_u32("gelu", "elements", x.rows * x.cols)?);
        self.elementwise(ElementwiseOp::Gelu, params, &x.buffer, None, &out.buffer)?;
        Ok(out)
    }

    fn gelu_tanh(&mut self, x: &GpuAct) -> Result<GpuAct> {
        self.check_input("gelu_tanh", x)?;
        let out = self.act("gelu_tanh", x.rows, x.cols)?;
        let params = ElementwiseParams::new(to_u32("gelu_tanh", "elements", x.rows * x.cols)?);
        self.elementwise(ElementwiseOp::GeluTanh, params, &x.buffer, None, &out.buffer)?;
        Ok(out)
    }

    fn add_assign(&mut self, x: &mut GpuAct, y: &GpuAct) -> Result<()> {
        same_shape("add", x, y)?;
        self.check_input("add", x)?;
        self.check_input("add", y)?;
        let params = ElementwiseParams::new(to_u32("add", "elements", x.rows * x.cols)?);
        self.elementwise(ElementwiseOp::AddInPlace, params, &y.buffer, None, &x.buffer)
    }

    fn last_row(&mut self, x: &GpuAct) -> Result<GpuAct> {
        if x.rows == 0 {
            return Err(shape_error("last_row", "no rows".into()));
        }
        self.check_input("last_row", x)?;
        let out = self.act("last_row", 1, x.cols)?;
        let row_bytes = (x.cols * x.dtype.bytes()) as u64;
        if !self.copy_aligned(&x.buffer, (x.rows as u64 - 1) * row_bytes, &out.buffer, row_bytes)? {
            self.columns("last_row", x, &out, (x.rows - 1) * x.cols)?;
        }
        Ok(out)
    }

    fn read(&mut self, x: &GpuAct) -> Result<Vec<f32>> {
        if x.bytes() == 0 {
            return Ok(Vec::new());
        }
        // Reads move whole words: an odd count of f16 values reads one more.
        let bytes = self.stream.read(&x.buffer, x.bytes().next_multiple_of(4)).map_err(gpu_error)?;
        Ok(match x.dtype {
            ActivationType::F32 => bytemuck::pod_collect_to_vec(&bytes),
            ActivationType::F16 => {
                let halves: Vec<half::f16> = bytemuck::pod_collect_to_vec(&bytes);
                halves[..x.rows * x.cols].iter().map(|h| h.to_f32()).collect()
            }
        })
    }
}
