//! Correctness of the CPU backend, op by op, against a naive f64 reference
//! (`support`), plus the properties the backend promises: fusion and views
//! change nothing but speed, the fused attention kernel equals its WebNN
//! decomposition, bad input is an error rather than a panic, graphs survive
//! JSON, and executables (and the arenas they share) can be reused and
//! interleaved.

mod support;

use bytes::Bytes;
use half::f16;
use ipfs_accelerate_tensor::graph::decompose::decompose_fused;
use ipfs_accelerate_tensor::graph::{
    AttentionOptions, AttentionSegment, Graph, NamedOperand, Node, Op, OperandDesc, ReduceOptions,
};
use ipfs_accelerate_tensor::{
    CpuBackend, DType, Error, GemmOptions, GraphBuilder, LayerNormOptions, Operand, Tensor, Weights,
};
use support::*;

const F32: DType = DType::Float32;
/// Relative and absolute tolerance for f32 arithmetic (sums of a few dozen products).
const RTOL: f64 = 1e-5;
const ATOL: f64 = 1e-5;
/// Absolute tolerance for the transcendental functions (accurate to ~3e-7).
const ATOL_FN: f64 = 1e-6;

/// Which test covers each op. This match has no wildcard: adding an op to
/// `Op` breaks the build of this file until a test for it is written.
fn covering_test(op: &Op) -> &'static str {
    match op {
        Op::Matmul => "matmul_*",
        Op::Gemm { .. } => "gemm_transposes_alpha_beta_and_broadcast_c",
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Max | Op::Min | Op::Pow => "binary_ops_broadcast",
        Op::Equal | Op::Greater | Op::Lesser => "comparisons_give_uint8",
        Op::Gelu
        | Op::Tanh
        | Op::Erf
        | Op::Relu
        | Op::Sigmoid
        | Op::Exp
        | Op::Log
        | Op::Sqrt
        | Op::Neg
        | Op::Abs
        | Op::Reciprocal
        | Op::Identity => "unary_ops",
        Op::Softmax { .. } => "softmax_on_every_axis",
        Op::LayerNormalization { .. } => "layer_normalization_with_and_without_scale_and_bias",
        Op::ReduceMean(_) | Op::ReduceSum(_) | Op::ReduceMax(_) => "reductions_over_axis_sets",
        Op::Gather { .. } => "gather_on_each_axis_with_int32_and_int64_indices",
        Op::Reshape { .. } => "reshape_shares_storage_and_keeps_values",
        Op::Transpose { .. } => "transpose_every_permutation_and_dtype",
        Op::Concat { .. } => "concat_on_each_axis",
        Op::Slice { .. } => "slice_windows",
        Op::Expand { .. } => "expand_broadcasts",
        Op::Where => "where_selects_with_broadcasting",
        Op::Cast { .. } => "cast_between_all_plain_dtypes",
        Op::Conv2d { .. } => "conv_ops.rs: conv2d_*",
        Op::AveragePool2d(_) | Op::MaxPool2d(_) => "conv_ops.rs: pools_average_and_max",
        Op::Clamp { .. } => "conv_ops.rs: clamp_bounds_values",
        Op::Attention(_) => "attention_*",
    }
}

#[test]
fn every_op_has_a_test() {
    let ops = [
        Op::Matmul,
        Op::Add,
        Op::Equal,
        Op::Gelu,
        Op::Softmax { axis: 0 },
        Op::ReduceSum(ReduceOptions { axes: vec![], keep_dimensions: false }),
        Op::Where,
    ];
    for op in &ops {
        assert!(!covering_test(op).is_empty(), "{}", op.name());
    }
}

// ---------------------------------------------------------------------------
// matmul and gemm
// ---------------------------------------------------------------------------

fn check_matmul(rng: &mut Lcg, a_shape: &[usize], b_shape: &[usize], b_is_weight: bool) {
    let a = rng.tensor(a_shape, -1.0, 1.0);
    let b = rng.tensor(b_shape, -1.0, 1.0);
    let want = matmul(&Nd::of(&a), &Nd::of(&b));
    let got = if b_is_weight {
        run1(&[("a", &a)], |g, x| {
            let w = g.constant("w", b.clone())?;
            g.matmul(x[0], w)
        })
    } else {
        run1(&[("a", &a), ("b", &b)], |g, x| g.matmul(x[0], x[1]))
    };
    assert_close(&format!("matmul {a_shape:?} x {b_shape:?}"), &got, &want, RTOL, ATOL);
}

#[test]
fn matmul_two_dimensional() {
    let mut rng = Lcg::new(1);
    for (m, k, n) in [(1, 1, 1), (3, 5, 4), (7, 16, 9), (2, 33, 3), (1, 40, 17), (17, 3, 1)] {
        check_matmul(&mut rng, &[m, k], &[k, n], false);
        check_matmul(&mut rng, &[m, k], &[k, n], true);
    }
}

#[test]
fn matmul_folds_leading_dims_of_the_left_operand() {
    let mut rng = Lcg::new(2);
    check_matmul(&mut rng, &[2, 3, 5], &[5, 4], true);
    check_matmul(&mut rng, &[2, 2, 3, 4], &[4, 3], false);
    check_matmul(&mut rng, &[1, 6, 7], &[7, 2], false);
}

#[test]
fn matmul_batched_with_broadcast_batch_dims() {
    let mut rng = Lcg::new(3);
    let cases: [(&[usize], &[usize]); 7] = [
        (&[2, 3, 4], &[2, 4, 5]),
        (&[2, 3, 4, 5], &[2, 3, 5, 6]),
        (&[2, 1, 3, 4], &[1, 3, 4, 5]),
        (&[3, 4], &[2, 4, 5]),
        (&[4, 2, 3], &[1, 3, 2]),
        (&[2, 3, 2, 4], &[3, 4, 2]),
        (&[1, 2, 3], &[5, 1, 3, 2]),
    ];
    for (a, b) in cases {
        check_matmul(&mut rng, a, b, false);
        check_matmul(&mut rng, a, b, true);
    }
}

#[test]
fn gemm_transposes_alpha_beta_and_broadcast_c() {
    let mut rng = Lcg::new(4);
    let (m, k, n) = (3, 4, 5);
    let c_shapes: [Option<&[usize]>; 8] =
        [None, Some(&[]), Some(&[1]), Some(&[n]), Some(&[1, n]), Some(&[m, 1]), Some(&[1, 1]), Some(&[m, n])];
    for a_t in [false, true] {
        for b_t in [false, true] {
            for c_shape in c_shapes {
                for (alpha, beta) in [(1.0f32, 1.0f32), (0.5, -2.0), (-1.5, 0.0), (2.0, 0.25)] {
                    let a = rng.tensor(&if a_t { [k, m] } else { [m, k] }, -1.0, 1.0);
                    let b = rng.tensor(&if b_t { [n, k] } else { [k, n] }, -1.0, 1.0);
                    let c = c_shape.map(|s| rng.tensor(s, -1.0, 1.0));
                    let c_nd = c.as_ref().map(Nd::of);
                    let want = gemm(&Nd::of(&a), &Nd::of(&b), c_nd.as_ref(), alpha as f64, beta as f64, a_t, b_t);
                    // b as an input, and as a constant weight (which the backend may pre-pack).
                    for b_is_weight in [false, true] {
                        let mut inputs = vec![("a", &a)];
                        if !b_is_weight {
                            inputs.push(("b", &b));
                        }
                        if let Some(c) = &c {
                            inputs.push(("c", c));
                        }
                        let got = run1(&inputs, |g, x| {
                            let (bo, co) = if b_is_weight {
                                (g.constant("b", b.clone())?, x.get(1).copied())
                            } else {
                                (x[1], x.get(2).copied())
                            };
                            let options = GemmOptions { c: co, alpha, beta, a_transpose: a_t, b_transpose: b_t };
                            g.gemm(x[0], bo, options)
                        });
                        let what = format!(
                            "gemm aT={a_t} bT={b_t} c={c_shape:?} alpha={alpha} beta={beta} b weight={b_is_weight}"
                        );
                        assert_close(&what, &got, &want, RTOL, ATOL);
                    }
                }
            }
        }
    }
}

#[test]
fn constant_weights_used_in_several_layouts() {
    // One weight tensor read three ways: as [6, 4], as its transpose, and
    // reshaped to [4, 6]; compiled on one backend, whose cache of prepared
    // weights must tell them apart.
    let mut rng = Lcg::new(21);
    let w = rng.tensor(&[6, 4], -1.0, 1.0);
    let wn = Nd::of(&w);
    let backend = CpuBackend::new();
    let compile_one = |k: usize, build: &dyn Fn(&mut GraphBuilder, Operand, Operand) -> Operand| {
        let mut b = GraphBuilder::new();
        let x = b.input("x", F32, [5, k]).unwrap();
        let wc = b.constant("w", w.clone()).unwrap();
        let y = build(&mut b, x, wc);
        let (graph, weights) = b.build(&[("y", y)]).unwrap();
        backend.compile(&graph, &weights).unwrap()
    };
    let plain = compile_one(6, &|b, x, w| b.matmul(x, w).unwrap());
    let transposed =
        compile_one(4, &|b, x, w| b.gemm(x, w, GemmOptions { b_transpose: true, ..Default::default() }).unwrap());
    let reshaped = compile_one(4, &|b, x, w| {
        let w = b.reshape(w, &[4, 6]).unwrap();
        b.matmul(x, w).unwrap()
    });
    for round in 0..2 {
        let x6 = rng.tensor(&[5, 6], -1.0, 1.0);
        let x4 = rng.tensor(&[5, 4], -1.0, 1.0);
        let got = plain.run(&[("x", &x6)]).unwrap().remove(0);
        assert_close(&format!("plain, round {round}"), &got, &matmul(&Nd::of(&x6), &wn), RTOL, ATOL);
        let got = transposed.run(&[("x", &x4)]).unwrap().remove(0);
        assert_close(&format!("transposed, round {round}"), &got, &matmul(&Nd::of(&x4), &t2(&wn)), RTOL, ATOL);
        let got = reshaped.run(&[("x", &x4)]).unwrap().remove(0);
        let w46 = Nd::new(&[4, 6], wn.data.clone());
        assert_close(&format!("reshaped, round {round}"), &got, &matmul(&Nd::of(&x4), &w46), RTOL, ATOL);
    }
}

#[test]
fn constant_weight_gemm_over_many_row_chunks() {
    // Long rows (k = 700) and m = 200 split the rows into several chunks; n = 37
    // leaves a ragged last column panel; with a residual and an activation.
    let (m, k, n) = (200, 700, 37);
    let mut rng = Lcg::new(22);
    let x = rng.tensor(&[m, k], -1.0, 1.0);
    let w = rng.tensor(&[n, k], -0.1, 0.1);
    let bias = rng.tensor(&[n], -1.0, 1.0);
    let r = rng.tensor(&[m, n], -1.0, 1.0);
    let (got, count) = run_with(&[("x", &x), ("r", &r)], |g, i| {
        let wc = g.constant("w", w.clone())?;
        let bc = g.constant("bias", bias.clone())?;
        let options = GemmOptions { c: Some(bc), alpha: 0.5, b_transpose: true, ..Default::default() };
        let p = g.gemm(i[0], wc, options)?;
        let p = g.add(p, i[1])?;
        g.gelu(p)
    });
    assert_eq!(count, 1);
    let p = gemm(&Nd::of(&x), &Nd::of(&w), Some(&Nd::of(&bias)), 0.5, 1.0, false, true);
    let want = unary(&binary(&p, &Nd::of(&r), |a, b| a + b), gelu);
    assert_close("long-row constant-weight gemm", &got, &want, RTOL, ATOL);
    // The same without fused terms (the product is not accumulated onto anything).
    let got = run1(&[("x", &x)], |g, i| {
        let wc = g.constant("w", w.clone())?;
        g.gemm(i[0], wc, GemmOptions { b_transpose: true, ..Default::default() })
    });
    assert_close("long-row plain gemm", &got, &matmul(&Nd::of(&x), &t2(&Nd::of(&w))), RTOL, ATOL);
}

