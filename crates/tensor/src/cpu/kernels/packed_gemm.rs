//! GEMM against weights packed once at load: `out = act(x · W + out)`.
//!
//! Why not only the `gemm` crate: it re-packs the right-hand matrix on every
//! call. For inference the right-hand matrix is a constant weight, and for
//! small batches (a handful of tokens) that re-packing cost more than the
//! product itself (measured: 27% of batch-1 embedding time in packing). Here
//! weights are packed into 16-column panels once per backend, and a 6×16
//! register-blocked micro-kernel (AVX2+FMA, with a portable fallback) streams
//! each panel over all rows. The activation is applied as each tile is stored.

use super::super::memory::SendPtr;
use super::elementwise::unary_in_place;
use crate::graph::UnaryKind;
use rayon::prelude::*;

/// Output columns per panel (two 8-lane AVX registers).
pub(crate) const NR: usize = 16;
/// Rows per micro-tile.
const MR: usize = 6;

/// A `k × n` right-hand matrix packed into panels of [`NR`] columns: panel
/// `p` stores, for each `kk`, the 16 values `W[kk][p*16 .. p*16+16]` (zero
/// padded past `n`).
pub(crate) struct PackedWeights {
    pub n: usize,
    pub k: usize,
    data: Vec<f32>,
}

impl PackedWeights {
    /// Packs `w`, which is `[n, k]` row-major when `transposed` (PyTorch's
    /// `Linear` layout, used as `x · Wᵀ`) and `[k, n]` otherwise.
    pub(crate) fn pack(w: &[f32], n: usize, k: usize, transposed: bool) -> Self {
        let panels = n.div_ceil(NR);
        let mut data = vec![0.0f32; panels * k * NR];
        data.par_chunks_mut(k * NR).enumerate().for_each(|(p, panel)| {
            for j in 0..NR.min(n - p * NR) {
                let col = p * NR + j;
                for kk in 0..k {
                    panel[kk * NR + j] = if transposed { w[col * k + kk] } else { w[kk * n + col] };
                }
            }
        });
        PackedWeights { n, k, data }
    }

    fn panel(&self, p: usize) -> &[f32] {
        &self.data[p * self.k * NR..(p + 1) * self.k * NR]
    }
}

/// `out[m×n] = act(alpha · x[m×k] · W + (accumulate ? out : 0))`, x row-major.
pub(crate) fn packed_gemm(
    x: &[f32],
    m: usize,
    w: &PackedWeights,
    out: &mut [f32],
    accumulate: bool,
    alpha: f32,
    activation: Option<UnaryKind>,
) {
    let (n, k) = (w.n, w.k);
    assert!(x.len() >= m * k && out.len() >= m * n, "packed gemm operands too small");
    let panels = n.div_ceil(NR);
    // Rows per chunk: a chunk of x (rows × k floats) stays in L2 while every
    // panel of its task streams past it.
    let chunk_rows = ((64 * 1024 / k.max(1)) / MR * MR).clamp(MR, 32 * MR);
    let chunks = m.div_ceil(chunk_rows);
    // Panels per task: about two tasks per thread when there is one chunk.
    let threads = rayon::current_num_threads();
    let group = panels.div_ceil(2 * threads).max(1);
    let groups = panels.div_ceil(group);
    let out_ptr = SendPtr(out.as_mut_ptr());
    let run_task = |task: usize| {
        let (chunk, g) = (task / groups, task % groups);
        let rows_end = ((chunk + 1) * chunk_rows).min(m);
        for p in g * group..((g + 1) * group).min(panels) {
            let panel = w.panel(p);
            let cols = NR.min(n - p * NR);
            let mut row = chunk * chunk_rows;
            while row < rows_end {
                let rows = MR.min(rows_end - row);
                // SAFETY: a task owns output columns p*16..p*16+cols of its rows;
                // no other task touches them. Indices stay below m*n (asserted above).
                let dst = unsafe { out_ptr.get().add(row * n + p * NR) };
                if cols == NR {
                    // Full panel: the kernel reads and writes the output rows in place.
                    unsafe { micro_kernel(&x[row * k..], k, rows, panel, alpha, dst, n, accumulate) };
                    if let Some(kind) = activation {
                        for r in 0..rows {
                            unary_in_place(kind, unsafe { std::slice::from_raw_parts_mut(dst.add(r * n), NR) });
                        }
                    }
                } else {
                    // Ragged last panel: go through a full-width tile.
                    let mut tile = [[0.0f32; NR]; MR];
                    for (r, t) in tile.iter_mut().enumerate().take(rows) {
                        if accumulate {
                            unsafe { std::ptr::copy_nonoverlapping(dst.add(r * n), t.as_mut_ptr(), cols) };
                        }
                    }
                    unsafe { micro_kernel(&x[row * k..], k, rows, panel, alpha, tile.as_mut_ptr().cast(), NR, true) };
                    for (r, t) in tile.iter_mut().enumerate().take(rows) {
                        if let Some(kind) = activation {
                            unary_in_place(kind, &mut t[..cols]);
                        }
                        unsafe { std::ptr::copy_nonoverlapping(t.as_ptr(), dst.add(r * n), cols) };
                    }
                }
                row += rows;
            }
        }
    };
    let tasks = chunks * groups;
    if 2 * m * n * k >= 1 << 20 && tasks > 1 {
        (0..tasks).into_par_iter().for_each(run_task);
    } else {
        (0..tasks).for_each(run_task);
    }
}

