//! [`DecoderOps`] on the CPU: quantized weights stay in their blocks (the
//! tensor crate's `QuantMatrix` kernels dequantize inside the dot
//! products), activations are plain `Vec<f32>`, and the KV cache is one
//! contiguous `[kv_heads, capacity, head_dim]` slab per layer for keys and
//! one for values, so a head's keys are read sequentially.

use super::ops::{check_same_shape, check_width, full_attention_dims, shape_error, DecoderOps, Rope, RopeStyle};
use crate::error::{Error, Result};
use ipfs_accelerate_tensor::cpu::erf;
use ipfs_accelerate_tensor::quant::QuantMatrix;
use rayon::prelude::*;

/// The CPU decoder backend (all cores, through rayon).
#[derive(Debug, Default)]
pub struct CpuOps;

/// A row-major `[rows, cols]` activation.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuAct {
    /// The values.
    pub data: Vec<f32>,
    /// Rows (tokens).
    pub rows: usize,
    /// Columns (features).
    pub cols: usize,
}

impl CpuAct {
    /// An activation from row-major values.
    pub fn new(data: Vec<f32>, rows: usize, cols: usize) -> Result<Self> {
        if data.len() != rows * cols {
            return Err(Error::Backend(format!("{} values cannot be a [{rows}, {cols}] activation", data.len())));
        }
        Ok(CpuAct { data, rows, cols })
    }

    fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }
}

/// Keys and values of one sequence.
#[derive(Debug)]
pub struct CpuCache {
    /// Per layer: keys then values, each `[kv_heads, capacity, head_dim]`.
    layers: Vec<(Vec<f32>, Vec<f32>)>,
    kv_heads: usize,
    head_dim: usize,
    capacity: usize,
}

impl CpuCache {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.layers.iter().map(|(k, v)| (k.len() + v.len()) * 4).sum()
    }
}

impl DecoderOps for CpuOps {
    type Act = CpuAct;
    type Matrix = QuantMatrix;
    type Vector = Vec<f32>;
    type Cache = CpuCache;

    fn name(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }

    fn matrix(&mut self, weights: &QuantMatrix) -> Result<QuantMatrix> {
        Ok(weights.clone())
    }

    fn vector(&mut self, values: &[f32]) -> Result<Vec<f32>> {
        Ok(values.to_vec())
    }

    fn new_cache(&mut self, layers: usize, kv_heads: usize, head_dim: usize, capacity: usize) -> Result<CpuCache> {
        let per = kv_heads
            .checked_mul(head_dim)
            .and_then(|v| v.checked_mul(capacity))
            .ok_or_else(|| shape_error("cache", format!("{capacity} positions do not fit in memory")))?;
        Ok(CpuCache {
            layers: (0..layers).map(|_| (vec![0.0; per], vec![0.0; per])).collect(),
            kv_heads,
            head_dim,
            capacity,
        })
    }

    fn upload(&mut self, values: &[f32], rows: usize, cols: usize) -> Result<CpuAct> {
        CpuAct::new(values.to_vec(), rows, cols)
    }

    fn embed(&mut self, table: &QuantMatrix, ids: &[u32]) -> Result<CpuAct> {
        let cols = table.cols();
        let mut data = vec![0.0; ids.len() * cols];
        for (row, &id) in data.chunks_exact_mut(cols).zip(ids) {
            if id as usize >= table.rows() {
                return Err(shape_error(
                    "embed",
                    format!("token id {id} is outside the vocabulary of {}", table.rows()),
                ));
            }
            table.row_f32(id as usize, row);
        }
        CpuAct::new(data, ids.len(), cols)
    }

    fn rms_norm(&mut self, x: &CpuAct, weight: &Vec<f32>, eps: f32) -> Result<CpuAct> {
        check_width("rms_norm", x.cols, weight.len())?;
        let mut out = x.clone();
        for row in out.data.chunks_exact_mut(x.cols) {
            let mean_square = row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / x.cols as f64;
            let scale = (1.0 / (mean_square + eps as f64).sqrt()) as f32;
            for (v, w) in row.iter_mut().zip(weight) {
                *v = w * (*v * scale);
            }
        }
        Ok(out)
    }

    fn layer_norm(&mut self, x: &CpuAct, weight: &Vec<f32>, bias: &Vec<f32>, eps: f32) -> Result<CpuAct> {
        check_width("layer_norm", x.cols, weight.len())?;
        check_width("layer_norm", x.cols, bias.len())?;
        let mut out = x.clone();
        for row in out.data.chunks_exact_mut(x.cols) {
            let n = x.cols as f64;
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
            let inv = 1.0 / (var + eps as f64).sqrt();
            for ((v, w), b) in row.iter_mut().zip(weight).zip(bias) {
                *v = ((*v as f64 - mean) * inv) as f32 * w + b;
            }
        }
        Ok(out)
    }