// ---------------------------------------------------------------------------
// element-wise
// ---------------------------------------------------------------------------

/// Shape pairs for broadcasting: equal, scalar either side, trailing,
/// middle-dim, both-sided and rank-extending broadcasts.
const BROADCAST_CASES: [(&[usize], &[usize]); 11] = [
    (&[2, 3, 4], &[2, 3, 4]),
    (&[2, 3, 4], &[]),
    (&[], &[2, 3]),
    (&[], &[]),
    (&[2, 3, 4], &[4]),
    (&[2, 3, 4], &[2, 1, 4]),
    (&[2, 1, 4], &[3, 1]),
    (&[1, 3, 1], &[2, 1, 4]),
    (&[5, 1], &[1, 6]),
    (&[3, 37], &[3, 37]),
    (&[4, 1, 1], &[4, 3, 1]),
];

#[test]
fn binary_ops_broadcast() {
    type Reference = fn(f64, f64) -> f64;
    let ops: [(Op, Reference); 7] = [
        (Op::Add, |a, b| a + b),
        (Op::Sub, |a, b| a - b),
        (Op::Mul, |a, b| a * b),
        (Op::Div, |a, b| a / b),
        (Op::Max, f64::max),
        (Op::Min, f64::min),
        (Op::Pow, f64::powf),
    ];
    let mut rng = Lcg::new(5);
    for (op, reference) in &ops {
        for (sa, sb) in BROADCAST_CASES {
            let (a, b) = if *op == Op::Pow {
                (rng.tensor(sa, 0.5, 2.0), rng.tensor(sb, -2.0, 2.0))
            } else {
                // b stays away from 0 so division is well conditioned.
                let b: Vec<f32> =
                    rng.vec(numel(sb), 0.5, 2.0).into_iter().map(|v| if rng.below(2) == 0 { v } else { -v }).collect();
                (rng.tensor(sa, -2.0, 2.0), Tensor::from_f32(sb.to_vec(), &b).unwrap())
            };
            let got = run1(&[("a", &a), ("b", &b)], |g, x| g.op(op.clone(), &[x[0], x[1]]));
            let want = binary(&Nd::of(&a), &Nd::of(&b), reference);
            assert_close(&format!("{} {sa:?} {sb:?}", op.name()), &got, &want, RTOL, 1e-6);
            // The same op with the operands swapped exercises the other broadcast side.
            if *op != Op::Pow {
                let got = run1(&[("a", &a), ("b", &b)], |g, x| g.op(op.clone(), &[x[1], x[0]]));
                let want = binary(&Nd::of(&b), &Nd::of(&a), reference);
                assert_close(&format!("{} {sb:?} {sa:?}", op.name()), &got, &want, RTOL, 1e-6);
            }
        }
    }
}

#[test]
fn pow_of_negative_bases_with_integer_exponents() {
    // pow(x - mean, 2) as a variance computation writes it.
    let x = Lcg::new(20).tensor(&[3, 5], -2.0, 2.0);
    for e in [2.0f32, 3.0, -1.0, 0.0] {
        let got = run1(&[("x", &x)], |g, i| {
            let s = g.scalar(e);
            g.pow(i[0], s)
        });
        let want = unary(&Nd::of(&x), |v| v.powf(e as f64));
        assert_close(&format!("pow(x, {e})"), &got, &want, RTOL, 1e-6);
    }
}

#[test]
fn ieee_special_values() {
    let x = Tensor::from_f32([6], &[0.0, -0.0, 1.0, -1.0, f32::INFINITY, -4.0]).unwrap();
    let y = Tensor::from_f32([6], &[0.0, 0.0, 0.0, 0.0, 2.0, 0.0]).unwrap();
    let xn = Nd::of(&x);
    let got = run1(&[("x", &x), ("y", &y)], |g, i| g.div(i[0], i[1]));
    assert_close("div by zero", &got, &binary(&xn, &Nd::of(&y), |a, b| a / b), 0.0, 0.0);
    type Reference = fn(f64) -> f64;
    let ops: [(Op, Reference); 5] = [
        (Op::Log, f64::ln),
        (Op::Sqrt, f64::sqrt),
        (Op::Reciprocal, |v| 1.0 / v),
        (Op::Abs, f64::abs),
        (Op::Neg, |v| -v),
    ];
    for (op, reference) in ops {
        let got = run1(&[("x", &x)], |g, i| g.op(op.clone(), &[i[0]]));
        assert_close(op.name(), &got, &unary(&xn, reference), 0.0, 0.0);
    }
}

#[test]
fn comparisons_give_uint8() {
    type Reference = fn(f64, f64) -> bool;
    let ops: [(Op, Reference); 3] =
        [(Op::Equal, |a, b| a == b), (Op::Greater, |a, b| a > b), (Op::Lesser, |a, b| a < b)];
    let mut rng = Lcg::new(6);
    // Values from a small set so that equal pairs are common.
    let mut pick = |shape: &[usize]| {
        let v: Vec<f32> = (0..numel(shape)).map(|_| [-1.0, 0.0, 0.5, 1.0][rng.below(4)]).collect();
        Tensor::from_f32(shape.to_vec(), &v).unwrap()
    };
    for (op, reference) in &ops {
        for (sa, sb) in BROADCAST_CASES {
            let (a, b) = (pick(sa), pick(sb));
            let got = run1(&[("a", &a), ("b", &b)], |g, x| g.op(op.clone(), &[x[0], x[1]]));
            let want = binary(&Nd::of(&a), &Nd::of(&b), |x, y| reference(x, y) as u8 as f64);
            assert_exact(&format!("{} {sa:?} {sb:?}", op.name()), &got, DType::Uint8, &want);
        }
    }
}

#[test]
fn unary_ops() {
    type Reference = fn(f64) -> f64;
    let ops: [(Op, Reference, f32, f32); 12] = [
        (Op::Gelu, gelu, -5.0, 5.0),
        (Op::Tanh, f64::tanh, -6.0, 6.0),
        (Op::Erf, erf, -3.5, 3.5),
        (Op::Relu, |x| x.max(0.0), -2.0, 2.0),
        (Op::Sigmoid, |x| 1.0 / (1.0 + (-x).exp()), -12.0, 12.0),
        (Op::Exp, f64::exp, -10.0, 10.0),
        (Op::Log, f64::ln, 0.01, 100.0),
        (Op::Sqrt, f64::sqrt, 0.0, 100.0),
        (Op::Neg, |x| -x, -2.0, 2.0),
        (Op::Abs, f64::abs, -2.0, 2.0),
        (Op::Reciprocal, |x| 1.0 / x, 0.1, 10.0),
        (Op::Identity, |x| x, -2.0, 2.0),
    ];
    let mut rng = Lcg::new(7);
    for (op, reference, lo, hi) in &ops {
        let mut v = rng.vec(3 * 37, *lo, *hi);
        // A few hand-picked points inside the domain: the ends, near zero, ±1
        // (where erf switches between its two approximations).
        let specials: Vec<f32> = [0.0, 1e-4, -1e-4, 1.0, -1.0, 0.999_999, *lo, *hi * 0.999_99]
            .into_iter()
            .filter(|x| *x >= *lo && *x <= *hi)
            .collect();
        v[..specials.len()].copy_from_slice(&specials);
        let x = Tensor::from_f32([3, 37], &v).unwrap();
        let got = run1(&[("x", &x)], |g, i| g.op(op.clone(), &[i[0]]));
        let want = unary(&Nd::of(&x), reference);
        assert_close(op.name(), &got, &want, RTOL, ATOL_FN);
    }
}

#[test]
fn identity_shares_storage_but_keeps_values() {
    let mut rng = Lcg::new(8);
    let x = rng.tensor(&[4, 5], -1.0, 1.0);
    // identity -> relu -> identity, and identity of an input as the output.
    let got = run1(&[("x", &x)], |g, i| {
        let a = g.op(Op::Identity, &[i[0]])?;
        let r = g.relu(a)?;
        g.op(Op::Identity, &[r])
    });
    assert_close("identity chain", &got, &unary(&Nd::of(&x), |v| v.max(0.0)), 0.0, 0.0);
    let got = run1(&[("x", &x)], |g, i| g.op(Op::Identity, &[i[0]]));
    assert_same_bits("identity of input", &got, &x);
}

// ---------------------------------------------------------------------------
// normalizations and reductions
// ---------------------------------------------------------------------------

#[test]
fn softmax_on_every_axis() {
    let mut rng = Lcg::new(9);
    let cases: [(&[usize], usize, f32); 9] = [
        (&[4, 7], 1, 5.0),
        (&[4, 7], 0, 5.0),
        (&[2, 3, 5], 0, 5.0),
        (&[2, 3, 5], 1, 5.0),
        (&[2, 3, 5], 2, 5.0),
        (&[3, 1], 1, 5.0),
        (&[2, 40], 1, 60.0),
        (&[33], 0, 5.0),
        (&[2, 3, 4, 5], 2, 5.0),
    ];
    for (shape, axis, range) in cases {
        let x = rng.tensor(shape, -range, range);
        let got = run1(&[("x", &x)], |g, i| g.softmax(i[0], axis));
        assert_close(&format!("softmax {shape:?} axis {axis}"), &got, &softmax(&Nd::of(&x), axis), RTOL, 1e-6);
    }
}

#[test]
fn layer_normalization_with_and_without_scale_and_bias() {
    let mut rng = Lcg::new(10);
    // (shape, axes (None = default), scale, bias, epsilon, parameters as weights)
    type Case = (&'static [usize], Option<&'static [usize]>, bool, bool, Option<f32>, bool);
    let cases: [Case; 9] = [
        (&[4, 6], None, false, false, None, false),
        (&[4, 6], None, true, false, None, false),
        (&[4, 6], None, false, true, None, true),
        (&[4, 6], None, true, true, Some(1e-3), true),
        (&[2, 3, 4], None, true, true, None, false),
        (&[2, 3, 4], Some(&[2]), true, true, None, true),
        (&[2, 3, 4], Some(&[1, 2]), false, true, Some(0.5), false),
        (&[3, 37], Some(&[1]), true, true, Some(1e-12), false),
        (&[5], Some(&[0]), true, false, None, false),
    ];
    for (shape, axes, has_scale, has_bias, eps, as_weights) in cases {
        let rank = shape.len();
        let axes_v: Vec<usize> = axes.map(|a| a.to_vec()).unwrap_or_else(|| (1..rank).collect());
        let param_shape: Vec<usize> = axes_v.iter().map(|&a| shape[a]).collect();
        // Offset the data so the mean is far from 0 (catches a missing centering).
        let x = rng.tensor(shape, 7.0, 13.0);
        let scale = rng.tensor(&param_shape, 0.5, 2.0);
        let bias = rng.tensor(&param_shape, -1.0, 1.0);
        let mut inputs = vec![("x", &x)];
        if !as_weights {
            if has_scale {
                inputs.push(("scale", &scale));
            }
            if has_bias {
                inputs.push(("bias", &bias));
            }
        }
        let got = run1(&inputs, |g, i| {
            let (s, b) = if as_weights {
                (
                    has_scale.then(|| g.constant("scale", scale.clone()).unwrap()),
                    has_bias.then(|| g.constant("bias", bias.clone()).unwrap()),
                )
            } else {
                (has_scale.then(|| i[1]), has_bias.then(|| i[1 + has_scale as usize]))
            };
            g.layer_normalization(
                i[0],
                LayerNormOptions { scale: s, bias: b, axes: axes.map(|a| a.to_vec()), epsilon: eps },
            )
        });
        let (sn, bn) = (Nd::of(&scale), Nd::of(&bias));
        let want = layer_norm(
            &Nd::of(&x),
            &axes_v,
            has_scale.then_some(&sn),
            has_bias.then_some(&bn),
            eps.unwrap_or(1e-5) as f64,
        );
        let what = format!("layerNormalization {shape:?} axes {axes_v:?} scale {has_scale} bias {has_bias}");
        assert_close(&what, &got, &want, RTOL, ATOL);
    }
}

