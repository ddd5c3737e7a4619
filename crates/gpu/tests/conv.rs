//! The windowed ops (`conv2d` in every form, `averagePool2d`, `maxPool2d`) and
//! `clamp` compiled to plans and run on the GPU, against the CPU backend (which
//! its own tests check against a naive reference).
//!
//! Runs on whatever adapter wgpu finds (Mesa's llvmpipe in CI). Without one
//! the tests print a skip notice and pass, unless `CI=true`.

mod support;

use ipfs_accelerate_gpu::{compile, DeviceWeights, KernelRunner, LoadedPlan};
use ipfs_accelerate_tensor::cpu::CpuBackend;
use ipfs_accelerate_tensor::graph::{Graph, GraphBuilder, Op, Weights};
use ipfs_accelerate_tensor::{Conv2dOptions, DType, Pool2dOptions, Tensor};

/// Deterministic values in [-1, 1).
fn tensor(shape: &[usize], seed: u32) -> Tensor {
    let mut s = seed.wrapping_mul(2_654_435_761) | 1;
    let v: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect();
    Tensor::from_f32(shape.to_vec(), &v).unwrap()
}

/// Runs `graph` on the GPU and on the CPU; asserts every output agrees.
fn check(runner: &KernelRunner, what: &str, graph: &Graph, weights: &Weights, inputs: &[(&str, &Tensor)]) {
    let plan = compile(graph).unwrap_or_else(|e| panic!("{what}: {e}"));
    let gpu = LoadedPlan::load(runner, &plan, weights, &DeviceWeights::new()).unwrap().run(runner, inputs).unwrap();
    let cpu = CpuBackend::new().compile(graph, weights).unwrap().run(inputs).unwrap();
    for (g, c) in gpu.iter().zip(&cpu) {
        assert_eq!(g.shape(), c.shape(), "{what}");
        let (g, c) = (g.to_f32_vec().unwrap(), c.to_f32_vec().unwrap());
        for (i, (a, b)) in g.iter().zip(&c).enumerate() {
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{what}: element {i}: gpu {a} cpu {b}");
        }
    }
}

fn conv(padding: [usize; 4], strides: [usize; 2], dilations: [usize; 2], groups: usize) -> Conv2dOptions {
    Conv2dOptions { padding, strides, dilations, groups }
}

#[test]
fn conv2d_in_every_form_matches_the_cpu_backend() {
    let runner = gpu!();
    // (what, input NCHW, [O, kH, kW], options, bias, fused clamp)
    type Case = (&'static str, [usize; 4], [usize; 3], Conv2dOptions, bool, Option<(f32, f32)>);
    let cases: [Case; 10] = [
        ("3x3 same", [1, 3, 9, 8], [5, 3, 3], conv([1, 1, 1, 1], [1, 1], [1, 1], 1), true, None),
        (
            "3x3 stride 2 asymmetric",
            [2, 3, 11, 10],
            [8, 3, 3],
            conv([0, 1, 0, 1], [2, 2], [1, 1], 1),
            true,
            Some((0.0, 6.0)),
        ),
        ("1x1", [2, 16, 5, 6], [12, 1, 1], Conv2dOptions::default(), true, None),
        ("1x1 no bias", [1, 7, 4, 4], [3, 1, 1], Conv2dOptions::default(), false, Some((f32::NEG_INFINITY, 0.5))),
        ("depthwise 3x3", [2, 6, 9, 7], [6, 3, 3], conv([1, 1, 1, 1], [1, 1], [1, 1], 6), true, Some((0.0, 6.0))),
        ("depthwise 5x5 stride 2", [2, 5, 13, 11], [5, 5, 5], conv([1, 2, 1, 2], [2, 2], [1, 1], 5), true, None),
        ("depthwise multiplier 2", [1, 3, 6, 6], [6, 3, 3], conv([1, 1, 1, 1], [1, 1], [1, 1], 3), false, None),
        ("groups 2", [2, 6, 7, 8], [4, 3, 3], conv([1, 0, 0, 1], [1, 1], [1, 1], 2), true, None),
        ("dilation 2", [1, 3, 11, 12], [4, 3, 3], conv([2, 2, 2, 2], [1, 1], [2, 2], 1), false, Some((-0.5, 0.5))),
        ("dilation 2x3 depthwise", [1, 4, 10, 10], [4, 3, 3], conv([1, 2, 2, 1], [1, 1], [2, 3], 4), true, None),
    ];
    for (i, (what, input, [oc, kh, kw], o, has_bias, clamp)) in cases.into_iter().enumerate() {
        let seed = 10 * i as u32;
        let mut b = GraphBuilder::new();
        let x = b.input("x", DType::Float32, input).unwrap();
        let f = b.constant("f", tensor(&[oc, input[1] / o.groups, kh, kw], seed + 1)).unwrap();
        let bias = has_bias.then(|| b.constant("bias", tensor(&[oc], seed + 2)).unwrap());
        let mut y = b.conv2d(x, f, bias, o).unwrap();
        if let Some((lo, hi)) = clamp {
            y = b.clamp(y, lo, hi).unwrap();
        }
        let (graph, weights) = b.build(&[("y", y)]).unwrap();
        let plan = compile(&graph).unwrap();
        assert_eq!(plan.dispatches.len(), 1, "{what}: the clamp runs in the conv's epilogue");
        let xt = tensor(&input, seed + 3);
        check(runner, what, &graph, &weights, &[("x", &xt)]);
    }
}

#[test]
fn pools_and_clamp_match_the_cpu_backend() {
    let runner = gpu!();
    let pool =
        |window, padding, strides, dilations| Pool2dOptions { window_dimensions: window, padding, strides, dilations };
    let cases = [
        ("2x2 stride 2", [1, 3, 8, 8], pool([2, 2], [0; 4], [2, 2], [1, 1])),
        ("3x3 pad 1", [2, 2, 5, 7], pool([3, 3], [1, 1, 1, 1], [1, 1], [1, 1])),
        ("3x3 stride 2 asymmetric", [1, 4, 9, 10], pool([3, 3], [0, 1, 1, 0], [2, 2], [1, 1])),
        ("dilation 2", [1, 2, 9, 9], pool([3, 3], [2, 2, 2, 2], [1, 1], [2, 2])),
        ("global 7x7", [2, 16, 7, 7], Pool2dOptions::global(7, 7)),
    ];
    for (i, (what, shape, o)) in cases.into_iter().enumerate() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", DType::Float32, shape).unwrap();
        let avg = b.average_pool2d(x, o).unwrap();
        let max = b.max_pool2d(x, o).unwrap();
        let clamped = b.clamp(x, -0.25, 0.5).unwrap();
        let (graph, weights) = b.build(&[("avg", avg), ("max", max), ("clamp", clamped)]).unwrap();
        let xt = tensor(&shape, 100 + i as u32);
        check(runner, what, &graph, &weights, &[("x", &xt)]);
    }
}