    fn linear(&mut self, x: &CpuAct, weights: &QuantMatrix, bias: Option<&Vec<f32>>) -> Result<CpuAct> {
        check_width("linear", x.cols, weights.cols())?;
        let rows = weights.rows();
        let mut out = vec![0.0; x.rows * rows];
        if x.rows == 1 {
            weights.matvec(&x.data, &mut out);
        } else {
            weights.matmul(&x.data, x.rows, &mut out);
        }
        if let Some(bias) = bias {
            check_width("linear bias", rows, bias.len())?;
            for row in out.chunks_exact_mut(rows) {
                row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
            }
        }
        CpuAct::new(out, x.rows, rows)
    }

    fn split_columns(&mut self, x: &CpuAct, widths: &[usize]) -> Result<Vec<CpuAct>> {
        check_width("split_columns", x.cols, widths.iter().sum())?;
        let mut parts: Vec<CpuAct> =
            widths.iter().map(|&w| CpuAct { data: Vec::with_capacity(x.rows * w), rows: x.rows, cols: w }).collect();
        for r in 0..x.rows {
            let mut at = 0;
            for (part, &w) in parts.iter_mut().zip(widths) {
                part.data.extend_from_slice(&x.row(r)[at..at + w]);
                at += w;
            }
        }
        Ok(parts)
    }

    fn rope(&mut self, x: &mut CpuAct, heads: usize, rope: &Rope, start: usize) -> Result<()> {
        if heads == 0 || !x.cols.is_multiple_of(heads) {
            return Err(shape_error("rope", format!("{} columns are not {heads} heads", x.cols)));
        }
        let head_dim = x.cols / heads;
        let pairs = rope.inv_freq.len();
        if 2 * pairs > head_dim {
            return Err(shape_error("rope", format!("{pairs} rotary pairs exceed the head width {head_dim}")));
        }
        let mut cos = vec![0.0f32; pairs];
        let mut sin = vec![0.0f32; pairs];
        for (r, row) in x.data.chunks_exact_mut(x.cols).enumerate() {
            let position = (start + r) as f32;
            for (i, f) in rope.inv_freq.iter().enumerate() {
                // Same float32 arithmetic as transformers: angle = position · inv_freq.
                let angle = position * f;
                cos[i] = angle.cos() * rope.attention_factor;
                sin[i] = angle.sin() * rope.attention_factor;
            }
            for head in row.chunks_exact_mut(head_dim) {
                for i in 0..pairs {
                    let (a, b) = match rope.style {
                        RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                        RopeStyle::Halves => (i, i + pairs),
                    };
                    let (x0, x1) = (head[a], head[b]);
                    head[a] = x0 * cos[i] - x1 * sin[i];
                    head[b] = x1 * cos[i] + x0 * sin[i];
                }
            }
        }
        Ok(())
    }

    fn attention(
        &mut self,
        q: &CpuAct,
        k: &CpuAct,
        v: &CpuAct,
        cache: &mut CpuCache,
        layer: usize,
        start: usize,
        heads: usize,
    ) -> Result<CpuAct> {
        let (kv_heads, head_dim, capacity) = (cache.kv_heads, cache.head_dim, cache.capacity);
        let n = q.rows;
        if q.cols != heads * head_dim || k.cols != kv_heads * head_dim || v.cols != k.cols || k.rows != n || v.rows != n
        {
            return Err(shape_error(
                "attention",
                format!("q [{n}, {}], k [{}, {}], v [{}, {}] do not match {heads} heads of {head_dim} over {kv_heads} key/value heads", q.cols, k.rows, k.cols, v.rows, v.cols),
            ));
        }
        if start + n > capacity {
            return Err(shape_error(
                "attention",
                format!("positions up to {} exceed the cache of {capacity}", start + n),
            ));
        }
        let (keys, values) = cache
            .layers
            .get_mut(layer)
            .ok_or_else(|| shape_error("attention", format!("no cache for layer {layer}")))?;
        // Append this call's keys and values.
        for r in 0..n {
            for h in 0..kv_heads {
                let at = (h * capacity + start + r) * head_dim;
                keys[at..at + head_dim].copy_from_slice(&k.row(r)[h * head_dim..(h + 1) * head_dim]);
                values[at..at + head_dim].copy_from_slice(&v.row(r)[h * head_dim..(h + 1) * head_dim]);
            }
        }
        let group = heads / kv_heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let (keys, values) = (&*keys, &*values);
        // One task per (row, head): each writes its own slice of the output.
        let mut out = vec![0.0f32; n * heads * head_dim];
        let work = |(index, slot): (usize, &mut [f32])| {
            let (r, h) = (index / heads, index % heads);
            let kv = h / group;
            let query = &q.row(r)[h * head_dim..(h + 1) * head_dim];
            let span = start + r + 1;
            let base = kv * capacity * head_dim;
            let end = base + span * head_dim;
            attend(query, &keys[base..end], &values[base..end], scale, slot);
        };
        if n * heads * (start + n) * head_dim > 1 << 16 {
            out.par_chunks_mut(head_dim).enumerate().for_each(work);
        } else {
            out.chunks_mut(head_dim).enumerate().for_each(work);
        }
        CpuAct::new(out, n, heads * head_dim)
    }

