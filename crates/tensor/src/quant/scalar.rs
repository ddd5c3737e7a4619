//! Portable row-dot kernels: the fallback on every CPU and the reference the
//! SIMD kernels are tested against.
//!
//! Each computes `sum_i w_i * x_i` for one row of weights in f32. Block scales
//! are factored out of each block's sum (`d * sum(q_i * x_i)`), and Q4_1's
//! min is applied as `m * sum(x_i)` with the block sums of x computed once per
//! matvec; both equal the dequantize-then-dot sum up to f32 rounding.

use super::blocks::{dequant_block, f16_at, QK, QK_K};
use super::QuantType;
use half::f16;

/// Dot product of one row of weights with `x`; `xs[b]` is the sum of
/// `x[32 b .. 32 b + 32]` (used by formats with a per-block min).
pub(crate) type RowDot = fn(row: &[u8], x: &[f32], xs: &[f32]) -> f32;

/// Plain f32 dot product, four partial sums so the compiler can vectorize it.
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (p, q) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += p[k] * q[k];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(p, q)| p * q).sum();
    acc.iter().sum::<f32>() + tail
}

fn f32_row(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    let mut acc = [0.0f32; 4];
    for (i, (w, xv)) in row.chunks_exact(4).zip(x).enumerate() {
        acc[i & 3] += f32::from_le_bytes([w[0], w[1], w[2], w[3]]) * xv;
    }
    acc.iter().sum()
}

fn f16_row(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    let mut acc = [0.0f32; 4];
    for (i, (w, xv)) in row.chunks_exact(2).zip(x).enumerate() {
        acc[i & 3] += f16::from_le_bytes([w[0], w[1]]).to_f32() * xv;
    }
    acc.iter().sum()
}

fn q8_0_row(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    let mut total = 0.0f32;
    for (b, xb) in row.chunks_exact(34).zip(x.chunks_exact(QK)) {
        let s: f32 = b[2..].iter().zip(xb).map(|(&q, &v)| f32::from(q as i8) * v).sum();
        total += f16_at(b, 0) * s;
    }
    total
}

fn q4_0_row(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    let mut total = 0.0f32;
    for (b, xb) in row.chunks_exact(18).zip(x.chunks_exact(QK)) {
        let mut s = 0.0f32;
        for (l, &q) in b[2..].iter().enumerate() {
            s += (f32::from(q & 0x0f) - 8.0) * xb[l] + (f32::from(q >> 4) - 8.0) * xb[l + 16];
        }
        total += f16_at(b, 0) * s;
    }
    total
}

fn q4_1_row(row: &[u8], x: &[f32], xs: &[f32]) -> f32 {
    let mut total = 0.0f32;
    for ((b, xb), &sx) in row.chunks_exact(20).zip(x.chunks_exact(QK)).zip(xs) {
        let mut s = 0.0f32;
        for (l, &q) in b[4..].iter().enumerate() {
            s += f32::from(q & 0x0f) * xb[l] + f32::from(q >> 4) * xb[l + 16];
        }
        total += f16_at(b, 0) * s + f16_at(b, 2) * sx;
    }
    total
}

/// K-quants: dequantize each super-block exactly as the reference, then dot.
pub(crate) fn kquant_row(dtype: QuantType, row: &[u8], x: &[f32], dot: fn(&[f32], &[f32]) -> f32) -> f32 {
    let mut buf = [0.0f32; QK_K];
    let bb = dtype.block_bytes();
    row.chunks_exact(bb)
        .zip(x.chunks_exact(QK_K))
        .map(|(b, xb)| {
            dequant_block(dtype, b, &mut buf);
            dot(&buf, xb)
        })
        .sum()
}

fn q4k_row(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    kquant_row(QuantType::Q4K, row, x, dot_f32)
}

fn q6k_row(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
    kquant_row(QuantType::Q6K, row, x, dot_f32)
}

/// The scalar row-dot kernel for `dtype`.
pub(crate) fn row_dot(dtype: QuantType) -> RowDot {
    match dtype {
        QuantType::F32 => f32_row,
        QuantType::F16 => f16_row,
        QuantType::Q8_0 => q8_0_row,
        QuantType::Q4_0 => q4_0_row,
        QuantType::Q4_1 => q4_1_row,
        QuantType::Q4K => q4k_row,
        QuantType::Q6K => q6k_row,
    }
}
