//! Lowering a graph to a CPU program, with the fusions that matter for speed:
//!
//! - matmul/gemm followed by bias add, residual add and an activation becomes
//!   one GEMM whose output is pre-filled with the bias and residual and whose
//!   activation runs on the rows it just wrote;
//! - slices that only feed attention (the Q, K and V columns of a fused QKV
//!   projection) are not copied: attention reads them in place;
//! - reshape and identity share their input's storage.

use super::instr::{ConvInstr, GemmInstr, InitTerm, Instr, PoolKind, ReduceKind, StridedRead, View, Window2d};
use crate::graph::{Graph, Node, Op, Pool2dOptions, UnaryKind};
use crate::{DType, Error, Result, Shape};

/// The lowered program and how operands share storage.
pub(crate) struct Lowered {
    pub instrs: Vec<Instr>,
    /// `alias[i] = Some(j)`: operand `i` is stored in operand `j`'s storage.
    pub alias: Vec<Option<usize>>,
    /// Operands never materialized (views read through their base).
    pub elided: Vec<bool>,
}

const BACKEND: &str = "cpu";
const FLOAT_HINT: &str = "the cpu backend computes in float32; cast the operand to float32 first (precision 32)";

pub(crate) fn lower(graph: &Graph) -> Result<Lowered> {
    let n_ops = graph.operands.len();
    let uses = graph.use_counts();
    let producers = graph.producers();
    let is_output: Vec<bool> = {
        let mut v = vec![false; n_ops];
        for o in &graph.outputs {
            v[o.operand.index()] = true;
        }
        v
    };
    // The node reading each operand, when exactly one node reads it and it is no output.
    let mut sole_consumer: Vec<Option<usize>> = vec![None; n_ops];
    for (ni, node) in graph.nodes.iter().enumerate() {
        for input in &node.inputs {
            let i = input.index();
            if uses[i] == 1 && !is_output[i] {
                sole_consumer[i] = Some(ni);
            }
        }
    }

    for (i, desc) in graph.operands.iter().enumerate() {
        if desc.dtype.is_quantized() {
            // Name the op that reads the value (a quantized constant has no producer).
            let reader = graph.nodes.iter().find(|n| n.inputs.iter().any(|o| o.index() == i));
            let op = reader.or(producers[i].map(|p| &graph.nodes[p])).map_or("an output", |n| n.op.name());
            return Err(Error::UnsupportedDType {
                backend: BACKEND,
                op: op.to_string(),
                dtype: desc.dtype,
                hint: "quantized weights need a backend with quantized kernels; load the model with precision 32",
            });
        }
    }

    let mut alias = vec![None; n_ops];
    let mut elided = vec![false; n_ops];
    let mut views: Vec<Option<View>> = vec![None; n_ops];
    // Slices feeding only attention's q, k or v become views (a mask is
    // read whole).
    for node in &graph.nodes {
        if let Op::Slice { starts, sizes } = &node.op {
            let base = graph.desc(node.inputs[0]);
            let out = node.output.index();
            let readers_are_attention = graph
                .nodes
                .iter()
                .filter(|n| n.inputs.contains(&node.output))
                .all(|n| matches!(n.op, Op::Attention(_)) && !n.inputs[3..].contains(&node.output));
            if base.shape.rank() == 2
                && starts[0] == 0
                && sizes[0] == base.shape.dims()[0]
                && base.dtype == DType::Float32
                && readers_are_attention
                && !is_output[out]
            {
                views[out] = Some(View {
                    operand: node.inputs[0].index(),
                    col_offset: starts[1],
                    row_stride: base.shape.dims()[1],
                });
                elided[out] = true;
            }
        }
    }

    // Fusion chains: gemm node -> the nodes it absorbs; emitted at the last one.
    let mut absorbed = vec![false; graph.nodes.len()];
    let mut emit_at: Vec<Option<GemmInstr>> = vec![None; graph.nodes.len()];
    let mut deferred = vec![false; graph.nodes.len()];
    for (ni, node) in graph.nodes.iter().enumerate() {
        let Some(mut gemm) = gemm_of(graph, node)? else { continue };
        let mut last = ni;
        while let Some(ci) = sole_consumer[gemm.out] {
            // `add(matmul(..), matmul(..))`: both products have the add as their
            // only reader. The first chain absorbs it (reading the second product
            // as its residual); the second must then stay a plain GEMM, or it
            // would overwrite the first chain and neither product would be computed.
            if absorbed[ci] {
                break;
            }
            let consumer = &graph.nodes[ci];
            let out_shape = Shape::from([gemm.m, gemm.n]);
            if consumer.op == Op::Add && gemm.activation.is_none() {
                let other =
                    if consumer.inputs[0].index() == gemm.out { consumer.inputs[1] } else { consumer.inputs[0] };
                let od = graph.desc(other);
                if other.index() == gemm.out
                    || od.dtype != DType::Float32
                    || graph.desc(consumer.output).shape != out_shape
                {
                    break;
                }
                let strides = od.shape.broadcast_strides(&out_shape);
                gemm.init.push(InitTerm {
                    operand: other.index(),
                    scale: 1.0,
                    row_stride: strides[0],
                    col_stride: strides[1],
                });
            } else if let Some(kind @ (UnaryKind::Gelu | UnaryKind::Relu | UnaryKind::Tanh | UnaryKind::Sigmoid)) =
                consumer.op.unary()
            {
                if gemm.activation.is_some() {
                    break;
                }
                gemm.activation = Some(kind);
            } else {
                break;
            }
            absorbed[ci] = true;
            gemm.out = consumer.output.index();
            last = ci;
        }
        if last != ni {
            deferred[ni] = true;
            emit_at[last] = Some(gemm);
        }
    }

    // A clamp or ReLU that is the only reader of a conv2d runs in the conv's
    // epilogue: conv node -> (bounds, the operand it then writes).
    let mut conv_epilogue: Vec<Option<((f32, f32), usize)>> = vec![None; graph.nodes.len()];
    for (ni, node) in graph.nodes.iter().enumerate() {
        if !matches!(node.op, Op::Conv2d { .. }) || graph.desc(node.output).dtype != DType::Float32 {
            continue;
        }
        let Some(ci) = sole_consumer[node.output.index()] else { continue };
        let bounds = match graph.nodes[ci].op {
            Op::Clamp { min_value, max_value } => (min_value, max_value),
            Op::Relu => (0.0, f32::INFINITY),
            _ => continue,
        };
        if !absorbed[ci] {
            absorbed[ci] = true;
            conv_epilogue[ni] = Some((bounds, graph.nodes[ci].output.index()));
        }
    }

    let mut instrs = Vec::with_capacity(graph.nodes.len());
    for (ni, node) in graph.nodes.iter().enumerate() {
        if let Some(g) = emit_at[ni].take() {
            instrs.push(Instr::Gemm(g));
            continue;
        }
        if deferred[ni] || absorbed[ni] || elided[node.output.index()] {
            continue;
        }
        let out = node.output.index();
        let input = |i: usize| node.inputs[i].index();
        let desc = |i: usize| graph.desc(node.inputs[i]);
        let out_desc = graph.desc(node.output);
        let instr = match &node.op {
            Op::Gemm { .. } | Op::Matmul if gemm_of(graph, node)?.is_some() => {
                Instr::Gemm(gemm_of(graph, node)?.expect("checked just above"))
            }
            Op::Matmul => {
                require_f32(node, desc(0).dtype)?;
                batch_matmul(graph, node)
            }
            Op::Gemm { .. } => unreachable!("gemm_of lowers every gemm"),
            Op::Reshape { .. } | Op::Identity => {
                alias[out] = Some(input(0));
                continue;
            }
            op if op.unary().is_some() => {
                require_f32(node, desc(0).dtype)?;
                Instr::Unary { kind: op.unary().expect("checked"), x: input(0), out }
            }
            op if op.binary().is_some() => {
                require_f32(node, desc(0).dtype)?;
                let shape = out_desc.shape.clone();
                Instr::Binary {
                    kind: op.binary().expect("checked"),
                    a: broadcast_read(input(0), &desc(0).shape, &shape),
                    b: broadcast_read(input(1), &desc(1).shape, &shape),
                    shape: shape.dims().to_vec(),
                    out,
                }
            }
            Op::Softmax { axis } => {
                require_f32(node, desc(0).dtype)?;
                let d = desc(0).shape.dims();
                Instr::Softmax {
                    x: input(0),
                    out,
                    outer: d[..*axis].iter().product(),
                    len: d[*axis],
                    inner: d[axis + 1..].iter().product(),
                }
            }
            Op::LayerNormalization { axes, epsilon, has_scale, has_bias } => {
                require_f32(node, desc(0).dtype)?;
                let rank = desc(0).shape.rank();
                let mut sorted = axes.clone();
                sorted.sort_unstable();
                if sorted.iter().enumerate().any(|(i, &a)| a != rank - sorted.len() + i) || axes != &sorted {
                    return Err(Error::invalid(
                        "layerNormalization",
                        format!("the cpu backend normalizes trailing axes in order; got axes {axes:?} for rank {rank}"),
                    ));
                }
                let cols = desc(0).shape.dims()[rank - axes.len()..].iter().product();
                let scale = has_scale.then(|| input(1));
                let bias = has_bias.then(|| input(1 + *has_scale as usize));
                Instr::LayerNorm { x: input(0), scale, bias, cols, epsilon: *epsilon, out }
            }
            Op::ReduceMean(o) | Op::ReduceSum(o) | Op::ReduceMax(o) => {
                require_f32(node, desc(0).dtype)?;
                let kind = match node.op {
                    Op::ReduceMean(_) => ReduceKind::Mean,
                    Op::ReduceSum(_) => ReduceKind::Sum,
                    _ => ReduceKind::Max,
                };
                let dims = desc(0).shape.dims().to_vec();
                let kept: Vec<usize> =
                    dims.iter().enumerate().map(|(i, &d)| if o.axes.contains(&i) { 1 } else { d }).collect();
                let kept_strides = Shape::new(kept).strides();
                let out_strides =
                    kept_strides.iter().enumerate().map(|(i, &s)| if o.axes.contains(&i) { 0 } else { s }).collect();
                let count = o.axes.iter().map(|&a| dims[a]).product();
                Instr::Reduce { kind, x: input(0), shape: dims, out_strides, count, out }
            }
            Op::Gather { axis } => {
                let d = desc(0).shape.dims();
                Instr::Gather {
                    table: input(0),
                    indices: input(1),
                    out,
                    outer: d[..*axis].iter().product(),
                    axis_len: d[*axis],
                    inner_bytes: d[axis + 1..].iter().product::<usize>() * elem_size(desc(0).dtype),
                }
            }
            Op::Transpose { permutation } => {
                let strides = desc(0).shape.strides();
                Instr::Copy {
                    src: StridedRead {
                        operand: input(0),
                        offset: 0,
                        strides: permutation.iter().map(|&p| strides[p]).collect(),
                    },
                    shape: out_desc.shape.dims().to_vec(),
                    elem: elem_size(out_desc.dtype),
                    out,
                }
            }
            Op::Slice { starts, .. } => {
                let strides = desc(0).shape.strides();
                Instr::Copy {
                    src: StridedRead {
                        operand: input(0),
                        offset: starts.iter().zip(&strides).map(|(s, t)| s * t).sum(),
                        strides,
                    },
                    shape: out_desc.shape.dims().to_vec(),
                    elem: elem_size(out_desc.dtype),
                    out,
                }
            }
            Op::Expand { .. } => Instr::Copy {
                src: broadcast_read(input(0), &desc(0).shape, &out_desc.shape),
                shape: out_desc.shape.dims().to_vec(),
                elem: elem_size(out_desc.dtype),
                out,
            },
            Op::Concat { axis } => Instr::Concat {
                parts: node.inputs.iter().map(|i| (i.index(), graph.desc(*i).shape.dims().to_vec())).collect(),
                axis: *axis,
                elem: elem_size(out_desc.dtype),
                out_shape: out_desc.shape.dims().to_vec(),
                out,
            },
            Op::Where => Instr::Where {
                cond: broadcast_read(input(0), &desc(0).shape, &out_desc.shape),
                on_true: broadcast_read(input(1), &desc(1).shape, &out_desc.shape),
                on_false: broadcast_read(input(2), &desc(2).shape, &out_desc.shape),
                shape: out_desc.shape.dims().to_vec(),
                elem: elem_size(out_desc.dtype),
                out,
            },
            Op::Cast { to } => Instr::Cast { x: input(0), from: desc(0).dtype, to: *to, out },
            Op::Conv2d { options, has_bias } => {
                require_f32(node, desc(0).dtype)?;
                let f = desc(1).shape.dims();
                let (clamp, out) = match conv_epilogue[ni] {
                    Some((bounds, fused_out)) => (Some(bounds), fused_out),
                    None => (None, out),
                };
                let window = [f[2], f[3]];
                Instr::Conv2d(ConvInstr {
                    x: input(0),
                    filter: input(1),
                    bias: has_bias.then(|| input(2)),
                    out,
                    win: window2d(desc(0).shape.dims(), out_desc.shape.dims(), window, &pool_like(options)),
                    out_channels: f[0],
                    groups: options.groups,
                    clamp,
                })
            }
            Op::AveragePool2d(o) | Op::MaxPool2d(o) => {
                require_f32(node, desc(0).dtype)?;
                let kind = if matches!(node.op, Op::MaxPool2d(_)) { PoolKind::Max } else { PoolKind::Average };
                let win = window2d(desc(0).shape.dims(), out_desc.shape.dims(), o.window_dimensions, o);
                Instr::Pool2d { kind, x: input(0), win, out }
            }
            Op::Clamp { min_value, max_value } => {
                require_f32(node, desc(0).dtype)?;
                Instr::Clamp { x: input(0), min: *min_value, max: *max_value, out }
            }
            Op::Attention(options) => {
                require_f32(node, desc(0).dtype)?;
                let view = |i: usize| {
                    views[input(i)].unwrap_or(View {
                        operand: input(i),
                        col_offset: 0,
                        row_stride: desc(i).shape.dims()[1],
                    })
                };
                let starts = options
                    .segments
                    .iter()
                    .scan((0, 0), |acc, seg| {
                        let start = *acc;
                        *acc = (acc.0 + seg.q_len, acc.1 + seg.kv_len);
                        Some(start)
                    })
                    .collect();
                let mask = options.has_mask.then(|| input(3));
                Instr::Attention { q: view(0), k: view(1), v: view(2), options: options.clone(), starts, mask, out }
            }
            other => unreachable!("op {} is handled above", other.name()),
        };
        instrs.push(instr);
    }
    Ok(Lowered { instrs, alias, elided })
}

