//! Row-wise normalizations (softmax, layerNormalization) and reductions.

use super::super::instr::ReduceKind;
use super::super::simd::{self, multiversion};
use super::PAR_MIN_ELEMS;
use rayon::prelude::*;

multiversion! {
    /// In-place softmax of one contiguous row.
    fn softmax_row(row: &mut [f32]) {
        let max = simd::max(row);
        row.iter_mut().for_each(|v| *v = simd::exp(*v - max));
        let inv = 1.0 / simd::sum(row);
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

/// Softmax over the middle axis of `[outer, len, inner]`.
pub(crate) fn softmax(x: &[f32], out: &mut [f32], outer: usize, len: usize, inner: usize) {
    let n = outer * len * inner;
    if n == 0 {
        return;
    }
    out[..n].copy_from_slice(&x[..n]);
    if inner == 1 {
        if n >= PAR_MIN_ELEMS {
            out[..n].par_chunks_mut(len).for_each(softmax_row);
        } else {
            out[..n].chunks_mut(len).for_each(softmax_row);
        }
        return;
    }
    // Strided axis: gather each column into a scratch row.
    let mut scratch = vec![0.0f32; len];
    for o in 0..outer {
        for i in 0..inner {
            let base = o * len * inner + i;
            for (j, s) in scratch.iter_mut().enumerate() {
                *s = out[base + j * inner];
            }
            softmax_row(&mut scratch);
            for (j, s) in scratch.iter().enumerate() {
                out[base + j * inner] = *s;
            }
        }
    }
}

multiversion! {
    fn layer_norm_row(x: &[f32], scale: Option<&[f32]>, bias: Option<&[f32]>, epsilon: f32, out: &mut [f32]) {
        let n = x.len() as f32;
        let mean = simd::sum(x) / n;
        out.iter_mut().zip(x).for_each(|(o, &v)| *o = v - mean);
        let var = simd::dot(out, out) / n;
        let inv = 1.0 / (var + epsilon).sqrt();
        match (scale, bias) {
            (Some(s), Some(b)) => out.iter_mut().zip(s.iter().zip(b)).for_each(|(o, (&s, &b))| *o = *o * inv * s + b),
            (Some(s), None) => out.iter_mut().zip(s).for_each(|(o, &s)| *o = *o * inv * s),
            (None, Some(b)) => out.iter_mut().zip(b).for_each(|(o, &b)| *o = *o * inv + b),
            (None, None) => out.iter_mut().for_each(|o| *o *= inv),
        }
    }
}

/// Layer normalization of each `cols`-long row.
pub(crate) fn layer_norm(
    x: &[f32],
    scale: Option<&[f32]>,
    bias: Option<&[f32]>,
    cols: usize,
    epsilon: f32,
    out: &mut [f32],
) {
    if cols == 0 {
        return;
    }
    let body = |(o, x): (&mut [f32], &[f32])| layer_norm_row(x, scale, bias, epsilon, o);
    let n = x.len() / cols * cols;
    if n >= PAR_MIN_ELEMS {
        out[..n].par_chunks_mut(cols).zip(x[..n].par_chunks(cols)).for_each(body);
    } else {
        out[..n].chunks_mut(cols).zip(x[..n].chunks(cols)).for_each(body);
    }
}

/// Reduction of `x` (shape `shape`) into `out`, where `out_strides` maps each
/// input index to its output offset (0 along reduced axes).
pub(crate) fn reduce(
    kind: ReduceKind,
    x: &[f32],
    shape: &[usize],
    out_strides: &[usize],
    count: usize,
    out: &mut [f32],
) {
    let init = if kind == ReduceKind::Max { f32::NEG_INFINITY } else { 0.0 };
    out.iter_mut().for_each(|o| *o = init);
    let mut index = vec![0usize; shape.len()];
    let mut off = 0usize;
    for &v in x.iter().take(shape.iter().product()) {
        match kind {
            ReduceKind::Max => out[off] = out[off].max(v),
            _ => out[off] += v,
        }
        // Odometer step, keeping the output offset in sync.
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            off += out_strides[d];
            if index[d] < shape[d] {
                break;
            }
            off -= out_strides[d] * shape[d];
            index[d] = 0;
        }
    }
    if kind == ReduceKind::Mean && count > 0 {
        let inv = 1.0 / count as f32;
        out.iter_mut().for_each(|o| *o *= inv);
    }
}
