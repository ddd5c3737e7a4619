//! Fused attention over a packed batch: per (sequence, head), scores, softmax
//! and the weighted sum of values, without materializing the score tensor of
//! the whole batch.

use super::super::instr::View;
use super::super::memory::{Mem, SendPtr};
use super::super::simd::{self, multiversion};
use crate::graph::AttentionOptions;
use rayon::prelude::*;
use std::cell::RefCell;

thread_local! {
    /// Per-thread score row, grown once to the longest sequence.
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

struct Task {
    q_start: usize,
    kv_start: usize,
    q_len: usize,
    kv_len: usize,
    head: usize,
}

multiversion! {
    #[allow(clippy::too_many_arguments)]
    fn attend_one_query(q: &[f32], k: &[f32], k_stride: usize, v: &[f32], v_stride: usize, visible: usize, scale: f32, scores: &mut [f32], out: &mut [f32]) {
        let d = q.len();
        let scores = &mut scores[..visible];
        for (j, s) in scores.iter_mut().enumerate() {
            *s = simd::dot(q, &k[j * k_stride..j * k_stride + d]) * scale;
        }
        let max = simd::max(scores);
        scores.iter_mut().for_each(|s| *s = simd::exp(*s - max));
        let inv = 1.0 / simd::sum(scores);
        out.iter_mut().for_each(|o| *o = 0.0);
        for (j, &p) in scores.iter().enumerate() {
            let p = p * inv;
            let row = &v[j * v_stride..j * v_stride + d];
            out.iter_mut().zip(row).for_each(|(o, &x)| *o += p * x);
        }
    }
}

pub(crate) fn attention(q: View, k: View, v: View, o: &AttentionOptions, out: &mut [f32], mem: &Mem) {
    let (qd, kd, vd) = (mem.f32(q.operand), mem.f32(k.operand), mem.f32(v.operand));
    let d = o.head_dim;
    let group = o.num_heads / o.num_kv_heads;
    let out_stride = o.num_heads * d;
    let mut tasks = Vec::with_capacity(o.segments.len() * o.num_heads);
    let (mut q_start, mut kv_start) = (0, 0);
    for seg in &o.segments {
        for head in 0..o.num_heads {
            if seg.q_len > 0 {
                tasks.push(Task { q_start, kv_start, q_len: seg.q_len, kv_len: seg.kv_len, head });
            }
        }
        q_start += seg.q_len;
        kv_start += seg.kv_len;
    }
    let out_ptr = SendPtr(out.as_mut_ptr());
    let out_len = out.len();
    let run = |t: &Task| {
        let kv_head = t.head / group;
        let k_base = &kd[t.kv_start * k.row_stride + k.col_offset + kv_head * d..];
        let v_base = &vd[t.kv_start * v.row_stride + v.col_offset + kv_head * d..];
        SCORES.with(|cell| {
            let mut scores = cell.borrow_mut();
            if scores.len() < t.kv_len {
                scores.resize(t.kv_len, 0.0);
            }
            for i in 0..t.q_len {
                let row = t.q_start + i;
                let q_off = row * q.row_stride + q.col_offset + t.head * d;
                let visible = if o.causal { i + t.kv_len - t.q_len + 1 } else { t.kv_len };
                let o_off = row * out_stride + t.head * d;
                assert!(o_off + d <= out_len, "attention output out of range");
                // SAFETY: each (row, head) pair is written by exactly one task.
                let out_row = unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add(o_off), d) };
                attend_one_query(
                    &qd[q_off..q_off + d],
                    k_base,
                    k.row_stride,
                    v_base,
                    v.row_stride,
                    visible,
                    o.scale,
                    &mut scores,
                    out_row,
                );
            }
        });
    };
    let work: usize = tasks.iter().map(|t| t.q_len * t.kv_len).sum::<usize>() * d;
    if work >= 1 << 16 && tasks.len() > 1 {
        tasks.par_iter().for_each(run);
    } else {
        tasks.iter().for_each(run);
    }
}
