//! [`DecoderOps`] on WebGPU (wgpu): weights, activations and the KV cache live
//! on the device, every op is one or two dispatches of the `llm_*` kernels
//! (`crates/gpu/kernels/llm_*.wgsl`), recorded into one command encoder by an
//! [`LlmStream`], and nothing comes back to the host but what [`DecoderOps::read`]
//! asks for — so a decode step is one submission and one small readback.
//!
//! * Weights keep their GGML blocks: F32, F16, Q8_0, Q4_0 and Q4_1 are
//!   repacked once at upload into word-aligned quants plus f32 scales (see
//!   `ipfs_accelerate_gpu::llm::pack`) and dequantized inside the matrix
//!   products. K-quants (Q4_K, Q6_K) have no kernel yet: they are dequantized
//!   to f32 at upload (4–8× their size on the device).
//! * Activations are pooled device buffers ([`BufferPool`]): a decode step
//!   asks for the same few sizes every token.
//! * The cache of each layer is a keys and a values buffer of
//!   `[capacity, kv_heads · head_dim]`, so appending `n` positions is one copy
//!   of the projected `k` and `v` rows each.
//! * Rotary cosines and sines are a device table computed on the host with
//!   the CPU backend's f32 arithmetic (WGSL's `cos`/`sin` are too coarse for
//!   large angles), grown as positions advance.

use std::sync::Arc;

use super::ops::{check_same_shape, check_width, full_attention_dims, shape_error, DecoderOps, Rope, RopeStyle};
use crate::error::{Error, Result};
use ipfs_accelerate_gpu::llm::params::{
    AttentionParams, ElementwiseOp, ElementwiseParams, EmbedParams, MatmulParams, NormParams, RopeParams, MAX_HEAD_DIM,
};
use ipfs_accelerate_gpu::llm::{pack, BufferPool, LlmStream, PooledBuffer, WeightFormat};
use ipfs_accelerate_gpu::{bytemuck, wgpu, GpuContext, GpuError, KernelRunner};
use ipfs_accelerate_tensor::quant::{QuantMatrix, QuantType};

/// The WebGPU decoder backend.
#[derive(Debug)]
pub struct GpuDecoderOps {
    stream: LlmStream,
    pool: BufferPool,
    rope_tables: Vec<RopeTable>,
    adapter: String,
    /// Overrides [`AttentionParams::choose_splits`] (tests).
    attention_splits: Option<u32>,
}

/// An activation on the device: `[rows, cols]` f32, row-major.
#[derive(Debug)]
pub struct GpuAct {
    buffer: PooledBuffer,
    rows: usize,
    cols: usize,
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

    fn bytes(&self) -> u64 {
        (self.rows * self.cols * 4) as u64
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
    /// Per layer: keys, values, each `[capacity, kv_heads · head_dim]`.
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
            attention_splits: None,
        })
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
        if params.splits <= 1 {
            params.splits = 1;
            self.dispatch(
                AttentionParams::KERNEL,
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
                AttentionParams::KERNEL,
                &[("PHASE", 1.0)],
                bytemuck::bytes_of(&params),
                &[&q.buffer, keys, values, &placeholder, &partials],
                params.split_workgroups(),
            )?;
            self.dispatch(
                AttentionParams::KERNEL,
                &[("PHASE", 2.0)],
                bytemuck::bytes_of(&params),
                &[&placeholder, &placeholder, &placeholder, &partials, &out.buffer],
                params.workgroups(),
            )?;
        }
        Ok(out)
    }

    fn act(&self, op: &str, rows: usize, cols: usize) -> Result<GpuAct> {
        let bytes = rows
            .checked_mul(cols)
            .and_then(|n| n.checked_mul(4))
            .ok_or_else(|| shape_error(op, format!("[{rows}, {cols}] does not fit in memory")))?;
        let buffer = self.pool.get(op, bytes as u64).map_err(gpu_error)?;
        Ok(GpuAct { buffer, rows, cols })
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
            ElementwiseParams::KERNEL,
            &[("OP", op.code())],
            bytemuck::bytes_of(&params),
            &[a, b.unwrap_or(&placeholder), out],
            params.workgroups(),
        )
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

