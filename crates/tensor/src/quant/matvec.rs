//! Matrix-vector products: kernel selection and the parallel row driver.

use super::blocks::QK;
use super::scalar::{self, RowDot};
use super::{Kernel, QuantMatrix, QuantType};
use rayon::prelude::*;

/// Weight bytes per parallel task: large enough that rayon's hand-off (about
/// a microsecond) is noise, small enough that even a 576-row matrix splits
/// over every core.
pub(crate) const CHUNK_BYTES: usize = 32 * 1024;

/// Sets `y[r] = f(row r)` for every row, in parallel over chunks of rows.
pub(crate) fn for_each_row(m: &QuantMatrix, y: &mut [f32], f: impl Fn(&[u8]) -> f32 + Sync) {
    let rb = m.row_bytes();
    if rb == 0 {
        // Zero columns: every dot product is empty.
        y.fill(0.0);
        return;
    }
    let chunk = (CHUNK_BYTES / rb).max(1);
    let data = &m.bytes()[..];
    let run = |(c, ys): (usize, &mut [f32])| {
        let r0 = c * chunk;
        for (i, yi) in ys.iter_mut().enumerate() {
            let r = r0 + i;
            *yi = f(&data[r * rb..(r + 1) * rb]);
        }
    };
    if m.rows() <= chunk {
        run((0, y));
    } else {
        y.par_chunks_mut(chunk).enumerate().for_each(run);
    }
}

/// Sums of `x` over each 32-value block (empty unless `x` is whole blocks).
pub(crate) fn block_sums(x: &[f32]) -> Vec<f32> {
    if !x.len().is_multiple_of(QK) {
        return Vec::new();
    }
    x.chunks_exact(QK).map(|b| b.iter().sum()).collect()
}

/// The row-dot kernel for `dtype` under `kernel`.
pub(crate) fn select(dtype: QuantType, kernel: Kernel) -> RowDot {
    if kernel.use_simd() {
        #[cfg(target_arch = "x86_64")]
        if let Some(f) = super::simd_x86::row_dot(dtype, kernel.allow_avx512()) {
            return f;
        }
    }
    scalar::row_dot(dtype)
}

/// `y = W x` (lengths already checked).
pub(crate) fn matvec(m: &QuantMatrix, x: &[f32], y: &mut [f32], kernel: Kernel) {
    let dot = select(m.dtype(), kernel);
    let xs = if m.dtype() == QuantType::Q4_1 { block_sums(x) } else { Vec::new() };
    for_each_row(m, y, |row| dot(row, x, &xs));
}
