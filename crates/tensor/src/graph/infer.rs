//! Shape and dtype inference: the output descriptor of each op, or a clear error.

use super::{AttentionOptions, AttentionSegment, Op, OperandDesc, ReduceOptions};
use crate::{DType, Error, Result, Shape};

/// The output descriptor of `op` applied to operands described by `inputs`,
/// following WebNN's validation rules.
pub fn infer_output(op: &Op, inputs: &[&OperandDesc]) -> Result<OperandDesc> {
    let name = op.name();
    let expect_inputs = |n: usize| -> Result<()> {
        if inputs.len() != n {
            return Err(Error::invalid(name, format!("takes {n} operands, got {}", inputs.len())));
        }
        Ok(())
    };
    match op {
        Op::Matmul => {
            expect_inputs(2)?;
            matmul(inputs[0], inputs[1])
        }
        Op::Gemm { a_transpose, b_transpose, has_c, .. } => {
            expect_inputs(2 + *has_c as usize)?;
            gemm(inputs, *a_transpose, *b_transpose)
        }
        _ if op.binary().is_some() => {
            expect_inputs(2)?;
            let (a, b) = (inputs[0], inputs[1]);
            if a.dtype != b.dtype {
                return Err(Error::invalid(name, format!("operands differ in dtype: {} and {}", a.dtype, b.dtype)));
            }
            let shape = broadcast(name, &a.shape, &b.shape)?;
            let dtype = if op.binary().is_some_and(|k| k.is_comparison()) { DType::Uint8 } else { a.dtype };
            Ok(OperandDesc { dtype, shape })
        }
        _ if op.unary().is_some() => {
            expect_inputs(1)?;
            let x = inputs[0];
            if op.unary() != Some(super::UnaryKind::Identity) && !matches!(op, Op::Neg | Op::Abs | Op::Relu) {
                require_float(name, x)?;
            }
            Ok(x.clone())
        }
        Op::Softmax { axis } => {
            expect_inputs(1)?;
            require_float(name, inputs[0])?;
            check_axis(name, *axis, inputs[0].shape.rank())?;
            Ok(inputs[0].clone())
        }
        Op::LayerNormalization { axes, has_scale, has_bias, epsilon } => {
            expect_inputs(1 + *has_scale as usize + *has_bias as usize)?;
            let x = inputs[0];
            require_float(name, x)?;
            if !epsilon.is_finite() || *epsilon < 0.0 {
                return Err(Error::invalid(name, format!("epsilon must be a non-negative number, got {epsilon}")));
            }
            check_axes(name, axes, x.shape.rank())?;
            let normalized: Vec<usize> = axes.iter().map(|&a| x.shape.dims()[a]).collect();
            for param in &inputs[1..] {
                if param.dtype != x.dtype || param.shape.dims() != normalized.as_slice() {
                    return Err(Error::shape(
                        name,
                        format!(
                            "scale and bias must be {}{:?} (the normalized axes), got {param}",
                            x.dtype, normalized
                        ),
                    ));
                }
            }
            Ok(x.clone())
        }
        Op::ReduceMean(o) | Op::ReduceSum(o) | Op::ReduceMax(o) => {
            expect_inputs(1)?;
            require_float(name, inputs[0])?;
            reduce(name, inputs[0], o)
        }
        Op::Gather { axis } => {
            expect_inputs(2)?;
            let (x, idx) = (inputs[0], inputs[1]);
            check_axis(name, *axis, x.shape.rank())?;
            if !matches!(idx.dtype, DType::Int32 | DType::Uint32 | DType::Int64) {
                return Err(Error::dtype(name, "int32, uint32 or int64 indices", idx.dtype));
            }
            let d = x.shape.dims();
            let mut out = d[..*axis].to_vec();
            out.extend_from_slice(idx.shape.dims());
            out.extend_from_slice(&d[axis + 1..]);
            Ok(OperandDesc::new(x.dtype, out))
        }
        Op::Reshape { new_shape } => {
            expect_inputs(1)?;
            let x = inputs[0];
            let new = Shape::new(new_shape.clone());
            if new.checked_numel().is_none() || new.checked_numel() != x.shape.checked_numel() {
                return Err(Error::shape(
                    name,
                    format!("cannot reshape {} ({} elements) to {new}", x.shape, x.shape.numel()),
                ));
            }
            Ok(OperandDesc { dtype: x.dtype, shape: new })
        }
        Op::Transpose { permutation } => {
            expect_inputs(1)?;
            let x = inputs[0];
            let rank = x.shape.rank();
            let mut seen = vec![false; rank];
            if permutation.len() != rank
                || permutation.iter().any(|&p| p >= rank || std::mem::replace(&mut seen[p], true))
            {
                return Err(Error::invalid(name, format!("{permutation:?} is not a permutation of {rank} axes")));
            }
            let out: Vec<usize> = permutation.iter().map(|&p| x.shape.dims()[p]).collect();
            Ok(OperandDesc::new(x.dtype, out))
        }
        Op::Concat { axis } => {
            if inputs.is_empty() {
                return Err(Error::invalid(name, "needs at least one operand"));
            }
            let first = inputs[0];
            check_axis(name, *axis, first.shape.rank())?;
            let mut out = first.shape.dims().to_vec();
            for other in &inputs[1..] {
                let same_rest = other.shape.rank() == first.shape.rank()
                    && other
                        .shape
                        .dims()
                        .iter()
                        .zip(first.shape.dims())
                        .enumerate()
                        .all(|(i, (a, b))| i == *axis || a == b);
                if other.dtype != first.dtype || !same_rest {
                    return Err(Error::shape(name, format!("{other} does not fit {first} along axis {axis}")));
                }
                out[*axis] += other.shape.dims()[*axis];
            }
            Ok(OperandDesc::new(first.dtype, out))
        }
        Op::Slice { starts, sizes } => {
            expect_inputs(1)?;
            let x = inputs[0];
            let dims = x.shape.dims();
            if starts.len() != dims.len() || sizes.len() != dims.len() {
                return Err(Error::invalid(name, format!("starts and sizes need {} entries", dims.len())));
            }
            for (i, ((&s, &n), &d)) in starts.iter().zip(sizes).zip(dims).enumerate() {
                if s.checked_add(n).is_none_or(|end| end > d) {
                    return Err(Error::shape(
                        name,
                        format!("window {s}..{} is outside axis {i} of size {d}", s.saturating_add(n)),
                    ));
                }
            }
            Ok(OperandDesc::new(x.dtype, sizes.clone()))
        }
        Op::Expand { new_shape } => {
            expect_inputs(1)?;
            let x = inputs[0];
            let target = Shape::new(new_shape.clone());
            match Shape::broadcast(&x.shape, &target) {
                Some(s) if s == target => Ok(OperandDesc { dtype: x.dtype, shape: target }),
                _ => Err(Error::shape(name, format!("cannot expand {} to {target}", x.shape))),
            }
        }
        Op::Where => {
            expect_inputs(3)?;
            let (c, t, f) = (inputs[0], inputs[1], inputs[2]);
            if c.dtype != DType::Uint8 {
                return Err(Error::dtype(name, "a uint8 condition", c.dtype));
            }
            if t.dtype != f.dtype {
                return Err(Error::invalid(name, format!("values differ in dtype: {} and {}", t.dtype, f.dtype)));
            }
            let s = broadcast(name, &t.shape, &f.shape)?;
            Ok(OperandDesc { dtype: t.dtype, shape: broadcast(name, &c.shape, &s)? })
        }
        Op::Cast { to } => {
            expect_inputs(1)?;
            if to.is_quantized() || inputs[0].dtype.is_quantized() {
                return Err(Error::invalid(name, "cannot cast to or from a block-quantized dtype"));
            }
            Ok(OperandDesc { dtype: *to, shape: inputs[0].shape.clone() })
        }
        Op::Conv2d { options, has_bias } => {
            expect_inputs(2 + *has_bias as usize)?;
            super::window::conv2d(options, inputs)
        }
        Op::AveragePool2d(options) | Op::MaxPool2d(options) => {
            expect_inputs(1)?;
            super::window::pool2d(name, options, inputs[0])
        }
        Op::Clamp { min_value, max_value } => {
            expect_inputs(1)?;
            super::window::clamp(*min_value, *max_value, inputs[0])
        }
        Op::Attention(options) => {
            expect_inputs(if options.has_mask { 4 } else { 3 })?;
            if options.has_mask {
                let rows = options.segments.len();
                let cols = options.segments.iter().map(|s| s.kv_len).max().unwrap_or(0);
                let want = Shape::from([rows, cols]);
                if inputs[3].shape != want || inputs[3].dtype != inputs[0].dtype {
                    return Err(Error::shape(
                        name,
                        format!(
                            "the mask must be {}{want} (segments × longest kv_len), got {}",
                            inputs[0].dtype, inputs[3]
                        ),
                    ));
                }
            }
            attention(options, inputs[0], inputs[1], inputs[2])
        }
        _ => unreachable!("every op kind is handled above"),
    }
}