/// `dst[r] = alpha · Σ_kk x[r*k + kk] · panel[kk] (+ dst[r] when accumulating)`
/// for `rows ≤ MR` rows of 16 columns, rows `ldd` floats apart.
///
/// # Safety
/// `dst` must be valid for reads and writes of `rows` rows of 16 floats, `ldd` apart.
#[allow(clippy::too_many_arguments)]
unsafe fn micro_kernel(
    x: &[f32],
    k: usize,
    rows: usize,
    panel: &[f32],
    alpha: f32,
    dst: *mut f32,
    ldd: usize,
    accumulate: bool,
) {
    assert!(rows <= MR && x.len() >= (rows - 1) * k + k && panel.len() >= k * NR);
    #[cfg(target_arch = "x86_64")]
    if super::super::simd::has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA; x and panel bounds are asserted above.
        unsafe { avx2::micro_kernel(x, k, rows, panel, alpha, dst, ldd, accumulate) };
        return;
    }
    for r in 0..rows {
        let xr = &x[r * k..r * k + k];
        let mut acc = [0.0f32; NR];
        for (kk, &xv) in xr.iter().enumerate() {
            let wv = &panel[kk * NR..kk * NR + NR];
            for j in 0..NR {
                acc[j] += xv * wv[j];
            }
        }
        // SAFETY: the caller guarantees `dst` rows are valid.
        let out = unsafe { std::slice::from_raw_parts_mut(dst.add(r * ldd), NR) };
        for j in 0..NR {
            out[j] = alpha * acc[j] + if accumulate { out[j] } else { 0.0 };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// AVX2+FMA micro-kernel: 6 rows × 16 columns in 12 accumulators.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn micro_kernel(
        x: &[f32],
        k: usize,
        rows: usize,
        panel: &[f32],
        alpha: f32,
        dst: *mut f32,
        ldd: usize,
        accumulate: bool,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let xp = x.as_ptr();
        let wp = panel.as_ptr();
        macro_rules! body {
            ($rows:literal) => {
                for kk in 0..k {
                    // Weights stream from memory at small batch sizes: fetch ahead.
                    _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add(kk * NR + 32 * NR) as *const i8);
                    let w0 = _mm256_loadu_ps(wp.add(kk * NR));
                    let w1 = _mm256_loadu_ps(wp.add(kk * NR + 8));
                    for r in 0..$rows {
                        let xv = _mm256_broadcast_ss(&*xp.add(r * k + kk));
                        acc[r][0] = _mm256_fmadd_ps(xv, w0, acc[r][0]);
                        acc[r][1] = _mm256_fmadd_ps(xv, w1, acc[r][1]);
                    }
                }
            };
        }
        // A fixed row count per loop lets the compiler keep all accumulators in registers.
        match rows {
            6 => body!(6),
            5 => body!(5),
            4 => body!(4),
            3 => body!(3),
            2 => body!(2),
            _ => body!(1),
        }
        let a = _mm256_set1_ps(alpha);
        for (r, acc) in acc.iter().enumerate().take(rows) {
            let t = dst.add(r * ldd);
            if accumulate {
                _mm256_storeu_ps(t, _mm256_fmadd_ps(acc[0], a, _mm256_loadu_ps(t)));
                _mm256_storeu_ps(t.add(8), _mm256_fmadd_ps(acc[1], a, _mm256_loadu_ps(t.add(8))));
            } else {
                _mm256_storeu_ps(t, _mm256_mul_ps(acc[0], a));
                _mm256_storeu_ps(t.add(8), _mm256_mul_ps(acc[1], a));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|kk| x[i * k + kk] * w[j * k + kk]).sum();
            }
        }
        out
    }

    #[test]
    fn matches_naive_for_ragged_shapes() {
        for &(m, n, k) in &[(1, 1, 1), (7, 17, 5), (13, 33, 64), (6, 16, 3), (20, 100, 37)] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0).collect();
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0).collect();
            let packed = PackedWeights::pack(&w, n, k, true);
            let mut out = vec![1.0; m * n];
            packed_gemm(&x, m, &packed, &mut out, true, 2.0, None);
            let want = naive(&x, &w, m, n, k);
            for (o, w) in out.iter().zip(&want) {
                assert!((o - (1.0 + 2.0 * w)).abs() < 1e-4, "{m}x{n}x{k}: {o} vs {}", 1.0 + 2.0 * w);
            }
        }
    }
}