    fn full_attention(&mut self, q: &CpuAct, k: &CpuAct, v: &CpuAct, heads: usize) -> Result<CpuAct> {
        let (head_dim, kv_heads) = full_attention_dims((q.rows, q.cols), (k.rows, k.cols), (v.rows, v.cols), heads)?;
        let group = heads / kv_heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let span = k.rows;
        // Keys and values regrouped per head, `[kv_heads, span, head_dim]`, so
        // each (row, head) task reads one contiguous run.
        let per_head = |m: &CpuAct| -> Vec<f32> {
            let mut out = vec![0.0f32; m.data.len()];
            for (p, row) in m.data.chunks_exact(m.cols).enumerate() {
                for h in 0..kv_heads {
                    let at = (h * span + p) * head_dim;
                    out[at..at + head_dim].copy_from_slice(&row[h * head_dim..(h + 1) * head_dim]);
                }
            }
            out
        };
        let (keys, values) = (per_head(k), per_head(v));
        let mut out = vec![0.0f32; q.rows * q.cols];
        let work = |(index, slot): (usize, &mut [f32])| {
            let (r, h) = (index / heads, index % heads);
            let base = (h / group) * span * head_dim;
            let query = &q.row(r)[h * head_dim..(h + 1) * head_dim];
            attend(query, &keys[base..base + span * head_dim], &values[base..base + span * head_dim], scale, slot);
        };
        if q.rows * heads * span * head_dim > 1 << 16 {
            out.par_chunks_mut(head_dim).enumerate().for_each(work);
        } else {
            out.chunks_mut(head_dim).enumerate().for_each(work);
        }
        CpuAct::new(out, q.rows, q.cols)
    }

    fn silu_mul(&mut self, gate: &CpuAct, up: &CpuAct) -> Result<CpuAct> {
        same_shape("silu_mul", gate, up)?;
        let data = gate.data.iter().zip(&up.data).map(|(&g, &u)| g / (1.0 + (-g).exp()) * u).collect();
        CpuAct::new(data, gate.rows, gate.cols)
    }

    fn gelu_tanh(&mut self, x: &CpuAct) -> Result<CpuAct> {
        const SQRT_2_OVER_PI: f32 = 0.797_884_6;
        let data =
            x.data.iter().map(|&v| 0.5 * v * (1.0 + (SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)).tanh())).collect();
        CpuAct::new(data, x.rows, x.cols)
    }

    fn gelu(&mut self, x: &CpuAct) -> Result<CpuAct> {
        let gelu = |v: f32| 0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
        // An encoder's activations (millions of values) are worth splitting.
        let data = if x.data.len() > 1 << 16 {
            x.data.par_iter().map(|&v| gelu(v)).collect()
        } else {
            x.data.iter().map(|&v| gelu(v)).collect()
        };
        CpuAct::new(data, x.rows, x.cols)
    }

    fn add_assign(&mut self, x: &mut CpuAct, y: &CpuAct) -> Result<()> {
        same_shape("add", x, y)?;
        x.data.iter_mut().zip(&y.data).for_each(|(a, b)| *a += b);
        Ok(())
    }

    fn last_row(&mut self, x: &CpuAct) -> Result<CpuAct> {
        if x.rows == 0 {
            return Err(shape_error("last_row", "no rows".into()));
        }
        CpuAct::new(x.row(x.rows - 1).to_vec(), 1, x.cols)
    }

    fn read(&mut self, x: &CpuAct) -> Result<Vec<f32>> {
        Ok(x.data.clone())
    }
}

/// `out = softmax(scale · keys · query) · values` for one query row and one
/// head; `keys` and `values` are that head's `[span, head_dim]` rows.
fn attend(query: &[f32], keys: &[f32], values: &[f32], scale: f32, out: &mut [f32]) {
    let head_dim = query.len();
    let mut scores: Vec<f32> = keys.chunks_exact(head_dim).map(|key| dot(query, key) * scale).collect();
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0f32;
    for s in &mut scores {
        *s = (*s - max).exp();
        total += *s;
    }
    for (s, value) in scores.iter().zip(values.chunks_exact(head_dim)) {
        axpy(s / total, value, out);
    }
}

/// `a · b` with eight independent accumulators, so the compiler can keep
/// them in one vector register (a single running sum cannot be vectorized
/// without reordering the additions).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `y += alpha · x`.
fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    y.iter_mut().zip(x).for_each(|(o, v)| *o += alpha * v);
}

fn same_shape(op: &str, a: &CpuAct, b: &CpuAct) -> Result<()> {
    check_same_shape(op, (a.rows, a.cols), (b.rows, b.cols))
}
