//! Element-wise kernels: unary functions, broadcasting binary ops, casts.

use super::super::instr::StridedRead;
use super::super::memory::Mem;
use super::super::simd::{self, multiversion};
use super::PAR_MIN_ELEMS;
use crate::graph::{BinaryKind, UnaryKind};
use crate::{DType, Error, Result};
use half::f16;
use rayon::prelude::*;

#[inline(always)]
fn apply(kind: UnaryKind, x: f32) -> f32 {
    match kind {
        UnaryKind::Gelu => simd::gelu(x),
        UnaryKind::Tanh => simd::tanh(x),
        UnaryKind::Erf => simd::erf(x),
        UnaryKind::Relu => x.max(0.0),
        UnaryKind::Sigmoid => simd::sigmoid(x),
        UnaryKind::Exp => simd::exp(x),
        UnaryKind::Log => x.ln(),
        UnaryKind::Sqrt => x.sqrt(),
        UnaryKind::Neg => -x,
        UnaryKind::Abs => x.abs(),
        UnaryKind::Reciprocal => 1.0 / x,
        UnaryKind::Identity => x,
    }
}

/// Expands to a loop per kind so each loop body is branch-free and vectorizes.
macro_rules! per_kind {
    ($kind:expr, |$f:ident| $body:expr) => {
        match $kind {
            UnaryKind::Gelu => {
                let $f = |x| apply(UnaryKind::Gelu, x);
                $body
            }
            UnaryKind::Tanh => {
                let $f = |x| apply(UnaryKind::Tanh, x);
                $body
            }
            UnaryKind::Erf => {
                let $f = |x| apply(UnaryKind::Erf, x);
                $body
            }
            UnaryKind::Relu => {
                let $f = |x| apply(UnaryKind::Relu, x);
                $body
            }
            UnaryKind::Sigmoid => {
                let $f = |x| apply(UnaryKind::Sigmoid, x);
                $body
            }
            UnaryKind::Exp => {
                let $f = |x| apply(UnaryKind::Exp, x);
                $body
            }
            UnaryKind::Log => {
                let $f = |x| apply(UnaryKind::Log, x);
                $body
            }
            UnaryKind::Sqrt => {
                let $f = |x| apply(UnaryKind::Sqrt, x);
                $body
            }
            UnaryKind::Neg => {
                let $f = |x| apply(UnaryKind::Neg, x);
                $body
            }
            UnaryKind::Abs => {
                let $f = |x| apply(UnaryKind::Abs, x);
                $body
            }
            UnaryKind::Reciprocal => {
                let $f = |x| apply(UnaryKind::Reciprocal, x);
                $body
            }
            UnaryKind::Identity => {
                let $f = |x| apply(UnaryKind::Identity, x);
                $body
            }
        }
    };
}

multiversion! {
    /// `x[i] = f(x[i])` on one thread.
    fn unary_in_place(kind: UnaryKind, x: &mut [f32]) {
        per_kind!(kind, |f| x.iter_mut().for_each(|v| *v = f(*v)))
    }
}

multiversion! {
    fn unary_serial(kind: UnaryKind, x: &[f32], out: &mut [f32]) {
        per_kind!(kind, |f| out.iter_mut().zip(x).for_each(|(o, &v)| *o = f(v)))
    }
}

/// `out[i] = f(x[i])`, split across threads when large.
pub(crate) fn unary(kind: UnaryKind, x: &[f32], out: &mut [f32]) {
    if x.len() >= PAR_MIN_ELEMS {
        out.par_chunks_mut(PAR_MIN_ELEMS / 4)
            .zip(x.par_chunks(PAR_MIN_ELEMS / 4))
            .for_each(|(o, x)| unary_serial(kind, x, o));
    } else {
        unary_serial(kind, x, out);
    }
}

multiversion! {
    /// `x[i] = min(max(x[i], lo), hi)` on one thread.
    fn clamp_in_place(x: &mut [f32], lo: f32, hi: f32) {
        x.iter_mut().for_each(|v| *v = v.max(lo).min(hi))
    }
}

multiversion! {
    fn clamp_serial(x: &[f32], lo: f32, hi: f32, out: &mut [f32]) {
        out.iter_mut().zip(x).for_each(|(o, &v)| *o = v.max(lo).min(hi))
    }
}

/// `out[i] = min(max(x[i], lo), hi)`, split across threads when large.
pub(crate) fn clamp(x: &[f32], lo: f32, hi: f32, out: &mut [f32]) {
    if x.len() >= PAR_MIN_ELEMS {
        out.par_chunks_mut(PAR_MIN_ELEMS / 4)
            .zip(x.par_chunks(PAR_MIN_ELEMS / 4))
            .for_each(|(o, x)| clamp_serial(x, lo, hi, o));
    } else {
        clamp_serial(x, lo, hi, out);
    }
}

