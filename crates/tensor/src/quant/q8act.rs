//! The 8-bit-activation path: x is quantized per 32-block like llama.cpp's
//! Q8_0 (but with an f32 scale), and each weight block is multiplied with
//! integer dot products, one float multiply per block.

use super::blocks::{f16_at, QK};
use super::{matvec, Kernel, QuantMatrix, QuantType};

/// An activation vector quantized to 8 bits per 32-value block.
pub(crate) struct Q8Act {
    /// The integers, `round(x / d)`, in `-127..=127`.
    pub q: Vec<i8>,
    /// Per-block scale `max|x| / 127`.
    pub d: Vec<f32>,
    /// Per-block sum of `q` (Q4_0's −8 offset and the VNNI sign trick use it).
    pub qsum: Vec<i32>,
    /// Per-block exact sum of `x` (Q4_1's min multiplies it).
    pub xs: Vec<f32>,
    /// Per block `[d, -8 · d · qsum]`: Q4_0's scale and offset term, side by
    /// side so a SIMD kernel multiplies both by the weight scale at once.
    pub pair_q4_0: Vec<[f32; 2]>,
    /// Per block `[d, xs]`: Q4_1's `[d_w, m]` times this is its scale and min term.
    pub pair_q4_1: Vec<[f32; 2]>,
}

/// Quantizes `x` (whole 32-blocks) with round-to-nearest.
pub(crate) fn quantize_act(x: &[f32]) -> Q8Act {
    let nb = x.len() / QK;
    let mut a = Q8Act {
        q: Vec::with_capacity(x.len()),
        d: Vec::with_capacity(nb),
        qsum: Vec::with_capacity(nb),
        xs: Vec::with_capacity(nb),
        pair_q4_0: Vec::with_capacity(nb),
        pair_q4_1: Vec::with_capacity(nb),
    };
    for b in x.chunks_exact(QK) {
        let amax = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let start = a.q.len();
        // Round half away from zero (as C's roundf) without calling libm:
        // x86_64's baseline has no round instruction, and a libm call per
        // value would cost as much as the product itself.
        a.q.extend(b.iter().map(|&v| {
            let s = v * id;
            (s + 0.5f32.copysign(s)) as i8
        }));
        a.qsum.push(a.q[start..].iter().map(|&q| i32::from(q)).sum());
        let (qsum, xs) = (*a.qsum.last().unwrap_or(&0), b.iter().sum::<f32>());
        a.d.push(d);
        a.xs.push(xs);
        a.pair_q4_0.push([d, -8.0 * d * qsum as f32]);
        a.pair_q4_1.push([d, xs]);
    }
    a
}

/// Row-dot kernel against a quantized activation.
pub(crate) type RowDotQ8 = fn(row: &[u8], a: &Q8Act) -> f32;

fn q8_0_row(row: &[u8], a: &Q8Act) -> f32 {
    let mut total = 0.0f32;
    for (i, b) in row.chunks_exact(34).enumerate() {
        let qx = &a.q[i * QK..i * QK + QK];
        let s: i32 = b[2..].iter().zip(qx).map(|(&w, &v)| i32::from(w as i8) * i32::from(v)).sum();
        total += f16_at(b, 0) * a.d[i] * s as f32;
    }
    total
}

fn q4_0_row(row: &[u8], a: &Q8Act) -> f32 {
    let mut total = 0.0f32;
    for (i, b) in row.chunks_exact(18).enumerate() {
        let qx = &a.q[i * QK..i * QK + QK];
        let mut s = 0i32;
        for (l, &w) in b[2..].iter().enumerate() {
            s += i32::from(w & 0x0f) * i32::from(qx[l]) + i32::from(w >> 4) * i32::from(qx[l + 16]);
        }
        total += f16_at(b, 0) * a.d[i] * (s - 8 * a.qsum[i]) as f32;
    }
    total
}

fn q4_1_row(row: &[u8], a: &Q8Act) -> f32 {
    let mut total = 0.0f32;
    for (i, b) in row.chunks_exact(20).enumerate() {
        let qx = &a.q[i * QK..i * QK + QK];
        let mut s = 0i32;
        for (l, &w) in b[4..].iter().enumerate() {
            s += i32::from(w & 0x0f) * i32::from(qx[l]) + i32::from(w >> 4) * i32::from(qx[l + 16]);
        }
        total += f16_at(b, 0) * a.d[i] * s as f32 + f16_at(b, 2) * a.xs[i];
    }
    total
}

/// The scalar kernel for `dtype`, if it has an integer path.
fn scalar_row_dot(dtype: QuantType) -> Option<RowDotQ8> {
    match dtype {
        QuantType::Q8_0 => Some(q8_0_row),
        QuantType::Q4_0 => Some(q4_0_row),
        QuantType::Q4_1 => Some(q4_1_row),
        _ => None,
    }
}

/// `y ≈ W x` with x quantized to 8 bits (lengths already checked).
pub(crate) fn matvec(m: &QuantMatrix, x: &[f32], y: &mut [f32], kernel: Kernel) {
    let Some(scalar) = scalar_row_dot(m.dtype()) else {
        // No integer kernel for this type: the exact path is the fallback.
        return matvec::matvec(m, x, y, kernel);
    };
    let mut dot = scalar;
    if kernel.use_simd() {
        #[cfg(target_arch = "x86_64")]
        if let Some(f) = super::simd_x86::row_dot_q8(m.dtype(), kernel.allow_avx512()) {
            dot = f;
        }
    }
    let a = quantize_act(x);
    matvec::for_each_row(m, y, |row| dot(row, &a));
}
