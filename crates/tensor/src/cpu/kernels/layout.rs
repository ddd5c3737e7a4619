//! Data movement: strided copies (transpose, slice, expand), concat, gather, where.

use super::super::instr::StridedRead;
use super::super::memory::{IndexReader, Mem};
use crate::{Error, Result};

/// Copies `shape` elements of `elem` bytes from `src` (strides in elements,
/// starting at element `src_off`) into `dst` (likewise). Runs of contiguous
/// innermost elements are copied with `memcpy`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn copy_strided(
    elem: usize,
    src: &[u8],
    src_off: usize,
    src_strides: &[usize],
    shape: &[usize],
    dst: &mut [u8],
    dst_off: usize,
    dst_strides: &[usize],
) {
    let total: usize = shape.iter().product();
    if total == 0 {
        return;
    }
    let rank = shape.len();
    if rank == 0 {
        dst[dst_off * elem..(dst_off + 1) * elem].copy_from_slice(&src[src_off * elem..(src_off + 1) * elem]);
        return;
    }
    let inner = shape[rank - 1];
    let (si, di) = (src_strides[rank - 1], dst_strides[rank - 1]);
    let rows = total / inner;
    let mut index = vec![0usize; rank - 1];
    let (mut s, mut d) = (src_off, dst_off);
    for _ in 0..rows {
        if si == 1 && di == 1 {
            dst[d * elem..(d + inner) * elem].copy_from_slice(&src[s * elem..(s + inner) * elem]);
        } else {
            for j in 0..inner {
                let (a, b) = ((s + j * si) * elem, (d + j * di) * elem);
                dst[b..b + elem].copy_from_slice(&src[a..a + elem]);
            }
        }
        for k in (0..rank - 1).rev() {
            index[k] += 1;
            s += src_strides[k];
            d += dst_strides[k];
            if index[k] < shape[k] {
                break;
            }
            s -= src_strides[k] * shape[k];
            d -= dst_strides[k] * shape[k];
            index[k] = 0;
        }
    }
}

/// Concatenation: each part is copied into its window of the output.
pub(crate) fn concat(
    parts: &[(usize, Vec<usize>)],
    axis: usize,
    elem: usize,
    out_shape: &[usize],
    dst: &mut [u8],
    mem: &Mem,
) {
    let out_strides = crate::shape::contiguous_strides(out_shape);
    let mut offset_along_axis = 0;
    for (operand, shape) in parts {
        let src_strides = crate::shape::contiguous_strides(shape);
        let dst_off = offset_along_axis * out_strides[axis];
        copy_strided(elem, mem.bytes(*operand), 0, &src_strides, shape, dst, dst_off, &out_strides);
        offset_along_axis += shape[axis];
    }
}

/// Gather along an axis: `table` is `[outer, axis_len, inner]` (inner in bytes),
/// the output `[outer, n_indices, inner]`. An index out of range is an error.
pub(crate) fn gather(
    table: &[u8],
    indices: &IndexReader,
    out: &mut [u8],
    outer: usize,
    axis_len: usize,
    inner_bytes: usize,
) -> Result<()> {
    if inner_bytes == 0 {
        return Ok(());
    }
    let n_idx = out.len() / inner_bytes / outer.max(1);
    for o in 0..outer {
        for j in 0..n_idx {
            let raw = indices.get(j);
            if raw < 0 || raw as usize >= axis_len {
                return Err(Error::runtime(
                    "gather",
                    format!(
                        "index {raw} is out of range for an axis of size {axis_len} (token id beyond the vocabulary?)"
                    ),
                ));
            }
            let src = (o * axis_len + raw as usize) * inner_bytes;
            let dst = (o * n_idx + j) * inner_bytes;
            out[dst..dst + inner_bytes].copy_from_slice(&table[src..src + inner_bytes]);
        }
    }
    Ok(())
}

/// `where(cond, on_true, on_false)` with broadcasting, for any element size.
pub(crate) fn select(
    cond: &StridedRead,
    on_true: &StridedRead,
    on_false: &StridedRead,
    shape: &[usize],
    elem: usize,
    dst: &mut [u8],
    mem: &Mem,
) {
    let (c, t, f) = (mem.bytes(cond.operand), mem.bytes(on_true.operand), mem.bytes(on_false.operand));
    let rank = shape.len();
    let total: usize = shape.iter().product();
    let mut index = vec![0usize; rank];
    let (mut ci, mut ti, mut fi) = (0usize, 0usize, 0usize);
    for o in 0..total {
        let (src, at) = if c[ci] != 0 { (t, ti) } else { (f, fi) };
        dst[o * elem..(o + 1) * elem].copy_from_slice(&src[at * elem..(at + 1) * elem]);
        for k in (0..rank).rev() {
            index[k] += 1;
            ci += cond.strides[k];
            ti += on_true.strides[k];
            fi += on_false.strides[k];
            if index[k] < shape[k] {
                break;
            }
            ci -= cond.strides[k] * shape[k];
            ti -= on_true.strides[k] * shape[k];
            fi -= on_false.strides[k] * shape[k];
            index[k] = 0;
        }
    }
}