/// An EfficientNet-Lite-shaped block at a small size: stem conv + ReLU6,
/// depthwise + ReLU6, 1x1 projection, residual-free expansion, global average
/// pool, and a classifier gemm.
#[test]
fn a_small_mobile_block_matches_the_cpu_backend() {
    let runner = gpu!();
    let mut b = GraphBuilder::new();
    let x = b.input("x", DType::Float32, [1, 3, 32, 32]).unwrap();
    let w0 = b.constant("stem", tensor(&[8, 3, 3, 3], 1)).unwrap();
    let b0 = b.constant("stem.b", tensor(&[8], 2)).unwrap();
    let y = b.conv2d(x, w0, Some(b0), conv([0, 1, 0, 1], [2, 2], [1, 1], 1)).unwrap();
    let y = b.clamp(y, 0.0, 6.0).unwrap();
    let w1 = b.constant("dw", tensor(&[8, 1, 3, 3], 3)).unwrap();
    let y = b.conv2d(y, w1, None, conv([1, 1, 1, 1], [1, 1], [1, 1], 8)).unwrap();
    let y = b.relu(y).unwrap();
    let w2 = b.constant("pw", tensor(&[16, 8, 1, 1], 4)).unwrap();
    let y = b.conv2d(y, w2, None, Conv2dOptions::default()).unwrap();
    let p = b.average_pool2d(y, Pool2dOptions::global(16, 16)).unwrap();
    let p = b.reshape(p, &[1, 16]).unwrap();
    let fc = b.constant("fc", tensor(&[10, 16], 5)).unwrap();
    let logits =
        b.gemm(p, fc, ipfs_accelerate_tensor::GemmOptions { b_transpose: true, ..Default::default() }).unwrap();
    let (graph, weights) = b.build(&[("logits", logits), ("features", y)]).unwrap();
    let plan = compile(&graph).unwrap();
    let kernels: Vec<&str> = plan.dispatches.iter().map(|d| d.kernel.as_str()).collect();
    assert_eq!(kernels, ["conv2d", "conv2d", "conv2d", "pool2d", "matmul"]);
    assert!(graph.nodes.iter().any(|n| matches!(n.op, Op::Clamp { .. })));
    let xt = tensor(&[1, 3, 32, 32], 6);
    check(runner, "mobile block", &graph, &weights, &[("x", &xt)]);
}
