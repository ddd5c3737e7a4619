//! f32 -> F32/F16/Q8_0/Q4_0/Q4_1, with ggml's reference (round-to-nearest) quantizers.
//!
//! These mirror `quantize_row_*_ref` in ggml-quants.c, so a matrix quantized
//! here has the same bytes llama.cpp's `quantize` would write for that type
//! (without an importance matrix): the integers are computed from the f32
//! scale, and the scale is then stored rounded to f16.

use super::blocks::QK;
use super::QuantType;
use half::f16;

fn put_f16(out: &mut Vec<u8>, v: f32) {
    out.extend_from_slice(&f16::from_f32(v).to_le_bytes());
}

/// Q8_0: d = max|x| / 127, q = round(x / d).
fn q8_0_block(x: &[f32], out: &mut Vec<u8>) {
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(out, d);
    // f32::round rounds half away from zero, like C's roundf.
    out.extend(x.iter().map(|&v| (v * id).round() as i8 as u8));
}

/// Q4_0: d = (the value of largest magnitude) / -8, q = min(15, trunc(x/d + 8.5)).
fn q4_0_block(x: &[f32], out: &mut Vec<u8>) {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(out, d);
    // `as i8` truncates toward zero like ggml's (int8_t) cast (the argument is >= 0 here).
    let q = |v: f32| ((v * id + 8.5) as i8).min(15) as u8;
    out.extend((0..QK / 2).map(|j| q(x[j]) | (q(x[j + QK / 2]) << 4)));
}

/// Q4_1: d = (max - min) / 15, m = min, q = min(15, trunc((x - min)/d + 0.5)).
fn q4_1_block(x: &[f32], out: &mut Vec<u8>) {
    let (min, max) = x.iter().fold((f32::MAX, -f32::MAX), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    put_f16(out, d);
    put_f16(out, min);
    let q = |v: f32| (((v - min) * id + 0.5) as i8).min(15) as u8;
    out.extend((0..QK / 2).map(|j| q(x[j]) | (q(x[j + QK / 2]) << 4)));
}

/// Encodes `values` (a whole number of blocks of `dtype`) as `dtype` bytes.
///
/// Returns `None` for the K-quants, whose quantizers (an iterative search
/// for scales) this crate does not implement.
pub(crate) fn quantize(dtype: QuantType, values: &[f32]) -> Option<Vec<u8>> {
    let n_blocks = values.len() / dtype.block_size();
    let mut out = Vec::with_capacity(n_blocks * dtype.block_bytes());
    match dtype {
        QuantType::F32 => values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        QuantType::F16 => values.iter().for_each(|&v| put_f16(&mut out, v)),
        QuantType::Q8_0 => values.chunks_exact(QK).for_each(|b| q8_0_block(b, &mut out)),
        QuantType::Q4_0 => values.chunks_exact(QK).for_each(|b| q4_0_block(b, &mut out)),
        QuantType::Q4_1 => values.chunks_exact(QK).for_each(|b| q4_1_block(b, &mut out)),
        QuantType::Q4K | QuantType::Q6K => return None,
    }
    Some(out)
}