#[test]
fn reductions_over_axis_sets() {
    let mut rng = Lcg::new(11);
    let x = rng.tensor(&[3, 4, 5], -2.0, 2.0);
    let xn = Nd::of(&x);
    let axis_sets: [&[usize]; 9] = [&[0], &[1], &[2], &[0, 2], &[2, 0], &[1, 2], &[0, 1], &[0, 1, 2], &[]];
    for axes in axis_sets {
        for keep in [false, true] {
            for (name, kind) in [("reduceMean", Red::Mean), ("reduceSum", Red::Sum), ("reduceMax", Red::Max)] {
                let got = run1(&[("x", &x)], |g, i| match kind {
                    Red::Mean => g.reduce_mean(i[0], axes, keep),
                    Red::Sum => g.reduce_sum(i[0], axes, keep),
                    Red::Max => g.reduce_max(i[0], axes, keep),
                });
                let want = reduce(&xn, axes, keep, kind);
                assert_close(&format!("{name} axes {axes:?} keep {keep}"), &got, &want, RTOL, 1e-6);
            }
        }
    }
    // Rank 1 to a scalar, and all-negative data (max must not start from 0).
    let y = rng.tensor(&[7], -3.0, -1.0);
    let got = run1(&[("y", &y)], |g, i| g.reduce_max(i[0], &[0], false));
    assert_close("reduceMax to scalar", &got, &reduce(&Nd::of(&y), &[0], false, Red::Max), 0.0, 0.0);
}

// ---------------------------------------------------------------------------
// data movement
// ---------------------------------------------------------------------------

fn index_tensor(dtype: DType, shape: &[usize], values: &[i64]) -> Tensor {
    match dtype {
        DType::Int32 => Tensor::from_i32(shape.to_vec(), &values.iter().map(|&v| v as i32).collect::<Vec<_>>()),
        DType::Int64 => Tensor::from_i64(shape.to_vec(), values),
        other => panic!("no indices of {other}"),
    }
    .unwrap()
}