fn require_float(op: &str, x: &OperandDesc) -> Result<()> {
    if x.dtype.is_float() {
        Ok(())
    } else {
        Err(Error::dtype(op, "float32 or float16", x.dtype))
    }
}

fn check_axis(op: &str, axis: usize, rank: usize) -> Result<()> {
    if axis >= rank {
        return Err(Error::invalid(op, format!("axis {axis} is out of range for rank {rank}")));
    }
    Ok(())
}

fn check_axes(op: &str, axes: &[usize], rank: usize) -> Result<()> {
    for (i, &a) in axes.iter().enumerate() {
        check_axis(op, a, rank)?;
        if axes[..i].contains(&a) {
            return Err(Error::invalid(op, format!("axis {a} is listed twice")));
        }
    }
    Ok(())
}

fn broadcast(op: &str, a: &Shape, b: &Shape) -> Result<Shape> {
    Shape::broadcast(a, b).ok_or_else(|| Error::shape(op, format!("shapes {a} and {b} do not broadcast")))
}

fn matmul(a: &OperandDesc, b: &OperandDesc) -> Result<OperandDesc> {
    require_float("matmul", a)?;
    if a.dtype != b.dtype {
        return Err(Error::invalid("matmul", format!("operands differ in dtype: {} and {}", a.dtype, b.dtype)));
    }
    let (ad, bd) = (a.shape.dims(), b.shape.dims());
    if ad.len() < 2 || bd.len() < 2 {
        return Err(Error::shape("matmul", format!("operands need rank 2 or more, got {} and {}", a.shape, b.shape)));
    }
    let (m, k) = (ad[ad.len() - 2], ad[ad.len() - 1]);
    let (k2, n) = (bd[bd.len() - 2], bd[bd.len() - 1]);
    if k != k2 {
        return Err(Error::shape("matmul", format!("inner dimensions differ: {} x {}", a.shape, b.shape)));
    }
    let batch = broadcast("matmul", &Shape::new(&ad[..ad.len() - 2]), &Shape::new(&bd[..bd.len() - 2]))?;
    let mut out = batch.dims().to_vec();
    out.extend([m, n]);
    Ok(OperandDesc::new(a.dtype, out))
}