/// The device layout of a weight format, or `None` for formats uploaded as f32.
fn weight_format(dtype: QuantType) -> Option<WeightFormat> {
    match dtype {
        QuantType::F32 => Some(WeightFormat::F32),
        QuantType::F16 => Some(WeightFormat::F16),
        QuantType::Q8_0 => Some(WeightFormat::Q8_0),
        QuantType::Q4_0 => Some(WeightFormat::Q4_0),
        QuantType::Q4_1 => Some(WeightFormat::Q4_1),
        _ => None,
    }
}

impl DecoderOps for GpuDecoderOps {
    type Act = GpuAct;
    type Matrix = GpuMatrix;
    type Vector = GpuVector;
    type Cache = GpuCache;

    fn name(&self) -> String {
        format!("webgpu ({})", self.adapter)
    }

    fn matrix(&mut self, weights: &QuantMatrix) -> Result<GpuMatrix> {
        let (rows, cols) = (weights.rows(), weights.cols());
        let packed = match weight_format(weights.dtype()) {
            Some(format) => pack::pack(format, rows, cols, weights.bytes()),
            None => {
                tracing::debug!(dtype = ?weights.dtype(), rows, cols, "no GPU kernel for this format: uploading as f32");
                let values = weights.dequantize();
                pack::pack(WeightFormat::F32, rows, cols, bytemuck::cast_slice(&values))
            }
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
        let bytes = kv_heads
            .checked_mul(head_dim)
            .and_then(|v| v.checked_mul(capacity))
            .and_then(|v| v.checked_mul(4))
            .ok_or_else(|| shape_error("cache", format!("{capacity} positions do not fit in memory")))?;
        to_u32("cache", "elements per layer", bytes / 4)?;
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
        let staging = self.runner().storage_buffer("upload", bytemuck::cast_slice(values)).map_err(gpu_error)?;
        self.stream.copy(&staging, 0, out.buffer.buffer(), 0, out.bytes()).map_err(gpu_error)?;
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
            EmbedParams::KERNEL,
            &[("DTYPE", table.format.code())],
            bytemuck::bytes_of(&params),
            &[&table.words, scales, &id_buffer, &out.buffer],
            params.workgroups(),
        )?;
        Ok(out)
    }

