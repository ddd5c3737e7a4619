//! Matrix products on the `gemm` crate, with bias/residual pre-fill and a fused activation.

use super::super::instr::GemmInstr;
use super::super::memory::{Mem, SendPtr};
use super::elementwise::unary_in_place;
use super::PAR_MIN_ELEMS;
use crate::Result;
use gemm::Parallelism;
use rayon::prelude::*;

fn parallelism(flops: usize) -> Parallelism {
    // Small products lose more to thread hand-off than they gain.
    if flops < 1 << 18 {
        Parallelism::None
    } else {
        Parallelism::Rayon(rayon::current_num_threads())
    }
}

/// `dst (m×n, row-major, ld = n) = [dst +] alpha · A · B`, A and B given by strides.
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul_raw(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    b_strides: (usize, usize),
    alpha: f32,
) {
    matmul_strided(m, n, k, dst, accumulate, a, a_strides, b, b_strides, alpha, parallelism(m * n * k));
}

/// [`matmul_raw`] on this thread only: for callers that already run one
/// task per thread (attention runs one per sequence and head).
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul_serial(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    b_strides: (usize, usize),
    alpha: f32,
) {
    matmul_strided(m, n, k, dst, false, a, a_strides, b, b_strides, alpha, Parallelism::None);
}

#[allow(clippy::too_many_arguments)]
fn matmul_strided(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
    alpha: f32,
    parallelism: Parallelism,
) {
    assert!(dst.len() >= m * n, "gemm output too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    assert!((m - 1) * a_rs + (k - 1) * a_cs < a.len(), "gemm lhs out of range");
    assert!((k - 1) * b_rs + (n - 1) * b_cs < b.len(), "gemm rhs out of range");
    // SAFETY: the asserts above keep every index the product touches in range.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            alpha,
            false,
            false,
            false,
            parallelism,
        );
    }
}

pub(crate) fn gemm(g: &GemmInstr, mem: &Mem) -> Result<()> {
    let (m, n, k) = (g.m, g.n, g.k);
    let out = &mut mem.f32_mut(g.out)[..m * n];
    // Pre-fill the output with the bias and residual terms; the product accumulates on top.
    if !g.init.is_empty() {
        let fill_row = |(i, row): (usize, &mut [f32])| {
            for (ti, t) in g.init.iter().enumerate() {
                let data = mem.f32(t.operand);
                let base = i * t.row_stride;
                let first = ti == 0;
                if t.col_stride == 1 && t.scale == 1.0 {
                    let src = &data[base..base + n];
                    if first {
                        row.copy_from_slice(src);
                    } else {
                        row.iter_mut().zip(src).for_each(|(o, s)| *o += s);
                    }
                } else {
                    for (j, o) in row.iter_mut().enumerate() {
                        let v = t.scale * data[base + j * t.col_stride];
                        *o = if first { v } else { *o + v };
                    }
                }
            }
        };
        if m * n >= PAR_MIN_ELEMS {
            out.par_chunks_mut(n).enumerate().for_each(fill_row);
        } else {
            out.chunks_mut(n).enumerate().for_each(fill_row);
        }
    }
    let a = mem.f32(g.a);
    if let Some(i) = g.packed_b {
        // Activation is applied tile by tile inside.
        super::packed_gemm::packed_gemm(a, m, &mem.packed[i], out, !g.init.is_empty(), g.alpha, g.activation);
        return Ok(());
    }
    let b = mem.f32(g.b);
    let a_strides = if g.a_transpose { (1, m) } else { (k, 1) };
    let b_strides = if g.b_transpose { (1, k) } else { (n, 1) };
    matmul_raw(m, n, k, out, !g.init.is_empty(), a, a_strides, b, b_strides, g.alpha);
    if let Some(kind) = g.activation {
        if m * n >= PAR_MIN_ELEMS {
            out.par_chunks_mut(n * (PAR_MIN_ELEMS / n.max(1)).max(1)).for_each(|c| unary_in_place(kind, c));
        } else {
            unary_in_place(kind, out);
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_matmul(
    a: usize,
    b: usize,
    out: usize,
    m: usize,
    n: usize,
    k: usize,
    offsets: &[(usize, usize)],
    mem: &Mem,
) -> Result<()> {
    let (a, b) = (mem.f32(a), mem.f32(b));
    let dst = SendPtr(mem.f32_mut(out).as_mut_ptr());
    let run = |(i, &(ao, bo)): (usize, &(usize, usize))| {
        // SAFETY: batch items write disjoint m×n blocks of the output.
        let d = unsafe { std::slice::from_raw_parts_mut(dst.get().add(i * m * n), m * n) };
        matmul_raw(m, n, k, d, false, &a[ao..ao + m * k], (k, 1), &b[bo..bo + k * n], (n, 1), 1.0);
    };
    if offsets.len() > 1 && m * n * k * offsets.len() >= 1 << 18 {
        offsets.par_iter().enumerate().for_each(run);
    } else {
        offsets.iter().enumerate().for_each(run);
    }
    Ok(())
}
