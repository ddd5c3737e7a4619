//! Batched products for prompt prefill: dequantize a tile of weight rows once,
//! multiply it against every token with `gemm`.

use super::blocks::dequant_row_with;
use super::{matvec, Kernel, QuantMatrix};
use rayon::prelude::*;

/// Below this many tokens a matrix-vector product per token reads the weights
/// fewer times than it would cost to set up a tile product.
const MIN_GEMM_TOKENS: usize = 4;

/// f32 values per dequantized tile: 256 KiB, so a tile stays in L2 while
/// `gemm` streams the tokens past it.
const TILE_VALUES: usize = 64 * 1024;

/// Weight rows per tile for rows of `cols` values (a multiple of 8, 8..=256).
fn tile_rows(cols: usize) -> usize {
    (TILE_VALUES / cols.max(1)).clamp(8, 256) / 8 * 8
}

/// The output pointer, shared by tiles that write disjoint columns of `y`.
struct SendPtr(*mut f32);
// SAFETY: each tile writes only its own rows' outputs (see `matmul`), so no
// two threads ever touch the same element through this pointer.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    // A method (not field access) so closures capture the whole Sync wrapper.
    fn get(&self) -> *mut f32 {
        self.0
    }
}

/// `y[t] = W x[t]` for `n` tokens (lengths already checked).
pub(crate) fn matmul(m: &QuantMatrix, x: &[f32], n: usize, y: &mut [f32], kernel: Kernel) {
    let (rows, cols) = (m.rows(), m.cols());
    if n == 0 || rows == 0 {
        return;
    }
    if cols == 0 {
        y.fill(0.0);
        return;
    }
    if n < MIN_GEMM_TOKENS {
        for (xt, yt) in x.chunks_exact(cols).zip(y.chunks_exact_mut(rows)) {
            matvec::matvec(m, xt, yt, kernel);
        }
        return;
    }
    let tile = tile_rows(cols);
    let out = SendPtr(y.as_mut_ptr());
    let rb = m.row_bytes();
    let data = &m.bytes()[..];
    (0..rows.div_ceil(tile)).into_par_iter().for_each_init(
        || vec![0.0f32; tile * cols],
        |buf, t| {
            let r0 = t * tile;
            let tr = tile.min(rows - r0);
            let w = &mut buf[..tr * cols];
            for (i, o) in w.chunks_exact_mut(cols).enumerate() {
                let r = r0 + i;
                dequant_row_with(m.dtype(), &data[r * rb..(r + 1) * rb], o, kernel);
            }
            // dst[i][j] = y[j * rows + r0 + i]; lhs[i][k] = w[i * cols + k];
            // rhs[k][j] = x[j * cols + k].
            // SAFETY: i < tr, j < n and k < cols keep every access inside
            // `w`, `x` (n × cols) and `y` (n × rows, checked by the caller);
            // tiles write disjoint rows r0..r0 + tr of each token's output.
            unsafe {
                gemm::gemm(
                    tr,
                    n,
                    cols,
                    out.get().add(r0),
                    rows as isize,
                    1,
                    false,
                    w.as_ptr(),
                    1,
                    cols as isize,
                    x.as_ptr(),
                    cols as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        },
    );
}