#[test]
fn gather_on_each_axis_with_int32_and_int64_indices() {
    let mut rng = Lcg::new(12);
    // (table shape, axis, index shape, index dtype)
    let cases: [(&[usize], usize, &[usize], DType); 8] = [
        (&[5, 3], 0, &[4], DType::Int32),
        (&[5, 3], 0, &[2, 2], DType::Int64),
        (&[3, 5, 2], 1, &[2, 3], DType::Int32),
        (&[3, 5, 2], 1, &[4], DType::Int64),
        (&[3, 5, 2], 1, &[], DType::Int32),
        (&[3, 5, 2], 2, &[3], DType::Int64),
        (&[3, 5, 2], 0, &[6], DType::Int32),
        (&[7], 0, &[2, 3], DType::Int64),
    ];
    for (table_shape, axis, idx_shape, idx_dtype) in cases {
        let table = rng.tensor(table_shape, -1.0, 1.0);
        let idx: Vec<i64> = (0..numel(idx_shape)).map(|_| rng.below(table_shape[axis]) as i64).collect();
        let indices = index_tensor(idx_dtype, idx_shape, &idx);
        let want = gather(&Nd::of(&table), &idx, idx_shape, axis);
        let what = format!("gather {table_shape:?} axis {axis} {idx_dtype} {idx_shape:?}");
        // Table as an input and as a weight.
        let got = run1(&[("t", &table), ("i", &indices)], |g, x| g.gather(x[0], x[1], axis));
        assert_close(&what, &got, &want, 0.0, 0.0);
        let got = run1(&[("i", &indices)], |g, x| {
            let t = g.constant("table", table.clone())?;
            g.gather(t, x[0], axis)
        });
        assert_close(&what, &got, &want, 0.0, 0.0);
    }
    // Non-float tables are moved as bytes.
    let table = Tensor::from_i64([4, 3], &(0..12).map(|v| v * 1_000_000_007 - 5).collect::<Vec<_>>()).unwrap();
    let indices = index_tensor(DType::Int32, &[5], &[3, 0, 3, 1, 2]);
    let got = run1(&[("t", &table), ("i", &indices)], |g, x| g.gather(x[0], x[1], 0));
    assert_exact("gather int64 table", &got, DType::Int64, &gather(&Nd::of(&table), &[3, 0, 3, 1, 2], &[5], 0));
    // uint32 indices, which the IR also accepts.
    let table = Lcg::new(19).tensor(&[6, 2], -1.0, 1.0);
    let raw: Vec<u8> = [5u32, 0, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
    let indices = Tensor::copy_from_bytes(DType::Uint32, [3], &raw).unwrap();
    let got = run1(&[("t", &table), ("i", &indices)], |g, x| g.gather(x[0], x[1], 0));
    assert_exact("gather uint32 indices", &got, F32, &gather(&Nd::of(&table), &[5, 0, 2], &[3], 0));
    let halves: Vec<f16> = (0..8).map(|v| f16::from_f32(v as f32 * 0.5 - 1.0)).collect();
    let table = Tensor::from_f16([4, 2], &halves).unwrap();
    let indices = index_tensor(DType::Int64, &[3], &[1, 1, 0]);
    let got = run1(&[("t", &table), ("i", &indices)], |g, x| g.gather(x[0], x[1], 1));
    assert_exact("gather f16 table", &got, DType::Float16, &gather(&Nd::of(&table), &[1, 1, 0], &[3], 1));
}

#[test]
fn reshape_shares_storage_and_keeps_values() {
    let mut rng = Lcg::new(13);
    let x = rng.tensor(&[2, 3, 4], -1.0, 1.0);
    let xn = Nd::of(&x);
    // An input reshaped straight to the output.
    let got = run1(&[("x", &x)], |g, i| g.reshape(i[0], &[6, 4]));
    assert_exact("reshape of input", &got, F32, &Nd::new(&[6, 4], xn.data.clone()));
    // reshape -> relu -> reshape -> reshape.
    let got = run1(&[("x", &x)], |g, i| {
        let r = g.reshape(i[0], &[4, 6])?;
        let r = g.relu(r)?;
        let r = g.reshape(r, &[2, 12])?;
        g.reshape(r, &[24])
    });
    assert_exact("reshape chain", &got, F32, &Nd::new(&[24], unary(&xn, |v| v.max(0.0)).data));
    // reshape feeding matmul and transpose.
    let w = rng.tensor(&[4, 5], -1.0, 1.0);
    let got = run1(&[("x", &x), ("w", &w)], |g, i| {
        let r = g.reshape(i[0], &[6, 4])?;
        let p = g.matmul(r, i[1])?;
        let p = g.reshape(p, &[3, 2, 5])?;
        g.transpose(p, &[2, 0, 1])
    });
    let want =
        transpose(&Nd::new(&[3, 2, 5], matmul(&Nd::new(&[6, 4], xn.data.clone()), &Nd::of(&w)).data), &[2, 0, 1]);
    assert_close("reshape feeding matmul", &got, &want, RTOL, ATOL);
    // [1, 1] to a scalar and back.
    let s = rng.tensor(&[1, 1], -1.0, 1.0);
    let got = run1(&[("s", &s)], |g, i| g.reshape(i[0], &[]));
    assert_exact("reshape to scalar", &got, F32, &Nd::new(&[], Nd::of(&s).data));
}

/// A tensor of `dtype` holding `values` (which it represents exactly).
fn typed(dtype: DType, shape: &[usize], values: &[f64]) -> Tensor {
    let shape = shape.to_vec();
    match dtype {
        DType::Float32 => Tensor::from_f32(shape, &values.iter().map(|&v| v as f32).collect::<Vec<_>>()),
        DType::Float16 => Tensor::from_f16(shape, &values.iter().map(|&v| f16::from_f64(v)).collect::<Vec<_>>()),
        DType::Int32 => Tensor::from_i32(shape, &values.iter().map(|&v| v as i32).collect::<Vec<_>>()),
        DType::Int64 => Tensor::from_i64(shape, &values.iter().map(|&v| v as i64).collect::<Vec<_>>()),
        DType::Uint8 => Tensor::from_u8(shape, &values.iter().map(|&v| v as u8).collect::<Vec<_>>()),
        other => panic!("no test data of {other}"),
    }
    .unwrap()
}

/// `n` distinct small integers (exact in every plain dtype).
fn small_ints(n: usize) -> Vec<f64> {
    (0..n).map(|i| ((i * 7 + 3) % 251) as f64).collect()
}

#[test]
fn transpose_every_permutation_and_dtype() {
    let mut rng = Lcg::new(14);
    let x = rng.tensor(&[2, 3, 4], -1.0, 1.0);
    for perm in [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] {
        let got = run1(&[("x", &x)], |g, i| g.transpose(i[0], &perm));
        assert_exact(&format!("transpose {perm:?}"), &got, F32, &transpose(&Nd::of(&x), &perm));
    }
    let x = rng.tensor(&[2, 3, 4, 5], -1.0, 1.0);
    for perm in [[0, 2, 1, 3], [3, 1, 0, 2], [1, 0, 3, 2], [3, 2, 1, 0]] {
        let got = run1(&[("x", &x)], |g, i| g.transpose(i[0], &perm));
        assert_exact(&format!("transpose 4-D {perm:?}"), &got, F32, &transpose(&Nd::of(&x), &perm));
    }
    let cases: [(DType, &[usize], &[usize]); 6] = [
        (DType::Int32, &[3, 4], &[1, 0]),
        (DType::Int64, &[2, 3, 4], &[2, 0, 1]),
        (DType::Float16, &[2, 3, 4], &[1, 2, 0]),
        (DType::Uint8, &[3, 5], &[1, 0]),
        (DType::Uint8, &[2, 3, 4], &[2, 1, 0]),
        (DType::Float32, &[5], &[0]),
    ];
    for (dtype, shape, perm) in cases {
        let x = typed(dtype, shape, &small_ints(numel(shape)));
        let got = run1(&[("x", &x)], |g, i| g.transpose(i[0], perm));
        assert_exact(&format!("transpose {dtype} {perm:?}"), &got, dtype, &transpose(&Nd::of(&x), perm));
    }
}

#[test]
fn concat_on_each_axis() {
    let mut rng = Lcg::new(15);
    let cases: [(&[&[usize]], usize); 5] = [
        (&[&[1, 3, 4], &[2, 3, 4], &[3, 3, 4]], 0),
        (&[&[2, 1, 4], &[2, 3, 4]], 1),
        (&[&[2, 3, 1], &[2, 3, 2], &[2, 3, 5]], 2),
        (&[&[2, 2]], 1),
        (&[&[4], &[0], &[3]], 0),
    ];
    for (shapes, axis) in cases {
        let parts: Vec<Tensor> = shapes.iter().map(|s| rng.tensor(s, -1.0, 1.0)).collect();
        let names: Vec<String> = (0..parts.len()).map(|i| format!("p{i}")).collect();
        let inputs: Vec<(&str, &Tensor)> = names.iter().map(|n| n.as_str()).zip(&parts).collect();
        let got = run1(&inputs, |g, x| g.concat(x, axis));
        let nds: Vec<Nd> = parts.iter().map(Nd::of).collect();
        let refs: Vec<&Nd> = nds.iter().collect();
        assert_exact(&format!("concat {shapes:?} axis {axis}"), &got, F32, &concat(&refs, axis));
    }
    // Integer dtypes, and parts computed in the graph mixed with an input.
    for (dtype, a, b, axis) in [
        (DType::Int64, &[2usize, 2][..], &[2usize, 3][..], 1),
        (DType::Uint8, &[1, 3], &[2, 3], 0),
        (DType::Float16, &[2, 1], &[2, 2], 1),
    ] {
        let pa = typed(dtype, a, &small_ints(numel(a)));
        let pb = typed(dtype, b, &small_ints(numel(b)).iter().map(|v| v + 1.0).collect::<Vec<_>>());
        let got = run1(&[("a", &pa), ("b", &pb)], |g, x| g.concat(&[x[0], x[1], x[0]], axis));
        let (na, nb) = (Nd::of(&pa), Nd::of(&pb));
        assert_exact(&format!("concat {dtype}"), &got, dtype, &concat(&[&na, &nb, &na], axis));
    }
    let x = rng.tensor(&[3, 2], -1.0, 1.0);
    let got = run1(&[("x", &x)], |g, i| {
        let r = g.relu(i[0])?;
        let n = g.op(Op::Neg, &[i[0]])?;
        g.concat(&[r, i[0], n], 1)
    });
    let xn = Nd::of(&x);
    let want = concat(&[&unary(&xn, |v| v.max(0.0)), &xn, &unary(&xn, |v| -v)], 1);
    assert_exact("concat of computed parts", &got, F32, &want);
}

#[test]
fn slice_windows() {
    let mut rng = Lcg::new(16);
    let x = rng.tensor(&[4, 5, 6], -1.0, 1.0);
    let windows: [(&[usize], &[usize]); 5] = [
        (&[1, 2, 3], &[2, 3, 2]),
        (&[0, 0, 0], &[4, 5, 6]),
        (&[0, 0, 5], &[4, 5, 1]),
        (&[3, 4, 0], &[1, 1, 6]),
        (&[2, 0, 0], &[0, 5, 6]),
    ];
    for (starts, sizes) in windows {
        let got = run1(&[("x", &x)], |g, i| g.slice(i[0], starts, sizes));
        assert_exact(&format!("slice {starts:?} {sizes:?}"), &got, F32, &slice(&Nd::of(&x), starts, sizes));
    }
    let xi = typed(DType::Int32, &[3, 4], &small_ints(12));
    let got = run1(&[("x", &xi)], |g, i| g.slice(i[0], &[1, 1], &[2, 2]));
    assert_exact("slice int32", &got, DType::Int32, &slice(&Nd::of(&xi), &[1, 1], &[2, 2]));
    // Column slices of a 2-D tensor that feed a plain op (not attention) are copied.
    let y = rng.tensor(&[3, 8], -1.0, 1.0);
    let got = run1(&[("y", &y)], |g, i| {
        let a = g.slice(i[0], &[0, 2], &[3, 4])?;
        let b = g.slice(i[0], &[0, 4], &[3, 4])?;
        g.sub(a, b)
    });
    let yn = Nd::of(&y);
    let want = binary(&slice(&yn, &[0, 2], &[3, 4]), &slice(&yn, &[0, 4], &[3, 4]), |a, b| a - b);
    assert_close("column slices feeding sub", &got, &want, 1e-7, 0.0);
}

#[test]
fn expand_broadcasts() {
    let mut rng = Lcg::new(17);
    let cases: [(&[usize], &[usize]); 6] = [
        (&[3, 1], &[2, 3, 4]),
        (&[], &[2, 2]),
        (&[1, 4], &[3, 4]),
        (&[2, 1, 3], &[2, 4, 3]),
        (&[2, 3], &[2, 3]),
        (&[1], &[5]),
    ];
    for (from, to) in cases {
        let x = rng.tensor(from, -1.0, 1.0);
        let got = run1(&[("x", &x)], |g, i| g.expand(i[0], to));
        assert_exact(&format!("expand {from:?} -> {to:?}"), &got, F32, &expand(&Nd::of(&x), to));
    }
    let x = typed(DType::Int64, &[1, 3], &[-5.0, 0.0, 9.0]);
    let got = run1(&[("x", &x)], |g, i| g.expand(i[0], &[2, 3]));
    assert_exact("expand int64", &got, DType::Int64, &expand(&Nd::of(&x), &[2, 3]));
}

#[test]
fn where_selects_with_broadcasting() {
    let mut rng = Lcg::new(18);
    let mut cond = |shape: &[usize]| {
        // Any non-zero byte counts as true.
        let v: Vec<u8> = (0..numel(shape)).map(|_| [0, 1, 7][rng.below(3)]).collect();
        Tensor::from_u8(shape.to_vec(), &v).unwrap()
    };
    let cases: [(&[usize], &[usize], &[usize]); 4] =
        [(&[2, 1, 4], &[3, 1], &[]), (&[3, 4], &[3, 4], &[3, 4]), (&[], &[2, 3], &[3]), (&[4, 1], &[1, 5], &[4, 5])];
    for (cs, ts, fs) in cases {
        let c = cond(cs);
        let t = Lcg::new(numel(ts) as u64).tensor(ts, -1.0, 1.0);
        let f = Lcg::new(99).tensor(fs, 2.0, 3.0);
        let got = run1(&[("c", &c), ("t", &t), ("f", &f)], |g, x| g.where_(x[0], x[1], x[2]));
        let want = where_(&Nd::of(&c), &Nd::of(&t), &Nd::of(&f));
        assert_exact(&format!("where {cs:?} {ts:?} {fs:?}"), &got, F32, &want);
    }
    let c = cond(&[2, 3]);
    let t = typed(DType::Int64, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let f = typed(DType::Int64, &[1], &[-1.0]);
    let got = run1(&[("c", &c), ("t", &t), ("f", &f)], |g, x| g.where_(x[0], x[1], x[2]));
    assert_exact("where int64", &got, DType::Int64, &where_(&Nd::of(&c), &Nd::of(&t), &Nd::of(&f)));
    // A condition computed in the graph: where(x > y, x, y) == max(x, y).
    let x = Lcg::new(1).tensor(&[3, 5], -1.0, 1.0);
    let y = Lcg::new(2).tensor(&[5], -1.0, 1.0);
    let got = run1(&[("x", &x), ("y", &y)], |g, i| {
        let c = g.greater(i[0], i[1])?;
        g.where_(c, i[0], i[1])
    });
    assert_exact("where of greater", &got, F32, &binary(&Nd::of(&x), &Nd::of(&y), f64::max));
}

#[test]
fn cast_between_all_plain_dtypes() {
    let dtypes = [DType::Float32, DType::Float16, DType::Int32, DType::Int64, DType::Uint8];
    // Values each source dtype holds exactly; the fractional and out-of-range
    // ones check truncation toward zero and saturation.
    let floats = [-300.5, -3.75, -1.0, -0.5, 0.0, 0.25, 1.0, 2.5, 7.875, 100.0, 255.0, 255.75, 300.25];
    let ints = [-1000.0, -300.0, -3.0, -1.0, 0.0, 1.0, 2.0, 7.0, 100.0, 255.0, 256.0, 1000.0];
    let bytes = [0.0, 1.0, 2.0, 7.0, 100.0, 127.0, 128.0, 200.0, 255.0];
    let expected = |v: f64, to: DType| -> f64 {
        match to {
            DType::Float32 => v as f32 as f64,
            DType::Float16 => f16::from_f64(v).to_f64(),
            DType::Int32 => v.trunc().clamp(i32::MIN as f64, i32::MAX as f64),
            DType::Int64 => v.trunc(),
            DType::Uint8 => v.trunc().clamp(0.0, 255.0),
            _ => unreachable!(),
        }
    };
    for from in dtypes {
        let values: &[f64] = match from {
            DType::Float32 | DType::Float16 => &floats,
            DType::Int32 | DType::Int64 => &ints,
            _ => &bytes,
        };
        let x = typed(from, &[values.len()], values);
        assert_eq!(Nd::of(&x).data, values, "test data of {from} is exact");
        for to in dtypes {
            let got = run1(&[("x", &x)], |g, i| g.cast(i[0], to));
            let want = Nd::new(&[values.len()], values.iter().map(|&v| expected(v, to)).collect());
            assert_exact(&format!("cast {from} -> {to}"), &got, to, &want);
        }
    }
    // A cast in the middle of float math: a uint8 mask scales values.
    let x = Lcg::new(3).tensor(&[2, 4], -1.0, 1.0);
    let got = run1(&[("x", &x)], |g, i| {
        let zero = g.scalar(0.0);
        let mask = g.greater(i[0], zero)?;
        let mask = g.cast(mask, F32)?;
        g.mul(i[0], mask)
    });
    assert_exact("cast of a comparison", &got, F32, &unary(&Nd::of(&x), |v| v.max(0.0)));
}

// ---------------------------------------------------------------------------
// attention
// ---------------------------------------------------------------------------

fn attention_options(h: usize, hkv: usize, d: usize, causal: bool, segments: &[(usize, usize)]) -> AttentionOptions {
    AttentionOptions {
        num_heads: h,
        num_kv_heads: hkv,
        head_dim: d,
        scale: 1.0 / (d as f32).sqrt(),
        causal,
        segments: segments.iter().map(|&(q_len, kv_len)| AttentionSegment { q_len, kv_len }).collect(),
        has_mask: false,
    }
}

/// Runs an attention graph natively and decomposed into WebNN ops, checks both
/// against the f64 reference and against each other, and returns the native
/// executable's instruction count.
fn check_attention(what: &str, graph: &Graph, weights: &Weights, inputs: &[(&str, &Tensor)], want: &Nd) -> usize {
    let native = compile(graph, weights);
    let decomposed = decompose_fused(graph).unwrap_or_else(|e| panic!("{what}: decompose failed: {e}"));
    assert!(decomposed.nodes.iter().all(|n| !n.op.is_fused()), "{what}: decomposition left a fused op");
    let unfused = compile(&decomposed, weights);
    let got_native = native.run(inputs).unwrap().remove(0);
    let got_decomposed = unfused.run(inputs).unwrap().remove(0);
    assert_close(&format!("{what}: native vs reference"), &got_native, want, RTOL, ATOL);
    assert_close(&format!("{what}: decomposed vs reference"), &got_decomposed, want, RTOL, ATOL);
    assert_close(&format!("{what}: native vs decomposed"), &got_native, &Nd::of(&got_decomposed), RTOL, ATOL);
    native.instruction_count()
}

/// Attention over separate q, k, v inputs.
fn attention_separate(seed: u64, h: usize, hkv: usize, d: usize, causal: bool, segments: &[(usize, usize)]) {
    let o = attention_options(h, hkv, d, causal, segments);
    let tq: usize = segments.iter().map(|s| s.0).sum();
    let tkv: usize = segments.iter().map(|s| s.1).sum();
    let mut rng = Lcg::new(seed);
    let q = rng.tensor(&[tq, h * d], -1.0, 1.0);
    let k = rng.tensor(&[tkv, hkv * d], -1.0, 1.0);
    let v = rng.tensor(&[tkv, hkv * d], -1.0, 1.0);
    let mut b = GraphBuilder::new();
    let (qi, ki, vi) = (
        b.input("q", F32, [tq, h * d]).unwrap(),
        b.input("k", F32, [tkv, hkv * d]).unwrap(),
        b.input("v", F32, [tkv, hkv * d]).unwrap(),
    );
    let y = b.attention(qi, ki, vi, o.clone()).unwrap();
    let (graph, weights) = b.build(&[("y", y)]).unwrap();
    let want = attention(&Nd::of(&q), &Nd::of(&k), &Nd::of(&v), &o);
    let what = format!("attention h={h} hkv={hkv} d={d} causal={causal} segments={segments:?}");
    let count = check_attention(&what, &graph, &weights, &[("q", &q), ("k", &k), ("v", &v)], &want);
    assert_eq!(count, 1, "{what}: one attention instruction");
}

#[test]
fn attention_segments_of_different_lengths() {
    attention_separate(30, 2, 2, 4, false, &[(3, 3), (5, 5), (1, 1)]);
    attention_separate(31, 3, 3, 5, false, &[(2, 6), (4, 1), (7, 7)]);
    attention_separate(32, 1, 1, 16, false, &[(9, 9)]);
    // A segment without queries contributes nothing but still owns its keys.
    attention_separate(33, 2, 2, 3, false, &[(0, 3), (2, 2), (0, 1), (3, 4)]);
}

#[test]
fn attention_causal_with_fewer_queries_than_keys() {
    attention_separate(34, 2, 2, 4, true, &[(4, 4)]);
    attention_separate(35, 2, 2, 4, true, &[(2, 5), (3, 3), (1, 4)]);
    attention_separate(36, 4, 4, 8, true, &[(1, 9), (5, 6)]);
}

#[test]
fn attention_grouped_query() {
    attention_separate(37, 4, 2, 8, false, &[(3, 3), (2, 5)]);
    attention_separate(38, 4, 1, 6, true, &[(2, 5), (3, 3)]);
    attention_separate(39, 6, 3, 4, true, &[(1, 7), (4, 4), (2, 2)]);
}

#[test]
fn attention_large_enough_to_run_in_parallel() {
    attention_separate(40, 4, 4, 16, false, &[(32, 32), (16, 40)]);
    attention_separate(41, 8, 2, 16, true, &[(24, 48), (40, 40)]);
}

#[test]
fn attention_of_long_sequences_in_query_blocks() {
    // Sequences of 32 queries and keys or more run as blocks of 64 queries
    // through two matrix products: one block, a partial second block, causal
    // spans that differ per row, grouped heads, and short sequences beside
    // long ones in one batch (those keep the query-at-a-time path).
    attention_separate(60, 2, 2, 16, false, &[(32, 32)]);
    attention_separate(61, 3, 3, 24, false, &[(70, 90), (5, 5), (130, 40)]);
    attention_separate(62, 4, 2, 16, true, &[(70, 70), (33, 100), (3, 3)]);
    attention_separate(63, 2, 1, 64, true, &[(129, 129)]);
    attention_fused_qkv(64, 4, 2, 8, true, &[(80, 80), (40, 40)]);
}

/// q, k and v as column slices of one fused `[T, (H + 2·Hkv)·D]` tensor: the
/// slices become views the kernel reads in place (no copy instructions).
fn attention_fused_qkv(seed: u64, h: usize, hkv: usize, d: usize, causal: bool, segments: &[(usize, usize)]) {
    let o = attention_options(h, hkv, d, causal, segments);
    let t: usize = segments.iter().map(|s| s.0).sum();
    assert_eq!(t, segments.iter().map(|s| s.1).sum::<usize>(), "the fused layout needs Tq == Tkv");
    let width = (h + 2 * hkv) * d;
    let mut rng = Lcg::new(seed);
    let qkv = rng.tensor(&[t, width], -1.0, 1.0);
    let mut b = GraphBuilder::new();
    let x = b.input("qkv", F32, [t, width]).unwrap();
    let q = b.slice(x, &[0, 0], &[t, h * d]).unwrap();
    let k = b.slice(x, &[0, h * d], &[t, hkv * d]).unwrap();
    let v = b.slice(x, &[0, (h + hkv) * d], &[t, hkv * d]).unwrap();
    let y = b.attention(q, k, v, o.clone()).unwrap();
    let (graph, weights) = b.build(&[("y", y)]).unwrap();
    let n = Nd::of(&qkv);
    let want = attention(
        &slice(&n, &[0, 0], &[t, h * d]),
        &slice(&n, &[0, h * d], &[t, hkv * d]),
        &slice(&n, &[0, (h + hkv) * d], &[t, hkv * d]),
        &o,
    );
    let what = format!("fused-qkv attention h={h} hkv={hkv} d={d} causal={causal} segments={segments:?}");
    let count = check_attention(&what, &graph, &weights, &[("qkv", &qkv)], &want);
    assert_eq!(count, 1, "{what}: the slices should be views, leaving only the attention instruction");
}

#[test]
fn attention_reads_column_slices_of_a_fused_qkv_tensor() {
    attention_fused_qkv(42, 2, 2, 4, false, &[(3, 3), (4, 4)]);
    attention_fused_qkv(43, 2, 2, 4, false, &[(2, 4), (4, 2)]);
    attention_fused_qkv(44, 4, 2, 8, true, &[(5, 5), (1, 1), (3, 3)]);
    attention_fused_qkv(45, 4, 1, 5, true, &[(6, 6)]);
    attention_fused_qkv(46, 4, 4, 16, true, &[(30, 30), (20, 20)]);
}

#[test]
fn attention_with_a_row_sliced_query() {
    // Decode-style: only the last token's query, sliced by rows (not a view:
    // the kernel reads whole rows only, so this slice is copied).
    let (t, h, d) = (6, 2, 4);
    let o = attention_options(h, h, d, true, &[(1, t)]);
    let mut rng = Lcg::new(48);
    let x = rng.tensor(&[t, h * d], -1.0, 1.0);
    let kv = rng.tensor(&[t, 2 * h * d], -1.0, 1.0);
    let mut b = GraphBuilder::new();
    let xi = b.input("x", F32, [t, h * d]).unwrap();
    let kvi = b.input("kv", F32, [t, 2 * h * d]).unwrap();
    let q = b.slice(xi, &[t - 1, 0], &[1, h * d]).unwrap();
    let k = b.slice(kvi, &[0, 0], &[t, h * d]).unwrap();
    let v = b.slice(kvi, &[0, h * d], &[t, h * d]).unwrap();
    let y = b.attention(q, k, v, o.clone()).unwrap();
    let (graph, weights) = b.build(&[("y", y)]).unwrap();
    let kvn = Nd::of(&kv);
    let want = attention(
        &slice(&Nd::of(&x), &[t - 1, 0], &[1, h * d]),
        &slice(&kvn, &[0, 0], &[t, h * d]),
        &slice(&kvn, &[0, h * d], &[t, h * d]),
        &o,
    );
    let count = check_attention("row-sliced query", &graph, &weights, &[("x", &x), ("kv", &kv)], &want);
    assert_eq!(count, 2, "a copy for the query rows, views for k and v, and the attention");
}

#[test]
fn attention_over_a_projected_qkv_with_bias() {
    // x · Wqkv + b, fused into one GEMM, whose column slices feed attention.
    let (t, c, h, hkv, d) = (7, 6, 2, 1, 4);
    let width = (h + 2 * hkv) * d;
    let o = attention_options(h, hkv, d, true, &[(3, 3), (4, 4)]);
    let mut rng = Lcg::new(47);
    let x = rng.tensor(&[t, c], -1.0, 1.0);
    let w = rng.tensor(&[c, width], -0.5, 0.5);
    let bias = rng.tensor(&[width], -0.5, 0.5);
    let mut b = GraphBuilder::new();
    let xi = b.input("x", F32, [t, c]).unwrap();
    let wc = b.constant("w", w.clone()).unwrap();
    let bc = b.constant("b", bias.clone()).unwrap();
    let p = b.matmul(xi, wc).unwrap();
    let qkv = b.add(p, bc).unwrap();
    let q = b.slice(qkv, &[0, 0], &[t, h * d]).unwrap();
    let k = b.slice(qkv, &[0, h * d], &[t, hkv * d]).unwrap();
    let v = b.slice(qkv, &[0, (h + hkv) * d], &[t, hkv * d]).unwrap();
    let y = b.attention(q, k, v, o.clone()).unwrap();
    let (graph, weights) = b.build(&[("y", y)]).unwrap();
    let n = binary(&matmul(&Nd::of(&x), &Nd::of(&w)), &Nd::of(&bias), |a, b| a + b);
    let want = attention(
        &slice(&n, &[0, 0], &[t, h * d]),
        &slice(&n, &[0, h * d], &[t, hkv * d]),
        &slice(&n, &[0, (h + hkv) * d], &[t, hkv * d]),
        &o,
    );
    let count = check_attention("projected qkv", &graph, &weights, &[("x", &x)], &want);
    assert_eq!(count, 2, "one fused GEMM and one attention");
}

// ---------------------------------------------------------------------------
// fusion
// ---------------------------------------------------------------------------

#[test]
fn fused_gemm_chain_equals_unfused() {
    let (m, k, n) = (6, 8, 5);
    let mut rng = Lcg::new(50);
    let x = rng.tensor(&[m, k], -1.0, 1.0);
    let r = rng.tensor(&[m, n], -1.0, 1.0);
    let w = rng.tensor(&[k, n], -1.0, 1.0);
    let w_t = rng.tensor(&[n, k], -1.0, 1.0);
    let bias = rng.tensor(&[n], -1.0, 1.0);
    type Reference = fn(f64) -> f64;
    let activations: [(Op, Reference); 4] = [
        (Op::Gelu, gelu),
        (Op::Relu, |v| v.max(0.0)),
        (Op::Tanh, f64::tanh),
        (Op::Sigmoid, |v| 1.0 / (1.0 + (-v).exp())),
    ];
    for (act, act_ref) in &activations {
        for use_gemm in [false, true] {
            // matmul(x, w) + bias, or gemm(x, wᵀ, {c: bias, alpha, beta, bTranspose});
            // then + residual (on the left), then the activation.
            let build = |expose_intermediates: bool| -> (Graph, Weights) {
                let mut b = GraphBuilder::new();
                let xi = b.input("x", F32, [m, k]).unwrap();
                let ri = b.input("r", F32, [m, n]).unwrap();
                let bc = b.constant("bias", bias.clone()).unwrap();
                let mut named = Vec::new();
                let biased = if use_gemm {
                    let wc = b.constant("w_t", w_t.clone()).unwrap();
                    let options =
                        GemmOptions { c: Some(bc), alpha: 0.5, beta: 2.0, a_transpose: false, b_transpose: true };
                    b.gemm(xi, wc, options).unwrap()
                } else {
                    let wc = b.constant("w", w.clone()).unwrap();
                    let p = b.matmul(xi, wc).unwrap();
                    named.push(("p", p));
                    b.add(p, bc).unwrap()
                };
                named.push(("biased", biased));
                let res = b.add(ri, biased).unwrap();
                named.push(("res", res));
                let y = b.op(act.clone(), &[res]).unwrap();
                let mut outputs = vec![("y", y)];
                if expose_intermediates {
                    outputs.extend(named);
                }
                b.build(&outputs).unwrap()
            };
            let what = format!("{} chain (gemm: {use_gemm})", act.name());
            let (fused_g, fused_w) = build(false);
            let (plain_g, plain_w) = build(true);
            let fused = compile(&fused_g, &fused_w);
            let plain = compile(&plain_g, &plain_w);
            assert_eq!(fused.instruction_count(), 1, "{what}: everything fuses into one GEMM");
            let unfused_count = if use_gemm { 3 } else { 4 };
            assert_eq!(plain.instruction_count(), unfused_count, "{what}: graph outputs are not fused away");
            let inputs = [("x", &x), ("r", &r)];
            let y_fused = fused.run(&inputs).unwrap().remove(0);
            let y_plain = plain.run(&inputs).unwrap().remove(0);
            let biased = if use_gemm {
                gemm(&Nd::of(&x), &Nd::of(&w_t), Some(&Nd::of(&bias)), 0.5, 2.0, false, true)
            } else {
                binary(&matmul(&Nd::of(&x), &Nd::of(&w)), &Nd::of(&bias), |a, b| a + b)
            };
            let want = unary(&binary(&Nd::of(&r), &biased, |a, b| a + b), act_ref);
            assert_close(&format!("{what}: fused"), &y_fused, &want, RTOL, ATOL);
            assert_close(&format!("{what}: unfused"), &y_plain, &want, RTOL, ATOL);
            assert_close(&format!("{what}: fused vs unfused"), &y_fused, &Nd::of(&y_plain), RTOL, ATOL);
        }
    }
}

#[test]
fn fusion_with_folded_rows_and_broadcast_residuals() {
    let mut rng = Lcg::new(51);
    // A 3-D left operand folds into GEMM rows; the bias add then has a 3-D
    // shape and must still be right, whatever the backend fuses.
    let x = rng.tensor(&[2, 3, 4], -1.0, 1.0);
    let w = rng.tensor(&[4, 5], -1.0, 1.0);
    let bias = rng.tensor(&[5], -1.0, 1.0);
    let got = run1(&[("x", &x), ("w", &w), ("b", &bias)], |g, i| {
        let p = g.matmul(i[0], i[1])?;
        let p = g.add(p, i[2])?;
        g.gelu(p)
    });
    let want = unary(&binary(&matmul(&Nd::of(&x), &Nd::of(&w)), &Nd::of(&bias), |a, b| a + b), gelu);
    assert_close("3-D matmul + bias + gelu", &got, &want, RTOL, ATOL);
    let got = run1(&[("x", &x), ("w", &w)], |g, i| {
        let p = g.matmul(i[0], i[1])?;
        g.tanh(p)
    });
    assert_close("3-D matmul + tanh", &got, &unary(&matmul(&Nd::of(&x), &Nd::of(&w)), f64::tanh), RTOL, ATOL);
    // Residuals of shape [m, 1], [1, n] and [] broadcast into the fused GEMM.
    let a = rng.tensor(&[4, 3], -1.0, 1.0);
    let b = rng.tensor(&[3, 6], -1.0, 1.0);
    for shape in [&[4usize, 1][..], &[1, 6], &[], &[6]] {
        let c = rng.tensor(shape, -1.0, 1.0);
        let (got, count) = run_with(&[("a", &a), ("b", &b), ("c", &c)], |g, i| {
            let p = g.matmul(i[0], i[1])?;
            let s = g.add(i[2], p)?;
            g.relu(s)
        });
        assert_eq!(count, 1, "residual {shape:?} fuses");
        let want = unary(&binary(&Nd::of(&c), &matmul(&Nd::of(&a), &Nd::of(&b)), |x, y| x + y), |v| v.max(0.0));
        assert_close(&format!("fused residual {shape:?}"), &got, &want, RTOL, ATOL);
    }
}

#[test]
fn fused_gemm_with_transposed_lhs() {
    let mut rng = Lcg::new(54);
    let a = rng.tensor(&[4, 3], -1.0, 1.0); // [k, m]
    let b = rng.tensor(&[5, 4], -1.0, 1.0); // [n, k]
    let c = rng.tensor(&[3, 1], -1.0, 1.0);
    let r = rng.tensor(&[3, 5], -1.0, 1.0);
    let (got, count) = run_with(&[("a", &a), ("b", &b), ("c", &c), ("r", &r)], |g, i| {
        let options = GemmOptions { c: Some(i[2]), alpha: -0.5, beta: 3.0, a_transpose: true, b_transpose: true };
        let p = g.gemm(i[0], i[1], options)?;
        let s = g.add(p, i[3])?;
        g.sigmoid(s)
    });
    assert_eq!(count, 1);
    let p = gemm(&Nd::of(&a), &Nd::of(&b), Some(&Nd::of(&c)), -0.5, 3.0, true, true);
    let want = unary(&binary(&p, &Nd::of(&r), |x, y| x + y), |v| 1.0 / (1.0 + (-v).exp()));
    assert_close("gemm aT bT + c + residual + sigmoid", &got, &want, RTOL, ATOL);
}

#[test]
fn dead_values_shared_outputs_and_pass_through_outputs() {
    // Outputs: one operand named twice, an input, a constant, a reshape of an
    // input; plus a branch nobody reads. None of it may disturb the rest.
    let mut rng = Lcg::new(55);
    let x = rng.tensor(&[3, 4], -1.0, 1.0);
    let w = rng.tensor(&[4, 4], -1.0, 1.0);
    let mut b = GraphBuilder::new();
    let xi = b.input("x", F32, [3, 4]).unwrap();
    let wc = b.constant("w", w.clone()).unwrap();
    let dead = b.matmul(xi, wc).unwrap();
    let _dead = b.exp(dead).unwrap();
    let p = b.matmul(xi, wc).unwrap();
    let y = b.tanh(p).unwrap();
    let z = b.add(y, xi).unwrap();
    let r = b.reshape(xi, &[12]).unwrap();
    let (graph, weights) = b.build(&[("z", z), ("x", xi), ("z again", z), ("w", wc), ("r", r), ("y", y)]).unwrap();
    let exe = compile(&graph, &weights);
    for _ in 0..2 {
        let out = exe.run(&[("x", &x)]).unwrap();
        let y_ref = unary(&matmul(&Nd::of(&x), &Nd::of(&w)), f64::tanh);
        let z_ref = binary(&y_ref, &Nd::of(&x), |a, b| a + b);
        assert_close("z", &out[0], &z_ref, RTOL, ATOL);
        assert_same_bits("input as output", &out[1], &x);
        assert_same_bits("same operand twice", &out[0], &out[2]);
        assert_same_bits("constant as output", &out[3], &w);
        assert_same_bits("reshaped input", &out[4], &x.reshape([12]).unwrap());
        assert_close("y", &out[5], &y_ref, RTOL, ATOL);
    }
}

#[test]
fn sum_of_two_products_computes_both() {
    // add(matmul(x, w1), matmul(x, w2)): both products have the add as their
    // only reader, so both are candidates to absorb it; exactly one may.
    let mut rng = Lcg::new(52);
    let x = rng.tensor(&[4, 3], -1.0, 1.0);
    let y = rng.tensor(&[4, 5], -1.0, 1.0);
    let w1 = rng.tensor(&[3, 6], -1.0, 1.0);
    let w2 = rng.tensor(&[5, 6], -1.0, 1.0);
    let bias = rng.tensor(&[6], -1.0, 1.0);
    let got = run1(&[("x", &x), ("y", &y), ("w1", &w1), ("w2", &w2)], |g, i| {
        let p = g.matmul(i[0], i[2])?;
        let q = g.matmul(i[1], i[3])?;
        g.add(p, q)
    });
    let p = matmul(&Nd::of(&x), &Nd::of(&w1));
    let q = matmul(&Nd::of(&y), &Nd::of(&w2));
    let sum = binary(&p, &q, |a, b| a + b);
    assert_close("matmul + matmul", &got, &sum, RTOL, ATOL);
    // With a bias and activation after the sum, and the gemm form.
    let got = run1(&[("x", &x), ("y", &y), ("w1", &w1), ("w2", &w2), ("b", &bias)], |g, i| {
        let p = g.gemm(i[0], i[2], GemmOptions { c: Some(i[4]), ..Default::default() })?;
        let q = g.matmul(i[1], i[3])?;
        let s = g.add(q, p)?;
        g.gelu(s)
    });
    let want = unary(&binary(&sum, &Nd::of(&bias), |a, b| a + b), gelu);
    assert_close("gemm + matmul + gelu", &got, &want, RTOL, ATOL);
}

#[test]
fn fused_chain_output_feeding_another_chain() {
    // h = gelu(x·w1 + b1) is read twice: as the next product's input and as
    // its residual.
    let mut rng = Lcg::new(53);
    let x = rng.tensor(&[5, 4], -1.0, 1.0);
    let w1 = rng.tensor(&[4, 6], -1.0, 1.0);
    let b1 = rng.tensor(&[6], -1.0, 1.0);
    let w2 = rng.tensor(&[6, 6], -1.0, 1.0);
    let got = run1(&[("x", &x), ("w1", &w1), ("b1", &b1), ("w2", &w2)], |g, i| {
        let h = g.matmul(i[0], i[1])?;
        let h = g.add(h, i[2])?;
        let h = g.gelu(h)?;
        let y = g.matmul(h, i[3])?;
        g.add(y, h)
    });
    let h = unary(&binary(&matmul(&Nd::of(&x), &Nd::of(&w1)), &Nd::of(&b1), |a, b| a + b), gelu);
    let want = binary(&matmul(&h, &Nd::of(&w2)), &h, |a, b| a + b);
    assert_close("chained fusions", &got, &want, RTOL, ATOL);
}

// ---------------------------------------------------------------------------
// errors, not panics
// ---------------------------------------------------------------------------

#[test]
fn bad_run_inputs_are_errors() {
    let mut rng = Lcg::new(60);
    let table = rng.tensor(&[4, 3], -1.0, 1.0);
    let mut b = GraphBuilder::new();
    let ids = b.input("ids", DType::Int32, [2]).unwrap();
    let x = b.input("x", F32, [2, 3]).unwrap();
    let t = b.constant("table", table.clone()).unwrap();
    let e = b.gather(t, ids, 0).unwrap();
    let y = b.add(e, x).unwrap();
    let (graph, weights) = b.build(&[("y", y)]).unwrap();
    let exe = compile(&graph, &weights);
    let x_ok = rng.tensor(&[2, 3], -1.0, 1.0);
    let ids_ok = Tensor::from_i32([2], &[3, 0]).unwrap();

    let err = exe.run(&[("x", &x_ok)]).unwrap_err();
    assert!(matches!(err, Error::Graph(_)) && err.to_string().contains("\"ids\""), "missing input: {err}");
    assert!(err.to_string().contains("not given"), "missing input: {err}");

    let wrong_shape = Tensor::from_i32([3], &[0, 1, 2]).unwrap();
    let err = exe.run(&[("x", &x_ok), ("ids", &wrong_shape)]).unwrap_err();
    assert!(err.to_string().contains("must be") && err.to_string().contains("[2]"), "wrong shape: {err}");

    let wrong_dtype = Tensor::from_i64([2], &[0, 1]).unwrap();
    let err = exe.run(&[("x", &x_ok), ("ids", &wrong_dtype)]).unwrap_err();
    assert!(err.to_string().contains("int32"), "wrong dtype: {err}");

    let err = exe.run(&[("x", &x_ok), ("ids", &ids_ok), ("z", &x_ok)]).unwrap_err();
    assert!(err.to_string().contains("no input named \"z\""), "unknown input: {err}");

    for bad in [4, -1, i32::MAX, i32::MIN] {
        let ids_bad = Tensor::from_i32([2], &[0, bad]).unwrap();
        let err = exe.run(&[("x", &x_ok), ("ids", &ids_bad)]).unwrap_err();
        assert!(matches!(err, Error::Runtime { .. }), "index {bad}: {err:?}");
        assert!(err.to_string().contains("out of range"), "index {bad}: {err}");
    }

    // The executable (and its arena) still work after the errors.
    let got = exe.run(&[("x", &x_ok), ("ids", &ids_ok)]).unwrap().remove(0);
    let want = binary(&gather(&Nd::of(&table), &[3, 0], &[2], 0), &Nd::of(&x_ok), |a, b| a + b);
    assert_close("run after errors", &got, &want, 1e-7, 0.0);

    // int64 indices far outside the table, on axis 1.
    let idx = Tensor::from_i64([1], &[1 << 40]).unwrap();
    let err = run_with_result(&table, &idx, 1).unwrap_err();
    assert!(err.to_string().contains("out of range"), "int64 index: {err}");
}

/// gather(table, idx, axis) as a one-op graph; the run's result.
fn run_with_result(table: &Tensor, idx: &Tensor, axis: usize) -> ipfs_accelerate_tensor::Result<Vec<Tensor>> {
    let mut b = GraphBuilder::new();
    let t = b.input("t", table.dtype(), table.shape().clone())?;
    let i = b.input("i", idx.dtype(), idx.shape().clone())?;
    let y = b.gather(t, i, axis)?;
    let (graph, weights) = b.build(&[("y", y)])?;
    CpuBackend::new().compile(&graph, &weights)?.run(&[("t", table), ("i", idx)])
}

#[test]
fn quantized_constants_are_errors() {
    // 4 rows of 32 q4_0 values: 4 blocks of 18 bytes.
    let q = Tensor::from_bytes(DType::Q4_0, [4, 32], Bytes::from(vec![0u8; 4 * 18])).unwrap();
    assert!(Tensor::from_bytes(DType::Q4_0, [4, 32], Bytes::from(vec![0u8; 4 * 18 - 1])).is_err());

    // matmul(f32 activations, q4_0 weight): refused (WebNN's matmul wants one
    // dtype), with an error rather than a panic, whether built with the builder
    // or assembled by hand and given straight to the backend.
    let mut b = GraphBuilder::new();
    let x = b.input("x", F32, [2, 4]).unwrap();
    let w = b.constant("w", q.clone()).unwrap();
    let err = b.matmul(x, w).unwrap_err();
    assert!(err.to_string().contains("matmul") && err.to_string().contains("q4_0"), "builder: {err}");

    let graph = Graph {
        operands: vec![
            OperandDesc::new(F32, [2, 4]),
            OperandDesc::new(DType::Q4_0, [4, 32]),
            OperandDesc::new(F32, [2, 32]),
        ],
        inputs: vec![NamedOperand { name: "x".into(), operand: Operand(0) }],
        constants: vec![ipfs_accelerate_tensor::graph::Constant {
            operand: Operand(1),
            source: ipfs_accelerate_tensor::graph::ConstantSource::Weight("w".into()),
        }],
        nodes: vec![Node { op: Op::Matmul, inputs: vec![Operand(0), Operand(1)], output: Operand(2) }],
        outputs: vec![NamedOperand { name: "y".into(), operand: Operand(2) }],
    };
    let weights: Weights = [("w".to_string(), q.clone())].into_iter().collect();
    let err = CpuBackend::new().compile(&graph, &weights).err().expect("a q4_0 matmul must not compile");
    assert!(err.to_string().contains("matmul") && err.to_string().contains("q4_0"), "hand-built graph: {err}");

    // Ops that accept any dtype in the IR (gather of an embedding table, a
    // reshape) pass validation; the CPU backend then says it cannot run them.
    for use_gather in [true, false] {
        let mut b = GraphBuilder::new();
        let ids = b.input("ids", DType::Int32, [2]).unwrap();
        let w = b.constant("w", q.clone()).unwrap();
        let y = if use_gather { b.gather(w, ids, 0).unwrap() } else { b.reshape(w, &[2, 64]).unwrap() };
        let (graph, weights) = b.build(&[("y", y)]).unwrap();
        let err = CpuBackend::new().compile(&graph, &weights).err().expect("q4_0 data must not compile on the cpu");
        assert!(matches!(err, Error::UnsupportedDType { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("cannot run") && msg.contains("q4_0"), "{msg}");
    }
}

#[test]
fn unsupported_dtypes_and_options_are_errors() {
    // float16 arithmetic: valid WebNN, but the CPU backend computes in f32.
    let mut b = GraphBuilder::new();
    let x = b.input("x", DType::Float16, [2, 2]).unwrap();
    let y = b.add(x, x).unwrap();
    let (graph, weights) = b.build(&[("y", y)]).unwrap();
    let err = CpuBackend::new().compile(&graph, &weights).err().expect("f16 add");
    assert!(err.to_string().contains("cannot run add on float16"), "{err}");
    // layerNormalization over non-trailing axes.
    let mut b = GraphBuilder::new();
    let x = b.input("x", F32, [2, 3, 4]).unwrap();
    let y = b.layer_normalization(x, LayerNormOptions { axes: Some(vec![0]), ..Default::default() }).unwrap();
    let (graph, weights) = b.build(&[("y", y)]).unwrap();
    let err = CpuBackend::new().compile(&graph, &weights).err().expect("leading-axis layer norm");
    assert!(err.to_string().contains("layerNormalization"), "{err}");
}

// ---------------------------------------------------------------------------
// serialization, reuse, interleaving, parallel paths
// ---------------------------------------------------------------------------

/// A graph using most ops at once (with two outputs), and its weights.
fn kitchen_sink() -> (Graph, Weights) {
    let mut rng = Lcg::new(70);
    let mut b = GraphBuilder::new();
    let x = b.input("x", F32, [4, 8]).unwrap();
    let ids = b.input("ids", DType::Int64, [3]).unwrap();
    let table = b.constant("table", rng.tensor(&[10, 8], -1.0, 1.0)).unwrap();
    let e = b.gather(table, ids, 0).unwrap();
    let h = b.concat(&[x, e], 0).unwrap(); // [7, 8]
    let w = b.constant("w", rng.tensor(&[8, 12], -0.5, 0.5)).unwrap();
    let bias = b.constant("b", rng.tensor(&[12], -0.5, 0.5)).unwrap();
    let p = b.matmul(h, w).unwrap();
    let qkv = b.add(p, bias).unwrap();
    let q = b.slice(qkv, &[0, 0], &[7, 4]).unwrap();
    let k = b.slice(qkv, &[0, 4], &[7, 4]).unwrap();
    let v = b.slice(qkv, &[0, 8], &[7, 4]).unwrap();
    let att = b.attention(q, k, v, attention_options(2, 2, 2, true, &[(3, 3), (4, 4)])).unwrap();
    let scale = b.constant("ln.scale", rng.tensor(&[4], 0.5, 1.5)).unwrap();
    let shift = b.constant("ln.bias", rng.tensor(&[4], -0.5, 0.5)).unwrap();
    let ln_options = LayerNormOptions { scale: Some(scale), bias: Some(shift), ..Default::default() };
    let ln = b.layer_normalization(att, ln_options).unwrap();
    let w2 = b.constant("w2", rng.tensor(&[6, 4], -1.0, 1.0)).unwrap();
    let c = b.constant_inline(rng.tensor(&[6], -1.0, 1.0));
    let options = GemmOptions { c: Some(c), alpha: 0.75, beta: 1.5, a_transpose: false, b_transpose: true };
    let g = b.gemm(ln, w2, options).unwrap(); // [7, 6]
    let g = b.gelu(g).unwrap();
    let s = b.softmax(g, 1).unwrap();
    let t = b.transpose(s, &[1, 0]).unwrap(); // [6, 7]
    let mean = b.reduce_mean(t, &[1], true).unwrap(); // [6, 1]
    let ex = b.expand(mean, &[6, 7]).unwrap();
    let above = b.greater(t, ex).unwrap();
    let zero = b.scalar(0.0);
    let kept = b.where_(above, t, zero).unwrap();
    let win = b.slice(kept, &[1, 0], &[4, 7]).unwrap();
    let flat = b.reshape(win, &[28]).unwrap();
    let half = b.cast(flat, DType::Float16).unwrap();
    let total = b.reduce_sum(t, &[0, 1], false).unwrap();
    let root = b.sqrt(total).unwrap();
    b.build(&[("half", half), ("root", root), ("flat", flat)]).unwrap()
}

fn kitchen_sink_inputs(seed: u64) -> (Tensor, Tensor) {
    let mut rng = Lcg::new(seed);
    let x = rng.tensor(&[4, 8], -1.0, 1.0);
    let ids = Tensor::from_i64([3], &[rng.below(10) as i64, rng.below(10) as i64, 9]).unwrap();
    (x, ids)
}

#[test]
fn graph_survives_json() {
    let (graph, weights) = kitchen_sink();
    let json = serde_json::to_string(&graph).unwrap();
    let back: Graph = serde_json::from_str(&json).unwrap();
    assert_eq!(back, graph);
    let weights_json = serde_json::to_string(&weights).unwrap();
    let weights_back: Weights = serde_json::from_str(&weights_json).unwrap();
    let original = compile(&graph, &weights);
    let restored = compile(&back, &weights_back);
    let (x, ids) = kitchen_sink_inputs(71);
    let a = original.run(&[("x", &x), ("ids", &ids)]).unwrap();
    let b = restored.run(&[("x", &x), ("ids", &ids)]).unwrap();
    assert_eq!(original.output_names(), ["half", "root", "flat"]);
    assert_eq!(restored.output_names(), original.output_names());
    assert_eq!(a.len(), 3);
    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        assert_same_bits(&format!("output {i}"), a, b);
    }
    // The outputs are not degenerate: the cast matches the f32 values it came from.
    let flat = Nd::of(&a[2]);
    let want_half = unary(&flat, |v| f16::from_f64(v).to_f64());
    assert_exact("cast output", &a[0], DType::Float16, &want_half);
    assert!(flat.data.iter().any(|&v| v != 0.0) && flat.data.contains(&0.0));
}

#[test]
fn repeated_runs_give_identical_results() {
    let (graph, weights) = kitchen_sink();
    let exe = compile(&graph, &weights);
    let (x1, ids1) = kitchen_sink_inputs(72);
    let (x2, ids2) = kitchen_sink_inputs(73);
    let first = exe.run(&[("x", &x1), ("ids", &ids1)]).unwrap();
    let second = exe.run(&[("x", &x1), ("ids", &ids1)]).unwrap();
    let other = exe.run(&[("x", &x2), ("ids", &ids2)]).unwrap();
    let third = exe.run(&[("x", &x1), ("ids", &ids1)]).unwrap();
    // A fresh compile of the same graph (a fresh arena) agrees bit for bit too.
    let fresh = compile(&graph, &weights).run(&[("x", &x2), ("ids", &ids2)]).unwrap();
    for i in 0..first.len() {
        assert_same_bits(&format!("second run, output {i}"), &first[i], &second[i]);
        assert_same_bits(&format!("third run, output {i}"), &first[i], &third[i]);
        assert_same_bits(&format!("other inputs, output {i}"), &other[i], &fresh[i]);
    }
    // ("root" is sqrt(sum of softmax rows) = sqrt(7) for any input, so compare "flat".)
    assert_ne!(first[2].as_bytes(), other[2].as_bytes(), "different inputs give different outputs");
}

/// A small MLP block: relu(x·w1 + b1)·w2, layer-normalized; and its reference.
fn mlp(rows: usize, width: usize, hidden: usize, seed: u64) -> (Graph, Weights, impl Fn(&Tensor) -> Nd) {
    let mut rng = Lcg::new(seed);
    let w1 = rng.tensor(&[width, hidden], -0.5, 0.5);
    let b1 = rng.tensor(&[hidden], -0.5, 0.5);
    let w2 = rng.tensor(&[hidden, width], -0.5, 0.5);
    let mut b = GraphBuilder::new();
    let x = b.input("x", F32, [rows, width]).unwrap();
    let w1c = b.constant("w1", w1.clone()).unwrap();
    let b1c = b.constant("b1", b1.clone()).unwrap();
    let w2c = b.constant("w2", w2.clone()).unwrap();
    let h = b.matmul(x, w1c).unwrap();
    let h = b.add(h, b1c).unwrap();
    let h = b.relu(h).unwrap();
    let y = b.matmul(h, w2c).unwrap();
    let y = b.add(y, x).unwrap();
    let y = b.layer_normalization(y, LayerNormOptions::default()).unwrap();
    let (graph, weights) = b.build(&[("y", y)]).unwrap();
    let reference = move |x: &Tensor| {
        let xn = Nd::of(x);
        let h = unary(&binary(&matmul(&xn, &Nd::of(&w1)), &Nd::of(&b1), |a, b| a + b), |v| v.max(0.0));
        let y = binary(&matmul(&h, &Nd::of(&w2)), &xn, |a, b| a + b);
        layer_norm(&y, &[1], None, None, 1e-5)
    };
    (graph, weights, reference)
}

#[test]
fn executables_sharing_a_backend_interleave() {
    let backend = CpuBackend::new();
    let (big_g, big_w, big_ref) = mlp(32, 24, 96, 80);
    let (small_g, small_w, small_ref) = mlp(3, 5, 7, 81);
    let big = backend.compile(&big_g, &big_w).unwrap();
    let small = backend.compile(&small_g, &small_w).unwrap();
    assert!(big.arena_bytes() > small.arena_bytes());
    let mut rng = Lcg::new(82);
    for round in 0..4 {
        // Alternate which one runs first so each picks up the other's arena.
        let order: [bool; 2] = if round % 2 == 0 { [true, false] } else { [false, true] };
        for run_big in order {
            let shape: &[usize] = if run_big { &[32, 24] } else { &[3, 5] };
            let x = rng.tensor(shape, -1.0, 1.0);
            let exe = if run_big { &big } else { &small };
            let want = if run_big { big_ref(&x) } else { small_ref(&x) };
            let got = exe.run(&[("x", &x)]).unwrap().remove(0);
            assert_close(&format!("round {round}, big {run_big}"), &got, &want, 1e-4, 1e-4);
        }
    }
    // Both from several threads at once: every result equals the serial one.
    let inputs: Vec<(Tensor, Tensor)> = (0..4)
        .map(|i| (Lcg::new(90 + i).tensor(&[32, 24], -1.0, 1.0), Lcg::new(95 + i).tensor(&[3, 5], -1.0, 1.0)))
        .collect();
    let expected: Vec<(Tensor, Tensor)> = inputs
        .iter()
        .map(|(xb, xs)| (big.run(&[("x", xb)]).unwrap().remove(0), small.run(&[("x", xs)]).unwrap().remove(0)))
        .collect();
    std::thread::scope(|s| {
        for (i, ((xb, xs), (eb, es))) in inputs.iter().zip(&expected).enumerate() {
            let (big, small) = (&big, &small);
            s.spawn(move || {
                for rep in 0..20 {
                    let got_big = big.run(&[("x", xb)]).unwrap().remove(0);
                    let got_small = small.run(&[("x", xs)]).unwrap().remove(0);
                    assert_same_bits(&format!("thread {i} rep {rep} big"), &got_big, eb);
                    assert_same_bits(&format!("thread {i} rep {rep} small"), &got_small, es);
                }
            });
        }
    });
}

#[test]
fn large_shapes_take_the_parallel_paths() {
    // 64 × 600 = 38 400 elements, above the kernels' threshold for splitting work.
    let (rows, cols) = (64, 600);
    let mut rng = Lcg::new(100);
    let x = rng.tensor(&[rows, cols], -3.0, 3.0);
    let row = rng.tensor(&[cols], 0.5, 1.5);
    let col = rng.tensor(&[rows, 1], 0.5, 1.5);
    let xn = Nd::of(&x);

    let got = run1(&[("x", &x)], |g, i| g.gelu(i[0]));
    assert_close("large gelu", &got, &unary(&xn, gelu), RTOL, ATOL_FN);
    let got = run1(&[("x", &x), ("r", &row)], |g, i| g.add(i[0], i[1]));
    assert_close("large add", &got, &binary(&xn, &Nd::of(&row), |a, b| a + b), RTOL, 1e-6);
    let got = run1(&[("x", &x), ("c", &col)], |g, i| g.div(i[0], i[1]));
    assert_close("large div", &got, &binary(&xn, &Nd::of(&col), |a, b| a / b), RTOL, 1e-6);
    let got = run1(&[("x", &x)], |g, i| g.softmax(i[0], 1));
    assert_close("large softmax", &got, &softmax(&xn, 1), RTOL, 1e-7);
    let got = run1(&[("x", &x)], |g, i| g.layer_normalization(i[0], LayerNormOptions::default()));
    assert_close("large layer norm", &got, &layer_norm(&xn, &[1], None, None, 1e-5), RTOL, ATOL);

    // A fused GEMM big enough for a threaded product, fill and activation.
    let a = rng.tensor(&[rows, 64], -1.0, 1.0);
    let w = rng.tensor(&[64, cols], -0.25, 0.25);
    let (got, count) = run_with(&[("a", &a), ("w", &w), ("r", &row)], |g, i| {
        let p = g.matmul(i[0], i[1])?;
        let p = g.add(p, i[2])?;
        g.gelu(p)
    });
    assert_eq!(count, 1);
    let want = unary(&binary(&matmul(&Nd::of(&a), &Nd::of(&w)), &Nd::of(&row), |a, b| a + b), gelu);
    assert_close("large fused gemm", &got, &want, RTOL, ATOL);
    let (got, count) = run_with(&[("a", &a), ("r", &row)], |g, i| {
        let wc = g.constant("w", w.clone())?;
        let p = g.matmul(i[0], wc)?;
        let p = g.add(p, i[1])?;
        g.gelu(p)
    });
    assert_eq!(count, 1);
    assert_close("large fused gemm, constant weight", &got, &want, RTOL, ATOL);

    // A batched matmul with enough work to split over the batch.
    let p = rng.tensor(&[8, 32, 32], -1.0, 1.0);
    let q = rng.tensor(&[8, 32, 32], -1.0, 1.0);
    let got = run1(&[("p", &p), ("q", &q)], |g, i| g.matmul(i[0], i[1]));
    assert_close("large batched matmul", &got, &matmul(&Nd::of(&p), &Nd::of(&q)), RTOL, ATOL);
}

/// Sequences padded to one length with a key-padding mask give, on their
/// real rows, what the packed sequences give without one: natively and
/// decomposed into WebNN ops.
#[test]
fn attention_with_a_key_padding_mask_equals_packed_attention() {
    masked_equals_packed(2, 4, 6, &[3, 6, 1]);
    // Padded to 40: the query-block path, with masked keys in its products.
    masked_equals_packed(2, 8, 40, &[33, 40, 5]);
}

/// Sequences of `lens` padded to `pad` rows, with a key-padding mask, give
/// the packed (unpadded) attention's rows.
fn masked_equals_packed(h: usize, d: usize, pad: usize, lens: &[usize]) {
    let segments: Vec<(usize, usize)> = lens.iter().map(|&n| (n, n)).collect();
    let packed = attention_options(h, h, d, false, &segments);
    let total: usize = lens.iter().sum();
    let mut rng = Lcg::new(77);
    let q = rng.tensor(&[total, h * d], -1.0, 1.0);
    let k = rng.tensor(&[total, h * d], -1.0, 1.0);
    let v = rng.tensor(&[total, h * d], -1.0, 1.0);
    let want = attention(&Nd::of(&q), &Nd::of(&k), &Nd::of(&v), &packed);

    // Padded layout: sequence s in rows s*pad .. s*pad+len; padding rows hold junk.
    let rows = lens.len() * pad;
    let mut padded =
        [rng.vec(rows * h * d, -9.0, 9.0), rng.vec(rows * h * d, -9.0, 9.0), rng.vec(rows * h * d, -9.0, 9.0)];
    let mut mask = vec![0.0f32; lens.len() * pad];
    let mut start = 0;
    for (s, &n) in lens.iter().enumerate() {
        for (dst, src) in padded.iter_mut().zip([&q, &k, &v]) {
            let src = src.as_f32().unwrap();
            dst[s * pad * h * d..(s * pad + n) * h * d].copy_from_slice(&src[start * h * d..(start + n) * h * d]);
        }
        mask[s * pad + n..(s + 1) * pad].fill(-1e30);
        start += n;
    }
    let same: Vec<(usize, usize)> = lens.iter().map(|_| (pad, pad)).collect();
    let mut b = GraphBuilder::new();
    let ins: Vec<Operand> = ["q", "k", "v"].iter().map(|n| b.input(n, F32, [rows, h * d]).unwrap()).collect();
    let m = b.input("mask", F32, [lens.len(), pad]).unwrap();
    let y = b.attention_masked(ins[0], ins[1], ins[2], m, attention_options(h, h, d, false, &same)).unwrap();
    let (graph, weights) = b.build(&[("y", y)]).unwrap();
    let tensors: Vec<Tensor> = padded.iter().map(|p| Tensor::from_f32([rows, h * d], p).unwrap()).collect();
    let mask = Tensor::from_f32([lens.len(), pad], &mask).unwrap();
    let inputs = [("q", &tensors[0]), ("k", &tensors[1]), ("v", &tensors[2]), ("mask", &mask)];
    let native = compile(&graph, &weights).run(&inputs).unwrap().remove(0);
    let decomposed = compile(&decompose_fused(&graph).unwrap(), &weights).run(&inputs).unwrap().remove(0);
    for got in [native, decomposed] {
        let got = got.as_f32().unwrap();
        let mut start = 0;
        for (s, &n) in lens.iter().enumerate() {
            for r in 0..n {
                for c in 0..h * d {
                    let (g, w) = (got[(s * pad + r) * h * d + c] as f64, want.at(&[start + r, c]));
                    assert!((g - w).abs() <= ATOL + RTOL * w.abs(), "segment {s} row {r} col {c}: {g} vs {w}");
                }
            }
            start += n;
        }
    }
    // A mask of the wrong shape is an error, not a panic.
    let mut b = GraphBuilder::new();
    let ins: Vec<Operand> = ["q", "k", "v"].iter().map(|n| b.input(n, F32, [rows, h * d]).unwrap()).collect();
    let bad = b.input("mask", F32, [lens.len(), pad + 1]).unwrap();
    let err = b.attention_masked(ins[0], ins[1], ins[2], bad, attention_options(h, h, d, false, &same)).unwrap_err();
    assert!(err.to_string().contains("mask"), "{err}");
}
