//! `conv2d` on NCHW input and OIHW filter.
//!
//! - Channel groups of more than one input channel (`groups == 1` is the
//!   common case) run as GEMMs: `out[g] (O/g × outH·outW) = filter[g]
//!   (O/g × C/g·kH·kW) · columns`, where the columns are the input unrolled
//!   by im2col — or the input itself for a 1×1, stride-1, unpadded conv,
//!   which is a plain GEMM over the channel dimension. The GEMM is the
//!   multi-threaded `gemm` crate kernel; the bias pre-fills the output and
//!   the product accumulates on top.
//! - One input channel per group (depthwise, `groups == C`) runs directly:
//!   the input plane is zero-padded and split by column phase (stride 2
//!   reads every other column) once, then each block of 16 output pixels of
//!   a row sums every tap's shifted inputs in registers; planes run in
//!   parallel.
//!
//! A fused clamp (ReLU6) or ReLU is applied to the output at the end.

use super::super::instr::{ConvInstr, Window2d};
use super::super::memory::Mem;
use super::super::simd::{madd, multiversion};
use super::elementwise::clamp_in_place;
use super::gemm::matmul_raw;
use super::PAR_MIN_ELEMS;
use rayon::prelude::*;
use std::cell::Cell;

thread_local! {
    /// The im2col buffer, kept between runs so steady-state runs do not allocate.
    static COLUMNS: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    /// A depthwise conv's padded, phase-split input plane (see `phase_planes`), kept likewise.
    static PLANES: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// The output positions `lo..hi` along one axis whose input position
/// `o*stride + offset` lies in `0..size` (`out` positions in all).
#[inline(always)]
fn valid_range(offset: isize, stride: usize, size: usize, out: usize) -> (usize, usize) {
    let s = stride as isize;
    let lo = if offset >= 0 { 0 } else { ((-offset + s - 1) / s) as usize };
    let last = size as isize - 1 - offset;
    let hi = if last < 0 { 0 } else { (last / s + 1) as usize };
    (lo.min(out), hi.min(out))
}

/// Runs one conv2d instruction.
pub(crate) fn conv2d(ci: &ConvInstr, mem: &Mem) {
    let win = &ci.win;
    let x = mem.f32(ci.x);
    let filter = mem.f32(ci.filter);
    let bias = ci.bias.map(|b| mem.f32(b));
    let out = &mut mem.f32_mut(ci.out)[..win.n * ci.out_channels * win.oh * win.ow];
    if win.c == ci.groups {
        depthwise(win, ci.out_channels, ci.out_channels / ci.groups, x, filter, bias, ci.clamp, out);
        return;
    }
    grouped_gemm(ci, x, filter, bias, out);
    if let Some((lo, hi)) = ci.clamp {
        out.par_chunks_mut(PAR_MIN_ELEMS / 4).for_each(|c| clamp_in_place(c, lo, hi));
    }
}

/// Convolution of one input channel per group, plane by plane.
#[allow(clippy::too_many_arguments)]
fn depthwise(
    win: &Window2d,
    out_channels: usize,
    per_group: usize,
    x: &[f32],
    filter: &[f32],
    bias: Option<&[f32]>,
    clamp: Option<(f32, f32)>,
    out: &mut [f32],
) {
    let plane_out = win.oh * win.ow;
    let plane_in = win.h * win.w;
    let taps = win.kh * win.kw;
    if plane_out == 0 {
        return;
    }
    // The phase-split layout unless its planes would dwarf input and output.
    let (rows, cols) = phase_plane_dims(win);
    let phased = rows
        .checked_mul(cols)
        .and_then(|n| n.checked_mul(win.stride[1]))
        .is_some_and(|n| n <= 4 * (plane_in + plane_out) + 4096);
    // Enough planes per task that each task does some thousands of multiply-adds.
    let min_len = (PAR_MIN_ELEMS / 8 / (plane_out * taps).max(1)).max(1);
    out.par_chunks_mut(plane_out).with_min_len(min_len).enumerate().for_each(|(p, o)| {
        let (b, oc) = (p / out_channels, p % out_channels);
        let ic = oc / per_group;
        let src = &x[(b * win.c + ic) * plane_in..][..plane_in];
        o.fill(bias.map_or(0.0, |bias| bias[oc]));
        if !phased {
            depthwise_plane_direct(win, src, &filter[oc * taps..][..taps], o);
        } else {
            PLANES.with(|cell| {
                let mut planes = cell.take();
                let (rows, cols) = phase_planes(win, src, &mut planes);
                depthwise_plane(win, &planes, rows, cols, &filter[oc * taps..][..taps], o);
                cell.set(planes);
            });
        }
        if let Some((lo, hi)) = clamp {
            clamp_in_place(o, lo, hi);
        }
    });
}

/// Output pixels of a row accumulated in registers at a time.
const DW_LANES: usize = 16;

/// `(rows, cols)` of [`phase_planes`]: the padded rows the window reads, and
/// per phase the columns, with room for whole blocks (the last block of a row
/// reads [`DW_LANES`] inputs even where fewer outputs remain; they are not
/// stored).
fn phase_plane_dims(win: &Window2d) -> (usize, usize) {
    let [sh, sw] = win.stride;
    let [dh, dw] = win.dilation;
    let rows = (win.oh - 1) * sh + (win.kh - 1) * dh + 1;
    let width = (win.ow - 1) * sw + (win.kw - 1) * dw + 1;
    (rows, width.div_ceil(sw).max((win.kw - 1) * dw / sw + win.ow.next_multiple_of(DW_LANES)))
}

/// Lays `src` (one `h × w` channel) out for [`depthwise_plane`]: zero-padded
/// to every position the window reads, and with its columns split by phase
/// modulo the horizontal stride, so that the inputs of consecutive output
/// pixels are consecutive for every tap (a stride-2 conv otherwise reads
/// every other float). Phase `ph` of padded row `r` starts at
/// `(ph * rows + r) * cols`; returns `(rows, cols)`.
fn phase_planes(win: &Window2d, src: &[f32], planes: &mut Vec<f32>) -> (usize, usize) {
    let sw = win.stride[1];
    let (rows, cols) = phase_plane_dims(win);
    planes.clear();
    planes.resize(sw * rows * cols, 0.0);
    // Input columns the window reads: x + pad_left < width.
    let width = (win.ow - 1) * sw + (win.kw - 1) * win.dilation[1] + 1;
    let xs = win.w.min(width.saturating_sub(win.pad_left));
    for r in win.pad_top..rows.min(win.pad_top + win.h) {
        let row = &src[(r - win.pad_top) * win.w..][..xs];
        if sw == 1 {
            planes[r * cols + win.pad_left..][..xs].copy_from_slice(row);
            continue;
        }
        for ph in 0..sw {
            // Padded columns c = x + pad_left with c % sw == ph, i.e. x = first, first + sw, ...
            let first = (ph + sw - win.pad_left % sw) % sw;
            if first >= xs {
                continue; // no input column of this phase is read
            }
            let dst = &mut planes[(ph * rows + r) * cols + (first + win.pad_left) / sw..];
            for (d, &v) in dst.iter_mut().zip(row.iter().skip(first).step_by(sw)) {
                *d = v;
            }
        }
    }
    (rows, cols)
}

multiversion! {
    /// `out (oh × ow) += Σ taps · shifted input` for one channel, `planes` as
    /// [`phase_planes`] laid it out: each block of [`DW_LANES`] output pixels
    /// is summed over every tap in registers and stored once.
    #[allow(clippy::too_many_arguments)]
    fn depthwise_plane(win: &Window2d, planes: &[f32], rows: usize, cols: usize, taps: &[f32], out: &mut [f32]) {
        let [sh, sw] = win.stride;
        let [dh, dw] = win.dilation;
        for oy in 0..win.oh {
            let orow = &mut out[oy * win.ow..(oy + 1) * win.ow];
            let mut x0 = 0;
            while x0 < win.ow {
                // Always a whole block (the planes have room), so the sums stay
                // in registers; only the outputs that exist are stored.
                let mut acc = [0.0f32; DW_LANES];
                for ki in 0..win.kh {
                    let r = oy * sh + ki * dh;
                    for kj in 0..win.kw {
                        let tap = taps[ki * win.kw + kj];
                        let c = kj * dw;
                        let start = ((c % sw) * rows + r) * cols + c / sw + x0;
                        let inputs: &[f32; DW_LANES] =
                            planes[start..start + DW_LANES].try_into().expect("the planes hold whole blocks");
                        for l in 0..DW_LANES {
                            acc[l] = madd::<FMA>(tap, inputs[l], acc[l]);
                        }
                    }
                }
                let width = DW_LANES.min(win.ow - x0);
                orow[x0..x0 + width].iter_mut().zip(&acc).for_each(|(o, a)| *o += a);
                x0 += width;
            }
        }
    }
}

multiversion! {
    /// `out (oh × ow) += Σ taps · shifted src (h × w)` for one channel,
    /// reading `src` in place: for windows whose padded, phase-split planes
    /// would be far larger than input and output (huge padding or strides,
    /// which only a hostile or odd graph has), so no allocation follows them.
    fn depthwise_plane_direct(win: &Window2d, src: &[f32], taps: &[f32], out: &mut [f32]) {
        let [sh, sw] = win.stride;
        let [dh, dw] = win.dilation;
        for oy in 0..win.oh {
            let orow = &mut out[oy * win.ow..(oy + 1) * win.ow];
            for ki in 0..win.kh {
                let iy = (oy * sh + ki * dh) as isize - win.pad_top as isize;
                if iy < 0 || iy >= win.h as isize {
                    continue;
                }
                let irow = &src[iy as usize * win.w..][..win.w];
                for kj in 0..win.kw {
                    let tap = taps[ki * win.kw + kj];
                    let offset = (kj * dw) as isize - win.pad_left as isize;
                    let (lo, hi) = valid_range(offset, sw, win.w, win.ow);
                    if lo >= hi {
                        continue;
                    }
                    if sw == 1 {
                        let start = (lo as isize + offset) as usize;
                        let inputs = &irow[start..start + (hi - lo)];
                        for (o, &v) in orow[lo..hi].iter_mut().zip(inputs) {
                            *o = madd::<FMA>(tap, v, *o);
                        }
                    } else {
                        for (ox, o) in orow[lo..hi].iter_mut().enumerate() {
                            let ix = ((lo + ox) * sw) as isize + offset;
                            *o = madd::<FMA>(tap, irow[ix as usize], *o);
                        }
                    }
                }
            }
        }
    }
}

/// Convolution as one GEMM per image and group.
fn grouped_gemm(ci: &ConvInstr, x: &[f32], filter: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    let win = &ci.win;
    let (groups, oc) = (ci.groups, ci.out_channels);
    let (cg, og) = (win.c / groups, oc / groups);
    let k = cg * win.kh * win.kw;
    let npix = win.oh * win.ow;
    let plane_in = win.h * win.w;
    let pointwise = win.kh == 1
        && win.kw == 1
        && win.stride == [1, 1]
        && win.pad_top == 0
        && win.pad_left == 0
        && win.oh == win.h
        && win.ow == win.w;
    let mut columns = if pointwise { Vec::new() } else { COLUMNS.with(Cell::take) };
    if !pointwise {
        columns.resize(k * npix, 0.0);
    }
    for b in 0..win.n {
        for g in 0..groups {
            let xg = &x[(b * win.c + g * cg) * plane_in..][..cg * plane_in];
            let rhs: &[f32] = if pointwise {
                xg
            } else {
                im2col(win, xg, &mut columns[..k * npix]);
                &columns[..k * npix]
            };
            let dst = &mut out[(b * oc + g * og) * npix..][..og * npix];
            if let Some(bias) = bias {
                for (r, row) in dst.chunks_mut(npix).enumerate() {
                    row.fill(bias[g * og + r]);
                }
            }
            let lhs = &filter[g * og * k..][..og * k];
            matmul_raw(og, npix, k, dst, bias.is_some(), lhs, (k, 1), rhs, (npix, 1), 1.0);
        }
    }
    if !pointwise {
        COLUMNS.with(|c| c.set(columns));
    }
}

/// Unrolls `cg` channels of one image into `columns` `[cg·kh·kw, oh·ow]`:
/// row `(ci, ki, kj)` holds the input under tap `(ki, kj)` of channel `ci`
/// for every output position (0 where the tap falls in the padding).
fn im2col(win: &Window2d, x: &[f32], columns: &mut [f32]) {
    let npix = win.oh * win.ow;
    if npix == 0 {
        return;
    }
    let taps = win.kh * win.kw;
    let min_len = (PAR_MIN_ELEMS / 4 / npix).max(1);
    columns.par_chunks_mut(npix).with_min_len(min_len).enumerate().for_each(|(r, row)| {
        let (c, t) = (r / taps, r % taps);
        let (ki, kj) = (t / win.kw, t % win.kw);
        let plane = &x[c * win.h * win.w..][..win.h * win.w];
        let offset = (kj * win.dilation[1]) as isize - win.pad_left as isize;
        let (lo, hi) = valid_range(offset, win.stride[1], win.w, win.ow);
        for (oy, dst) in row.chunks_mut(win.ow).enumerate() {
            let iy = (oy * win.stride[0] + ki * win.dilation[0]) as isize - win.pad_top as isize;
            if iy < 0 || iy >= win.h as isize || lo >= hi {
                dst.fill(0.0);
                continue;
            }
            let irow = &plane[iy as usize * win.w..][..win.w];
            dst[..lo].fill(0.0);
            dst[hi..].fill(0.0);
            if win.stride[1] == 1 {
                let start = (lo as isize + offset) as usize;
                dst[lo..hi].copy_from_slice(&irow[start..start + (hi - lo)]);
            } else {
                for (i, d) in dst[lo..hi].iter_mut().enumerate() {
                    *d = irow[(((lo + i) * win.stride[1]) as isize + offset) as usize];
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::valid_range;

    #[test]
    fn valid_range_clips_to_the_input() {
        // size 5, stride 1, offset -1 (pad 1): o=0 reads -1 (out), o=1..=5 read 0..=4.
        assert_eq!(valid_range(-1, 1, 5, 6), (1, 6));
        // stride 2, offset -1: o*2-1 in 0..5 → o in 1..=2.
        assert_eq!(valid_range(-1, 2, 5, 3), (1, 3));
        // offset beyond the input: nothing valid.
        assert_eq!(valid_range(7, 1, 5, 4), (0, 0));
    }
}