/// The window geometry of a conv or pool from its NCHW input and output dims.
fn window2d(input: &[usize], output: &[usize], window: [usize; 2], o: &Pool2dOptions) -> Window2d {
    Window2d {
        n: input[0],
        c: input[1],
        h: input[2],
        w: input[3],
        oh: output[2],
        ow: output[3],
        kh: window[0],
        kw: window[1],
        pad_top: o.padding[0],
        pad_left: o.padding[2],
        stride: o.strides,
        dilation: o.dilations,
    }
}

/// A conv's padding, strides and dilations in pool form (the window comes
/// from the filter).
fn pool_like(o: &crate::graph::Conv2dOptions) -> Pool2dOptions {
    Pool2dOptions { window_dimensions: [0, 0], padding: o.padding, strides: o.strides, dilations: o.dilations }
}

fn require_f32(node: &Node, dtype: DType) -> Result<()> {
    if dtype == DType::Float32 {
        return Ok(());
    }
    Err(Error::UnsupportedDType { backend: BACKEND, op: node.op.name().to_string(), dtype, hint: FLOAT_HINT })
}

/// Bytes per element of a plain dtype.
pub(crate) fn elem_size(dtype: DType) -> usize {
    dtype.block_bytes()
}

fn broadcast_read(operand: usize, shape: &Shape, target: &Shape) -> StridedRead {
    StridedRead { operand, offset: 0, strides: shape.broadcast_strides(target) }
}