    fn rms_norm(&mut self, x: &GpuAct, weight: &GpuVector, eps: f32) -> Result<GpuAct> {
        check_width("rms_norm", x.cols, weight.len)?;
        let out = self.act("rms_norm", x.rows, x.cols)?;
        let params = NormParams { rows: to_u32("rms_norm", "rows", x.rows)?, cols: x.cols as u32, eps, _pad: 0 };
        let placeholder = self.runner().placeholder().clone();
        self.dispatch(
            NormParams::KERNEL,
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
        let out = self.act("layer_norm", x.rows, x.cols)?;
        let params = NormParams { rows: to_u32("layer_norm", "rows", x.rows)?, cols: x.cols as u32, eps, _pad: 0 };
        self.dispatch(
            NormParams::KERNEL,
            &[("LAYER", 1.0)],
            bytemuck::bytes_of(&params),
            &[&x.buffer, &weight.buffer, &bias.buffer, &out.buffer],
            params.workgroups(),
        )?;
        Ok(out)
    }

    fn linear(&mut self, x: &GpuAct, weights: &GpuMatrix, bias: Option<&GpuVector>) -> Result<GpuAct> {
        check_width("linear", x.cols, weights.cols)?;
        if let Some(bias) = bias {
            check_width("linear bias", weights.rows, bias.len)?;
        }
        let out = self.act("linear", x.rows, weights.rows)?;
        let params = MatmulParams {
            m: to_u32("linear", "rows", x.rows)?,
            n: to_u32("linear", "outputs", weights.rows)?,
            k: to_u32("linear", "inputs", weights.cols)?,
            nb: weights.blocks_per_row as u32,
        };
        to_u32("linear", "elements", x.rows.saturating_mul(weights.rows.max(weights.cols)))?;
        let placeholder = self.runner().placeholder().clone();
        let constants = [
            ("DTYPE", weights.format.code()),
            ("GEMV", if params.gemv() { 1.0 } else { 0.0 }),
            ("HAS_BIAS", if bias.is_some() { 1.0 } else { 0.0 }),
        ];
        self.dispatch(
            MatmulParams::KERNEL,
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

    fn split_columns(&mut self, x: &GpuAct, widths: &[usize]) -> Result<Vec<GpuAct>> {
        check_width("split_columns", x.cols, widths.iter().sum())?;
        let mut parts = Vec::with_capacity(widths.len());
        let mut at = 0;
        for &w in widths {
            let part = self.act("split_columns", x.rows, w)?;
            if x.rows == 1 {
                // One row: its columns are contiguous, a plain copy.
                self.stream.copy(&x.buffer, (at * 4) as u64, &part.buffer, 0, (w * 4) as u64).map_err(gpu_error)?;
            } else {
                let params = ElementwiseParams {
                    numel: to_u32("split_columns", "elements", x.rows * w)?,
                    cols: w.max(1) as u32,
                    src_cols: x.cols as u32,
                    src_offset: at as u32,
                };
                self.elementwise(ElementwiseOp::Columns, params, &x.buffer, None, &part.buffer)?;
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
            RopeParams::KERNEL,
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
        let (keys, values) =
            cache.layers.get(layer).ok_or_else(|| shape_error("attention", format!("no cache for layer {layer}")))?;
        // Append this call's keys and values: [n, kv_heads · head_dim] rows are
        // exactly the cache's rows start..start + n.
        let row_bytes = (kv_heads * head_dim * 4) as u64;
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
        let out = self.act("silu_mul", gate.rows, gate.cols)?;
        let params = ElementwiseParams::new(to_u32("silu_mul", "elements", gate.rows * gate.cols)?);
        self.elementwise(ElementwiseOp::SiluMul, params, &gate.buffer, Some(&up.buffer), &out.buffer)?;
        Ok(out)
    }

    fn gelu(&mut self, x: &GpuAct) -> Result<GpuAct> {
        let out = self.act("gelu", x.rows, x.cols)?;
        let params = ElementwiseParams::new(to_u32("gelu", "elements", x.rows * x.cols)?);
        self.elementwise(ElementwiseOp::Gelu, params, &x.buffer, None, &out.buffer)?;
        Ok(out)
    }

    fn gelu_tanh(&mut self, x: &GpuAct) -> Result<GpuAct> {
        let out = self.act("gelu_tanh", x.rows, x.cols)?;
        let params = ElementwiseParams::new(to_u32("gelu_tanh", "elements", x.rows * x.cols)?);
        self.elementwise(ElementwiseOp::GeluTanh, params, &x.buffer, None, &out.buffer)?;
        Ok(out)
    }

    fn add_assign(&mut self, x: &mut GpuAct, y: &GpuAct) -> Result<()> {
        same_shape("add", x, y)?;
        let params = ElementwiseParams::new(to_u32("add", "elements", x.rows * x.cols)?);
        self.elementwise(ElementwiseOp::AddInPlace, params, &y.buffer, None, &x.buffer)
    }

    fn last_row(&mut self, x: &GpuAct) -> Result<GpuAct> {
        if x.rows == 0 {
            return Err(shape_error("last_row", "no rows".into()));
        }
        let out = self.act("last_row", 1, x.cols)?;
        let row_bytes = (x.cols * 4) as u64;
        self.stream.copy(&x.buffer, (x.rows as u64 - 1) * row_bytes, &out.buffer, 0, row_bytes).map_err(gpu_error)?;
        Ok(out)
    }

    fn read(&mut self, x: &GpuAct) -> Result<Vec<f32>> {
        if x.bytes() == 0 {
            return Ok(Vec::new());
        }
        let bytes = self.stream.read(&x.buffer, x.bytes()).map_err(gpu_error)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}
