//! Fused attention over a packed batch: per (sequence, head), scores, softmax
//! and the weighted sum of values, without materializing the score tensor of
//! the whole batch.
//!
//! Two paths, by sequence length. Short sequences (a few tokens of text) run
//! one query at a time over the transposed keys. Long ones (Whisper's 1500
//! encoder positions, ViT's 197 patches) run a block of [`Q_BLOCK`] queries at
//! a time as two matrix products, `S = Q·Kᵀ` and `O = softmax(S)·V`: every key
//! and value row is then read once per block instead of once per query, which
//! made the query-at-a-time loop 44% of Whisper's encoder time for 25% of its
//! multiply-adds.

use super::super::instr::View;
use super::super::memory::{Mem, SendPtr};
use super::super::simd::{self, multiversion};
use super::gemm::matmul_serial;
use crate::graph::AttentionOptions;
use rayon::prelude::*;
use std::cell::RefCell;

thread_local! {
    /// Per-thread scratch (transposed keys and one score row, or a block's
    /// scores and outputs), grown once to the largest head seen.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Queries per block of the matrix-product path.
const Q_BLOCK: usize = 64;
/// Sequences with at least this many queries and keys take the matrix-product
/// path; below, the products are too small to pay for their packing.
const BLOCKED_MIN_LEN: usize = 32;

multiversion! {
    /// Turns `row[..visible]` (scores, plus `mask` when not empty) into
    /// softmax probabilities and zeroes `row[visible..]`.
    fn softmax_row(row: &mut [f32], visible: usize, mask: &[f32]) {
        let (live, hidden) = row.split_at_mut(visible);
        if !mask.is_empty() {
            live.iter_mut().zip(mask).for_each(|(s, &m)| *s += m);
        }
        let max = simd::max(live);
        live.iter_mut().for_each(|s| *s = simd::exp(*s - max));
        let inv = 1.0 / simd::sum(live);
        live.iter_mut().for_each(|s| *s *= inv);
        hidden.fill(0.0);
    }
}

/// Where one (sequence, head) task reads and writes.
struct HeadTask<'a> {
    /// The sequence's first query row, keys and values at their first row
    /// and the head's first column, with their row strides.
    q: (&'a [f32], usize),
    k: (&'a [f32], usize),
    v: (&'a [f32], usize),
    /// The sequence's additive key mask (empty for none).
    mask: &'a [f32],
    q_len: usize,
    kv_len: usize,
    d: usize,
    causal: bool,
    scale: f32,
}

impl HeadTask<'_> {
    /// Keys query `i` sees.
    fn visible(&self, i: usize) -> usize {
        if self.causal {
            i + self.kv_len - self.q_len + 1
        } else {
            self.kv_len
        }
    }
}

/// The matrix-product path: blocks of queries against all the keys they see;
/// `write(i, row)` stores query `i`'s output.
fn attend_blocked(t: &HeadTask, scratch: &mut Vec<f32>, write: &mut dyn FnMut(usize, &[f32])) {
    let (d, kv_len) = (t.d, t.kv_len);
    if scratch.len() < Q_BLOCK * (kv_len + d) {
        scratch.resize(Q_BLOCK * (kv_len + d), 0.0);
    }
    let (scores, out) = scratch.split_at_mut(Q_BLOCK * kv_len);
    for i0 in (0..t.q_len).step_by(Q_BLOCK) {
        let rows = Q_BLOCK.min(t.q_len - i0);
        // Keys seen by the block's last query (and fewer by the others).
        let span = t.visible(i0 + rows - 1);
        let scores = &mut scores[..rows * span];
        let q = &t.q.0[i0 * t.q.1..];
        // S = scale · Q·Kᵀ: Kᵀ is the keys read with swapped strides.
        matmul_serial(rows, span, d, scores, q, (t.q.1, 1), t.k.0, (1, t.k.1), t.scale);
        for (r, row) in scores.chunks_mut(span).enumerate() {
            let mask = if t.mask.is_empty() { &[][..] } else { &t.mask[..t.visible(i0 + r)] };
            softmax_row(row, t.visible(i0 + r), mask);
        }
        // O = P·V.
        let out = &mut out[..rows * d];
        matmul_serial(rows, d, span, out, scores, (span, 1), t.v.0, (t.v.1, 1), 1.0);
        for (r, row) in out.chunks(d).enumerate() {
            write(i0 + r, row);
        }
    }
}

multiversion! {
    /// Scores, softmax and weighted sum of values for one query. `kt` holds
    /// the head's keys transposed (`d × kv_stride`), so the scores of all keys
    /// are built with one vectorized `axpy` per head dimension. `mask`, when
    /// not empty, is added to the scores (a key-padding mask).
    #[allow(clippy::too_many_arguments)]
    fn attend_one_query(q: &[f32], kt: &[f32], kv_stride: usize, v: &[f32], v_stride: usize, visible: usize, scale: f32, mask: &[f32], scores: &mut [f32], out: &mut [f32]) {
        let d = q.len();
        let scores = &mut scores[..visible];
        // Scores in blocks of 64 keys held in registers across the head dimension.
        let mut j0 = 0;
        while j0 < visible {
            let width = (visible - j0).min(64);
            let mut acc = [0.0f32; 64];
            for (dd, &qv) in q.iter().enumerate() {
                let qv = qv * scale;
                let row = &kt[dd * kv_stride + j0..dd * kv_stride + j0 + width];
                if let Ok(row) = <&[f32; 64]>::try_from(row) {
                    for jj in 0..64 {
                        acc[jj] = simd::madd::<FMA>(qv, row[jj], acc[jj]);
                    }
                } else {
                    acc.iter_mut().zip(row).for_each(|(a, &k)| *a = simd::madd::<FMA>(qv, k, *a));
                }
            }
            scores[j0..j0 + width].copy_from_slice(&acc[..width]);
            j0 += width;
        }
        if !mask.is_empty() {
            scores.iter_mut().zip(mask).for_each(|(s, &m)| *s += m);
        }
        let max = simd::max(scores);
        scores.iter_mut().for_each(|s| *s = simd::exp(*s - max));
        let inv = 1.0 / simd::sum(scores);
        // Weighted sum of values, 32 output lanes at a time; two keys per step
        // into separate accumulators so the FMA latency chain does not bind.
        let mut c0 = 0;
        while c0 < d {
            let width = (d - c0).min(32);
            let (mut even, mut odd) = ([0.0f32; 32], [0.0f32; 32]);
            let row = |j: usize| &v[j * v_stride + c0..j * v_stride + c0 + width];
            let mut j = 0;
            while j + 1 < visible {
                let (pa, pb) = (scores[j], scores[j + 1]);
                if let (Ok(ra), Ok(rb)) = (<&[f32; 32]>::try_from(row(j)), <&[f32; 32]>::try_from(row(j + 1))) {
                    for c in 0..32 {
                        even[c] = simd::madd::<FMA>(pa, ra[c], even[c]);
                        odd[c] = simd::madd::<FMA>(pb, rb[c], odd[c]);
                    }
                } else {
                    for (c, (&xa, &xb)) in row(j).iter().zip(row(j + 1)).enumerate() {
                        even[c] = simd::madd::<FMA>(pa, xa, even[c]);
                        odd[c] = simd::madd::<FMA>(pb, xb, odd[c]);
                    }
                }
                j += 2;
            }
            if j < visible {
                let p = scores[j];
                row(j).iter().zip(even.iter_mut()).for_each(|(&x, a)| *a = simd::madd::<FMA>(p, x, *a));
            }
            for (o, (&a, &b)) in out[c0..c0 + width].iter_mut().zip(even.iter().zip(&odd)) {
                *o = (a + b) * inv;
            }
            c0 += width;
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn attention(
    q: View,
    k: View,
    v: View,
    mask: Option<usize>,
    o: &AttentionOptions,
    starts: &[(usize, usize)],
    out: &mut [f32],
    mem: &Mem,
) {
    let (qd, kd, vd) = (mem.f32(q.operand), mem.f32(k.operand), mem.f32(v.operand));
    let d = o.head_dim;
    let group = o.num_heads / o.num_kv_heads;
    let out_stride = o.num_heads * d;
    let out_ptr = SendPtr(out.as_mut_ptr());
    let out_len = out.len();
    let mask_data: &[f32] = mask.map(|m| mem.f32(m)).unwrap_or(&[]);
    let mask_cols = o.segments.iter().map(|s| s.kv_len).max().unwrap_or(0);
    // One task per (segment, head); no allocation per run.
    let run = |task: usize| {
        let (s, head) = (task / o.num_heads, task % o.num_heads);
        let (seg, (q_start, kv_start)) = (o.segments[s], starts[s]);
        let kv_head = head / group;
        let k_base = &kd[kv_start * k.row_stride + k.col_offset + kv_head * d..];
        let v_base = &vd[kv_start * v.row_stride + v.col_offset + kv_head * d..];
        let mask_row =
            if mask_data.is_empty() { &[][..] } else { &mask_data[s * mask_cols..s * mask_cols + seg.kv_len] };
        let out_row = |row: usize| {
            let o_off = row * out_stride + head * d;
            assert!(o_off + d <= out_len, "attention output out of range");
            // SAFETY: in range (just checked), and each (row, head) pair is
            // written by exactly one task.
            unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add(o_off), d) }
        };
        if seg.q_len >= BLOCKED_MIN_LEN && seg.kv_len >= BLOCKED_MIN_LEN {
            let task = HeadTask {
                q: (&qd[q_start * q.row_stride + q.col_offset + head * d..], q.row_stride),
                k: (k_base, k.row_stride),
                v: (v_base, v.row_stride),
                mask: mask_row,
                q_len: seg.q_len,
                kv_len: seg.kv_len,
                d,
                causal: o.causal,
                scale: o.scale,
            };
            SCRATCH.with(|cell| {
                attend_blocked(&task, &mut cell.borrow_mut(), &mut |i, row| out_row(q_start + i).copy_from_slice(row))
            });
            return;
        }
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let kv_len = seg.kv_len;
            if scratch.len() < (d + 1) * kv_len {
                scratch.resize((d + 1) * kv_len, 0.0);
            }
            let (kt, scores) = scratch.split_at_mut(d * kv_len);
            for j in 0..kv_len {
                let key = &k_base[j * k.row_stride..j * k.row_stride + d];
                for (dd, &x) in key.iter().enumerate() {
                    kt[dd * kv_len + j] = x;
                }
            }
            for i in 0..seg.q_len {
                let row = q_start + i;
                let q_off = row * q.row_stride + q.col_offset + head * d;
                let visible = if o.causal { i + seg.kv_len - seg.q_len + 1 } else { seg.kv_len };
                attend_one_query(
                    &qd[q_off..q_off + d],
                    kt,
                    kv_len,
                    v_base,
                    v.row_stride,
                    visible,
                    o.scale,
                    mask_row,
                    scores,
                    out_row(row),
                );
            }
        });
    };
    let tasks = o.segments.len() * o.num_heads;
    let work: usize = o.segments.iter().map(|s| s.q_len * s.kv_len).sum::<usize>() * o.num_heads * d;
    // Below about a million multiply-adds, waking a second thread costs more than it saves.
    if work >= 1 << 20 && tasks > 1 {
        (0..tasks).into_par_iter().for_each(run);
    } else {
        (0..tasks).for_each(run);
    }
}
