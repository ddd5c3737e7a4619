//! `averagePool2d` and `maxPool2d` on NCHW data, plane by plane in parallel.
//!
//! Padded positions are skipped: an average divides by the number of window
//! positions inside the input, a maximum only looks at those. A window lying
//! wholly in the padding gives 0.

use super::super::instr::{PoolKind, Window2d};
use super::PAR_MIN_ELEMS;
use rayon::prelude::*;

/// Pools every `h × w` plane of `x` into the matching `oh × ow` plane of `out`.
pub(crate) fn pool2d(kind: PoolKind, win: &Window2d, x: &[f32], out: &mut [f32]) {
    let plane_in = win.h * win.w;
    let plane_out = win.oh * win.ow;
    if plane_out == 0 {
        return;
    }
    let out = &mut out[..win.n * win.c * plane_out];
    let per_plane = plane_out * win.kh * win.kw;
    let min_len = (PAR_MIN_ELEMS / 8 / per_plane.max(1)).max(1);
    out.par_chunks_mut(plane_out).with_min_len(min_len).enumerate().for_each(|(p, o)| {
        let src = &x[p * plane_in..][..plane_in];
        match kind {
            PoolKind::Average => pool_plane(win, src, o, 0.0, |a, v| a + v, |a, n| a / n as f32),
            PoolKind::Max => pool_plane(win, src, o, f32::NEG_INFINITY, f32::max, |a, _| a),
        }
    });
}

/// One plane: `finish(fold of the window's inside values, their count)`.
#[inline(always)]
fn pool_plane(
    win: &Window2d,
    src: &[f32],
    out: &mut [f32],
    init: f32,
    fold: impl Fn(f32, f32) -> f32,
    finish: impl Fn(f32, usize) -> f32,
) {
    for oy in 0..win.oh {
        for ox in 0..win.ow {
            let (mut acc, mut count) = (init, 0usize);
            for ki in 0..win.kh {
                let iy = (oy * win.stride[0] + ki * win.dilation[0]) as isize - win.pad_top as isize;
                if iy < 0 || iy >= win.h as isize {
                    continue;
                }
                let row = &src[iy as usize * win.w..][..win.w];
                for kj in 0..win.kw {
                    let ix = (ox * win.stride[1] + kj * win.dilation[1]) as isize - win.pad_left as isize;
                    if ix >= 0 && ix < win.w as isize {
                        acc = fold(acc, row[ix as usize]);
                        count += 1;
                    }
                }
            }
            out[oy * win.ow + ox] = if count == 0 { 0.0 } else { finish(acc, count) };
        }
    }
}