/// The GEMM for a gemm node, or a matmul whose right operand is 2-D (the left
/// operand's leading dimensions then fold into rows). `None` for other matmuls.
fn gemm_of(graph: &Graph, node: &Node) -> Result<Option<GemmInstr>> {
    if !matches!(node.op, Op::Gemm { .. } | Op::Matmul) {
        return Ok(None);
    }
    let a = graph.desc(node.inputs[0]);
    let b = graph.desc(node.inputs[1]);
    let out = node.output.index();
    match &node.op {
        Op::Gemm { alpha, beta, a_transpose, b_transpose, has_c } => {
            require_f32(node, a.dtype)?;
            let (ad, bd) = (a.shape.dims(), b.shape.dims());
            let (m, k) = if *a_transpose { (ad[1], ad[0]) } else { (ad[0], ad[1]) };
            let n = if *b_transpose { bd[0] } else { bd[1] };
            let mut init = Vec::new();
            if *has_c {
                let c = node.inputs[2];
                let strides = graph.desc(c).shape.broadcast_strides(&Shape::from([m, n]));
                init.push(InitTerm {
                    operand: c.index(),
                    scale: *beta,
                    row_stride: strides[0],
                    col_stride: strides[1],
                });
            }
            Ok(Some(GemmInstr {
                a: node.inputs[0].index(),
                b: node.inputs[1].index(),
                m,
                n,
                k,
                a_transpose: *a_transpose,
                b_transpose: *b_transpose,
                alpha: *alpha,
                init,
                activation: None,
                out,
                packed_b: None,
            }))
        }
        Op::Matmul if b.shape.rank() == 2 && a.dtype == DType::Float32 => {
            let ad = a.shape.dims();
            let k = ad[ad.len() - 1];
            Ok(Some(GemmInstr {
                a: node.inputs[0].index(),
                b: node.inputs[1].index(),
                m: a.shape.numel() / k.max(1),
                n: b.shape.dims()[1],
                k,
                a_transpose: false,
                b_transpose: false,
                alpha: 1.0,
                init: Vec::new(),
                activation: None,
                out,
                packed_b: None,
            }))
        }
        _ => Ok(None),
    }
}