fn gemm(inputs: &[&OperandDesc], a_t: bool, b_t: bool) -> Result<OperandDesc> {
    let (a, b) = (inputs[0], inputs[1]);
    require_float("gemm", a)?;
    if a.shape.rank() != 2 || b.shape.rank() != 2 {
        return Err(Error::shape("gemm", format!("operands must be 2-D, got {} and {}", a.shape, b.shape)));
    }
    let (m, k) = if a_t { (a.shape.dims()[1], a.shape.dims()[0]) } else { (a.shape.dims()[0], a.shape.dims()[1]) };
    let (k2, n) = if b_t { (b.shape.dims()[1], b.shape.dims()[0]) } else { (b.shape.dims()[0], b.shape.dims()[1]) };
    if k != k2 || a.dtype != b.dtype {
        return Err(Error::shape("gemm", format!("cannot multiply {a} by {b} (aTranspose {a_t}, bTranspose {b_t})")));
    }
    let out = Shape::from([m, n]);
    if let Some(c) = inputs.get(2) {
        if c.dtype != a.dtype || Shape::broadcast(&c.shape, &out).as_ref() != Some(&out) {
            return Err(Error::shape("gemm", format!("c {c} does not broadcast to the output {out}")));
        }
    }
    Ok(OperandDesc { dtype: a.dtype, shape: out })
}

fn reduce(op: &str, x: &OperandDesc, o: &ReduceOptions) -> Result<OperandDesc> {
    check_axes(op, &o.axes, x.shape.rank())?;
    let out: Vec<usize> = x
        .shape
        .dims()
        .iter()
        .enumerate()
        .filter_map(|(i, &d)| match (o.axes.contains(&i), o.keep_dimensions) {
            (false, _) => Some(d),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect();
    Ok(OperandDesc::new(x.dtype, out))
}

fn attention(o: &AttentionOptions, q: &OperandDesc, k: &OperandDesc, v: &OperandDesc) -> Result<OperandDesc> {
    let name = "attention";
    require_float(name, q)?;
    if o.num_heads == 0 || o.num_kv_heads == 0 || o.head_dim == 0 || !o.num_heads.is_multiple_of(o.num_kv_heads) {
        return Err(Error::invalid(
            name,
            format!(
                "num_heads {} must be a positive multiple of num_kv_heads {} and head_dim {} positive",
                o.num_heads, o.num_kv_heads, o.head_dim
            ),
        ));
    }
    // Options come from untrusted graphs too: sizes that overflow are errors.
    let too_large = || Error::invalid(name, "the segments or heads are too large");
    let total = |len: fn(&AttentionSegment) -> usize| {
        o.segments.iter().try_fold(0usize, |sum, s| sum.checked_add(len(s))).ok_or_else(too_large)
    };
    let (tq, tkv) = (total(|s| s.q_len)?, total(|s| s.kv_len)?);
    let q_width = o.num_heads.checked_mul(o.head_dim).ok_or_else(too_large)?;
    let kv_width = o.num_kv_heads.checked_mul(o.head_dim).ok_or_else(too_large)?;
    let q_want = Shape::from([tq, q_width]);
    let kv_want = Shape::from([tkv, kv_width]);
    if q.shape != q_want || k.shape != kv_want || v.shape != kv_want {
        return Err(Error::shape(
            name,
            format!("segments need q {q_want} and k, v {kv_want}; got q {}, k {}, v {}", q.shape, k.shape, v.shape),
        ));
    }
    if k.dtype != q.dtype || v.dtype != q.dtype {
        return Err(Error::invalid(name, "q, k and v must share a dtype"));
    }
    if o.causal && o.segments.iter().any(|s| s.q_len > s.kv_len) {
        return Err(Error::invalid(name, "a causal segment cannot have more queries than keys"));
    }
    if o.segments.iter().any(|s| s.kv_len == 0 && s.q_len > 0) {
        return Err(Error::invalid(name, "a segment with queries needs at least one key"));
    }
    Ok(q.clone())
}