#[inline(always)]
fn combine(kind: BinaryKind, a: f32, b: f32) -> f32 {
    match kind {
        BinaryKind::Add => a + b,
        BinaryKind::Sub => a - b,
        BinaryKind::Mul => a * b,
        BinaryKind::Div => a / b,
        BinaryKind::Max => a.max(b),
        BinaryKind::Min => a.min(b),
        BinaryKind::Pow => a.powf(b),
        BinaryKind::Equal => (a == b) as u8 as f32,
        BinaryKind::Greater => (a > b) as u8 as f32,
        BinaryKind::Lesser => (a < b) as u8 as f32,
    }
}

multiversion! {
    fn binary_row(kind: BinaryKind, a: &[f32], sa: usize, b: &[f32], sb: usize, out: &mut [f32]) {
        match (sa, sb) {
            (1, 1) => out.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (&x, &y))| *o = combine(kind, x, y)),
            (1, 0) => out.iter_mut().zip(a).for_each(|(o, &x)| *o = combine(kind, x, b[0])),
            (0, 1) => out.iter_mut().zip(b).for_each(|(o, &y)| *o = combine(kind, a[0], y)),
            _ => out.iter_mut().enumerate().for_each(|(i, o)| *o = combine(kind, a[i * sa], b[i * sb])),
        }
    }
}

/// Broadcasting binary op. Comparisons write `uint8` 0/1.
pub(crate) fn binary(
    kind: BinaryKind,
    a: &StridedRead,
    b: &StridedRead,
    shape: &[usize],
    out: usize,
    mem: &Mem,
) -> Result<()> {
    let (av, bv) = (mem.f32(a.operand), mem.f32(b.operand));
    let inner = shape.last().copied().unwrap_or(1);
    let rows = shape.iter().product::<usize>().checked_div(inner).unwrap_or(0);
    let (sa, sb) = (a.strides.last().copied().unwrap_or(0), b.strides.last().copied().unwrap_or(0));
    let row_start = |row: usize, strides: &[usize]| -> usize {
        let mut rem = row;
        let mut off = 0;
        for d in (0..shape.len().saturating_sub(1)).rev() {
            off += (rem % shape[d]) * strides[d];
            rem /= shape[d];
        }
        off
    };
    if inner == 0 || rows == 0 {
        return Ok(());
    }
    if kind.is_comparison() {
        let dst = mem.bytes_mut(out);
        for (row, o) in dst.chunks_mut(inner).enumerate().take(rows) {
            let (ia, ib) = (row_start(row, &a.strides), row_start(row, &b.strides));
            for (j, o) in o.iter_mut().enumerate() {
                *o = combine(kind, av[ia + j * sa], bv[ib + j * sb]) as u8;
            }
        }
        return Ok(());
    }
    let dst = &mut mem.f32_mut(out)[..rows * inner];
    let body = |(row, o): (usize, &mut [f32])| {
        let (ia, ib) = (row_start(row, &a.strides), row_start(row, &b.strides));
        binary_row(kind, &av[ia..], sa, &bv[ib..], sb, o);
    };
    if rows * inner >= PAR_MIN_ELEMS && rows > 1 {
        dst.par_chunks_mut(inner).enumerate().for_each(body);
    } else {
        dst.chunks_mut(inner).enumerate().for_each(body);
    }
    Ok(())
}

/// Converts between plain dtypes (float ↔ int truncates toward zero, saturating).
pub(crate) fn cast(src: &[u8], from: DType, to: DType, dst: &mut [u8]) -> Result<()> {
    if from == to {
        dst.copy_from_slice(src);
        return Ok(());
    }
    let n = src.len() / from.block_bytes();
    let read = |i: usize| -> f64 {
        match from {
            DType::Float32 => bytemuck::cast_slice::<u8, f32>(src)[i] as f64,
            DType::Float16 => bytemuck::cast_slice::<u8, f16>(src)[i].to_f64(),
            DType::Int32 => bytemuck::cast_slice::<u8, i32>(src)[i] as f64,
            DType::Uint32 => bytemuck::cast_slice::<u8, u32>(src)[i] as f64,
            DType::Int64 => bytemuck::cast_slice::<u8, i64>(src)[i] as f64,
            DType::Int8 => src[i] as i8 as f64,
            DType::Uint8 => src[i] as f64,
            _ => f64::NAN,
        }
    };
    macro_rules! write_all {
        ($t:ty, $conv:expr) => {{
            let out = bytemuck::cast_slice_mut::<u8, $t>(dst);
            for i in 0..n {
                out[i] = $conv(read(i));
            }
        }};
    }
    match to {
        DType::Float32 => write_all!(f32, |v: f64| v as f32),
        DType::Float16 => write_all!(f16, f16::from_f64),
        DType::Int32 => write_all!(i32, |v: f64| v as i32),
        DType::Uint32 => write_all!(u32, |v: f64| v as u32),
        DType::Int64 => write_all!(i64, |v: f64| v as i64),
        DType::Int8 => write_all!(i8, |v: f64| v as i8),
        DType::Uint8 => write_all!(u8, |v: f64| v as u8),
        q => return Err(Error::invalid("cast", format!("cannot cast to {q}"))),
    }
    Ok(())
}