fn batch_matmul(graph: &Graph, node: &Node) -> Instr {
    let a = graph.desc(node.inputs[0]);
    let b = graph.desc(node.inputs[1]);
    let out = graph.desc(node.output);
    let (ad, bd, od) = (a.shape.dims(), b.shape.dims(), out.shape.dims());
    let (m, k, n) = (ad[ad.len() - 2], ad[ad.len() - 1], bd[bd.len() - 1]);
    let batch = Shape::new(&od[..od.len() - 2]);
    let a_batch = Shape::new(&ad[..ad.len() - 2]).broadcast_strides(&batch);
    let b_batch = Shape::new(&bd[..bd.len() - 2]).broadcast_strides(&batch);
    let mut offsets = Vec::with_capacity(batch.numel());
    for flat in 0..batch.numel() {
        let (mut rem, mut ao, mut bo) = (flat, 0, 0);
        for (&size, (&sa, &sb)) in batch.dims().iter().zip(a_batch.iter().zip(&b_batch)).rev() {
            let idx = rem % size;
            rem /= size;
            ao += idx * sa;
            bo += idx * sb;
        }
        offsets.push((ao * m * k, bo * k * n));
    }
    Instr::BatchMatmul {
        a: node.inputs[0].index(),
        b: node.inputs[1].index(),
        out: node.output.index(),
        m,
        n,
        k,
        offsets,
    }
}
