//! Decompositions of fused ops into WebNN ops.
//!
//! Every fused op of the IR can be rewritten into plain WebNN ops, so any
//! backend — a browser's WebNN context included — can run any graph. Backends
//! with a native kernel for a fused op simply skip this pass.

use super::{AttentionOptions, Graph, GraphBuilder, Op, Operand};
use crate::{Result, Tensor};

/// A copy of `graph` with every fused op replaced by WebNN ops.
pub fn decompose_fused(graph: &Graph) -> Result<Graph> {
    let mut b = GraphBuilder::new();
    let mut map: Vec<Option<Operand>> = vec![None; graph.operands.len()];
    for input in &graph.inputs {
        let d = graph.desc(input.operand);
        map[input.operand.index()] = Some(b.input(&input.name, d.dtype, d.shape.clone())?);
    }
    for constant in &graph.constants {
        let d = graph.desc(constant.operand).clone();
        map[constant.operand.index()] = Some(b.push_constant(d, constant.source.clone()));
    }
    for node in &graph.nodes {
        let inputs: Vec<Operand> =
            node.inputs.iter().map(|i| map[i.index()].expect("validated graphs define operands before use")).collect();
        let out = match &node.op {
            Op::Attention(options) => attention(&mut b, &inputs, options)?,
            op => b.op(op.clone(), &inputs)?,
        };
        map[node.output.index()] = Some(out);
    }
    let outputs: Vec<(&str, Operand)> =
        graph.outputs.iter().map(|o| (o.name.as_str(), map[o.operand.index()].expect("outputs are defined"))).collect();
    b.finish_unchecked_weights(&outputs)
}

/// Scaled-dot-product attention over a packed batch, one segment at a time:
/// `softmax(Q Kᵀ · scale + mask) V` per head, with heads split by reshape and
/// transpose, key/value heads repeated by expand for grouped-query attention.
/// With a mask, row `s` of it (its first `kv_len` columns) is added to the
/// scores of segment `s`, broadcast over heads and queries.
fn attention(b: &mut GraphBuilder, inputs: &[Operand], o: &AttentionOptions) -> Result<Operand> {
    let (q, k, v) = (inputs[0], inputs[1], inputs[2]);
    let mask = if o.has_mask { Some(inputs[3]) } else { None };
    let (h, hkv, d) = (o.num_heads, o.num_kv_heads, o.head_dim);
    let group = h / hkv;
    let scale = b.scalar(o.scale);
    let mut parts = Vec::new();
    let (mut q_off, mut kv_off) = (0, 0);
    for (s, seg) in o.segments.iter().enumerate() {
        let (ql, kl) = (seg.q_len, seg.kv_len);
        if ql > 0 {
            let qs = b.slice(q, &[q_off, 0], &[ql, h * d])?;
            let qs = b.reshape(qs, &[ql, h, d])?;
            let qs = b.transpose(qs, &[1, 0, 2])?; // [h, ql, d]
            let ks = b.slice(k, &[kv_off, 0], &[kl, hkv * d])?;
            let ks = b.reshape(ks, &[kl, hkv, d])?;
            let mut ks = b.transpose(ks, &[1, 2, 0])?; // [hkv, d, kl]
            let vs = b.slice(v, &[kv_off, 0], &[kl, hkv * d])?;
            let vs = b.reshape(vs, &[kl, hkv, d])?;
            let mut vs = b.transpose(vs, &[1, 0, 2])?; // [hkv, kl, d]
            if group > 1 {
                ks = repeat_heads(b, ks, hkv, group, [d, kl])?;
                vs = repeat_heads(b, vs, hkv, group, [kl, d])?;
            }
            let scores = b.matmul(qs, ks)?; // [h, ql, kl]
            let mut scores = b.mul(scores, scale)?;
            if o.causal {
                let mask = causal_mask(ql, kl);
                let mask = b.constant_inline(mask);
                scores = b.add(scores, mask)?;
            }
            if let Some(mask) = mask {
                let row = b.slice(mask, &[s, 0], &[1, kl])?;
                scores = b.add(scores, row)?;
            }
            let probs = b.softmax(scores, 2)?;
            let ctx = b.matmul(probs, vs)?; // [h, ql, d]
            let ctx = b.transpose(ctx, &[1, 0, 2])?;
            parts.push(b.reshape(ctx, &[ql, h * d])?);
        }
        q_off += ql;
        kv_off += kl;
    }
    match parts.len() {
        0 => b.slice(q, &[0, 0], &[0, h * d]),
        1 => Ok(parts[0]),
        _ => b.concat(&parts, 0),
    }
}

/// `[hkv, a, b]` → `[hkv * group, a, b]`, each head repeated `group` times in place.
fn repeat_heads(b: &mut GraphBuilder, x: Operand, hkv: usize, group: usize, inner: [usize; 2]) -> Result<Operand> {
    let x = b.reshape(x, &[hkv, 1, inner[0], inner[1]])?;
    let x = b.expand(x, &[hkv, group, inner[0], inner[1]])?;
    b.reshape(x, &[hkv * group, inner[0], inner[1]])
}

/// Additive mask `[ql, kl]`: 0 where query `i` may see key `j`
/// (`j <= i + kl - ql`), a large negative number elsewhere.
fn causal_mask(ql: usize, kl: usize) -> Tensor {
    let mut data = vec![0.0f32; ql * kl];
    for i in 0..ql {
        for j in (i + kl - ql + 1)..kl {
            data[i * kl + j] = -1e30;
        }
    }
    Tensor::from_f32([ql, kl], &data).expect("mask size matches its shape")
}
