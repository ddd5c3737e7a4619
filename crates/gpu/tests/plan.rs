//! Compiled plans against the CPU backend: the same graph, the same inputs,
//! outputs equal within float tolerance; serialized plans round-trip; bad
//! plans and unsupported ops give clear errors.
//!
//! Runs on whatever adapter wgpu finds (Mesa's llvmpipe in CI). Without one
//! the tests print a skip notice and pass, unless `CI=true`.

mod support;

use ipfs_accelerate_gpu::plan::{BufferRole, Plan};
use ipfs_accelerate_gpu::{compile, compile_with, CompileOptions, DeviceWeights, GpuError, KernelRunner, LoadedPlan};
use ipfs_accelerate_tensor::cpu::CpuBackend;
use ipfs_accelerate_tensor::graph::{
    AttentionOptions, AttentionSegment, GemmOptions, Graph, GraphBuilder, LayerNormOptions, Weights,
};
use ipfs_accelerate_tensor::{DType, Tensor};

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

fn tensor(shape: &[usize], seed: u32) -> Tensor {
    Tensor::from_f32(shape.to_vec(), &values(shape.iter().product(), seed)).unwrap()
}

/// Runs `graph` on the GPU and on the CPU; asserts every output agrees.
fn check(runner: &KernelRunner, graph: &Graph, weights: &Weights, inputs: &[(&str, &Tensor)], tol: f32) -> Vec<Tensor> {
    check_plan(runner, compile(graph).unwrap(), graph, weights, inputs, tol)
}

fn check_plan(
    runner: &KernelRunner,
    plan: Plan,
    graph: &Graph,
    weights: &Weights,
    inputs: &[(&str, &Tensor)],
    tol: f32,
) -> Vec<Tensor> {
    let gpu = LoadedPlan::load(runner, &plan, weights, &DeviceWeights::new()).unwrap().run(runner, inputs).unwrap();
    let cpu = CpuBackend::new().compile(graph, weights).unwrap().run(inputs).unwrap();
    assert_eq!(gpu.len(), cpu.len());
    for (g, c) in gpu.iter().zip(&cpu) {
        assert_eq!(g.shape(), c.shape());
        let (g, c) = (g.to_f32_vec().unwrap(), c.to_f32_vec().unwrap());
        for (i, (a, b)) in g.iter().zip(&c).enumerate() {
            assert!((a - b).abs() <= tol * (1.0 + b.abs()), "element {i}: gpu {a} cpu {b}");
        }
    }
    gpu
}

/// A layer of an encoder: linear + gelu (fused), residual, layer norm,
/// softmax, and the layout ops (reshape, transpose, slice, expand, concat).
fn layer_graph(rows: usize) -> (Graph, Weights) {
    let mut b = GraphBuilder::new();
    let x = b.input("x", DType::Float32, [rows, 37]).unwrap();
    let w = b.constant("w", tensor(&[24, 37], 1)).unwrap();
    let bias = b.constant("bias", tensor(&[24], 2)).unwrap();
    let h = b.gemm(x, w, GemmOptions { c: Some(bias), b_transpose: true, ..Default::default() }).unwrap();
    let h = b.gelu(h).unwrap();
    let w2 = b.constant("w2", tensor(&[24, 37], 3)).unwrap();
    let back = b.matmul(h, w2).unwrap(); // [rows, 37]
    let r = b.add(back, x).unwrap();
    let scale = b.constant("ln.scale", tensor(&[37], 4)).unwrap();
    let shift = b.constant("ln.bias", tensor(&[37], 5)).unwrap();
    let n = b
        .layer_normalization(
            r,
            LayerNormOptions { scale: Some(scale), bias: Some(shift), axes: Some(vec![1]), epsilon: Some(1e-5) },
        )
        .unwrap();
    let s = b.softmax(h, 1).unwrap();
    let t = b.reshape(s, &[rows, 2, 12]).unwrap();
    let t = b.transpose(t, &[1, 0, 2]).unwrap(); // [2, rows, 12]
    let sl = b.slice(t, &[1, 0, 3], &[1, rows, 5]).unwrap();
    let e = b.expand(sl, &[3, rows, 5]).unwrap();
    let half = b.scalar(0.5);
    let e = b.mul(e, half).unwrap();
    let c = b.concat(&[e, sl], 0).unwrap(); // [4, rows, 5]
    let m = b.reduce_mean(c, &[2], false).unwrap();
    let mx = b.reduce_max(n, &[1], true).unwrap();
    b.build(&[("normed", n), ("mean", m), ("max", mx), ("hidden", h)]).unwrap()
}

#[test]
fn an_encoder_layer_matches_the_cpu_backend() {
    let runner = gpu!();
    for rows in [1, 5, 70] {
        let (graph, weights) = layer_graph(rows);
        let x = tensor(&[rows, 37], 9 + rows as u32);
        check(runner, &graph, &weights, &[("x", &x)], 1e-4);
    }
}

#[test]
fn embeddings_gather_and_broadcast_add_match() {
    let runner = gpu!();
    let mut b = GraphBuilder::new();
    let ids = b.input("ids", DType::Int32, [6]).unwrap();
    let table = b.constant("table", tensor(&[11, 8], 7)).unwrap();
    let pos = b.constant("pos", tensor(&[6, 1], 8)).unwrap();
    let g = b.gather(table, ids, 0).unwrap();
    let y = b.add(g, pos).unwrap();
    let (graph, weights) = b.build(&[("y", y)]).unwrap();
    let ids = Tensor::from_i32([6], &[0, 10, 3, 3, 9, 7]).unwrap();
    check(runner, &graph, &weights, &[("ids", &ids)], 1e-6);
}

#[test]
fn packed_attention_matches_including_causal_and_grouped_query() {
    let runner = gpu!();
    for (causal, heads, kv_heads) in [(false, 4, 4), (true, 4, 2)] {
        let lens = [3usize, 1, 6];
        let total: usize = lens.iter().sum();
        let d = 8;
        let mut b = GraphBuilder::new();
        let x = b.input("x", DType::Float32, [total, (heads + 2 * kv_heads) * d]).unwrap();
        let q = b.slice(x, &[0, 0], &[total, heads * d]).unwrap();
        let k = b.slice(x, &[0, heads * d], &[total, kv_heads * d]).unwrap();
        let v = b.slice(x, &[0, (heads + kv_heads) * d], &[total, kv_heads * d]).unwrap();
        let options = AttentionOptions {
            num_heads: heads,
            num_kv_heads: kv_heads,
            head_dim: d,
            scale: 0.35,
            causal,
            segments: lens.iter().map(|&n| AttentionSegment { q_len: n, kv_len: n }).collect(),
            has_mask: false,
        };
        let out = b.attention(q, k, v, options).unwrap();
        let (graph, weights) = b.build(&[("out", out)]).unwrap();
        // One fused dispatch per sequence, reading Q, K, V in place: no copies.
        let kernels: Vec<String> = compile(&graph).unwrap().dispatches.into_iter().map(|d| d.kernel).collect();
        assert_eq!(kernels, ["attention"; 3]);
        let x = tensor(&[total, (heads + 2 * kv_heads) * d], 21);
        check(runner, &graph, &weights, &[("x", &x)], 1e-4);
    }
}

#[test]
fn attention_beyond_the_fused_kernel_is_decomposed() {
    let (len, d) = (2049, 4);
    let mut b = GraphBuilder::new();
    let q = b.input("q", DType::Float32, [len, d]).unwrap();
    let segments = vec![AttentionSegment { q_len: len, kv_len: len }];
    let options = AttentionOptions {
        num_heads: 1,
        num_kv_heads: 1,
        head_dim: d,
        scale: 0.5,
        causal: false,
        segments,
        has_mask: false,
    };
    let out = b.attention(q, q, q, options).unwrap();
    let (graph, _) = b.build(&[("out", out)]).unwrap();
    let kernels: Vec<String> = compile(&graph).unwrap().dispatches.into_iter().map(|d| d.kernel).collect();
    assert!(!kernels.contains(&"attention".to_string()) && kernels.contains(&"softmax".to_string()), "{kernels:?}");
}

#[test]
fn a_serialized_plan_round_trips_and_runs_identically() {
    let runner = gpu!();
    let (graph, weights) = layer_graph(5);
    let plan = compile(&graph).unwrap();
    let json = serde_json::to_string(&plan).unwrap();
    let back: Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, plan);
    let x = tensor(&[5, 37], 3);
    let weights_on_device = DeviceWeights::new();
    let a = LoadedPlan::load(runner, &plan, &weights, &weights_on_device).unwrap().run(runner, &[("x", &x)]).unwrap();
    let b = LoadedPlan::load(runner, &back, &weights, &weights_on_device).unwrap().run(runner, &[("x", &x)]).unwrap();
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(a.as_bytes(), b.as_bytes());
    }
}

#[test]
fn scratch_buffers_are_reused() {
    // A chain of 40 adds needs two ping-pong buffers, not 40.
    let mut b = GraphBuilder::new();
    let mut x = b.input("x", DType::Float32, [64]).unwrap();
    let one = b.scalar(1.0);
    for _ in 0..40 {
        x = b.add(x, one).unwrap();
    }
    let (graph, _) = b.build(&[("y", x)]).unwrap();
    let plan = compile(&graph).unwrap();
    let scratch = plan.buffers.iter().filter(|b| b.role == BufferRole::Scratch).count();
    assert!(scratch <= 3, "{scratch} scratch buffers");
    let Some(runner) = support::runner() else { return };
    let x = tensor(&[64], 1);
    check(runner, &graph, &Weights::new(), &[("x", &x)], 1e-6);
}

#[test]
fn unsupported_ops_and_bad_plans_give_clear_errors() {
    let mut b = GraphBuilder::new();
    let x = b.input("x", DType::Float32, [4]).unwrap();
    let y = b.equal(x, x).unwrap();
    let (graph, _) = b.build(&[("y", y)]).unwrap();
    let err = compile(&graph).unwrap_err();
    assert!(matches!(err, GpuError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("equal") && err.to_string().contains("--backend cpu"), "{err}");

    let runner = gpu!();
    let (graph, weights) = layer_graph(2);
    let plan = compile(&graph).unwrap();
    let device_weights = DeviceWeights::new();
    let mut old = plan.clone();
    old.version += 1;
    let err = LoadedPlan::load(runner, &old, &weights, &device_weights).unwrap_err();
    assert!(err.to_string().contains("plan format version"), "{err}");
    let mut writes_input = plan.clone();
    let input = writes_input.inputs[0].buffer;
    *writes_input.dispatches[0].bindings.last_mut().unwrap() = Some(input);
    let err = LoadedPlan::load(runner, &writes_input, &weights, &device_weights).unwrap_err();
    assert!(matches!(err, GpuError::Plan(_)), "{err}");
    let mut missing = plan.clone();
    missing.dispatches[0].bindings[0] = Some(9999);
    assert!(LoadedPlan::load(runner, &missing, &weights, &device_weights).is_err());
    let loaded = LoadedPlan::load(runner, &plan, &weights, &device_weights).unwrap();
    let wrong = tensor(&[3, 37], 1);
    let err = loaded.run(runner, &[("x", &wrong)]).unwrap_err();
    assert!(err.to_string().contains("compiled for"), "{err}");
    assert!(loaded.run(runner, &[]).unwrap_err().to_string().contains("was not given"));
}

#[test]
fn padded_attention_with_a_key_padding_mask_is_one_dispatch_and_matches() {
    let runner = gpu!();
    let (heads, d, pad, seqs) = (4, 8, 7, 3);
    let rows = seqs * pad;
    let mut b = GraphBuilder::new();
    let x = b.input("x", DType::Float32, [rows, 3 * heads * d]).unwrap();
    let mask = b.input("mask", DType::Float32, [seqs, pad]).unwrap();
    let q = b.slice(x, &[0, 0], &[rows, heads * d]).unwrap();
    let k = b.slice(x, &[0, heads * d], &[rows, heads * d]).unwrap();
    let v = b.slice(x, &[0, 2 * heads * d], &[rows, heads * d]).unwrap();
    let options = AttentionOptions {
        num_heads: heads,
        num_kv_heads: heads,
        head_dim: d,
        scale: 0.35,
        causal: false,
        segments: vec![AttentionSegment { q_len: pad, kv_len: pad }; seqs],
        has_mask: true,
    };
    let out = b.attention_masked(q, k, v, mask, options).unwrap();
    let (graph, weights) = b.build(&[("out", out)]).unwrap();
    let kernels: Vec<String> = compile(&graph).unwrap().dispatches.into_iter().map(|d| d.kernel).collect();
    assert_eq!(kernels, ["attention"]);
    let x = tensor(&[rows, 3 * heads * d], 5);
    // Sequences of 7, 4 and 1 real tokens.
    let mut m = vec![0.0f32; seqs * pad];
    m[pad + 4..2 * pad].fill(-1e30);
    m[2 * pad + 1..3 * pad].fill(-1e30);
    let m = Tensor::from_f32([seqs, pad], &m).unwrap();
    check(runner, &graph, &weights, &[("x", &x), ("mask", &m)], 1e-4);
}

#[test]
fn f16_weights_run_the_f16_kernels_within_half_precision() {
    let runner = gpu!();
    if !runner.context().has_shader_f16() {
        eprintln!("SKIPPED: this adapter has no shader-f16");
        return;
    }
    let f16 = CompileOptions { f16_weights: true, ..Default::default() };
    let (graph, weights) = layer_graph(9);
    let plan = compile_with(&graph, f16).unwrap();
    let kernels: Vec<&str> = plan.dispatches.iter().map(|d| d.kernel.as_str()).collect();
    assert!(kernels.contains(&"matmul_f16w") && !kernels.contains(&"matmul"), "{kernels:?}");
    let x = tensor(&[9, 37], 4);
    check_plan(runner, plan, &graph, &weights, &[("x", &x)], 3e-3);

    let mut b = GraphBuilder::new();
    let ids = b.input("ids", DType::Int32, [5]).unwrap();
    let table = b.constant("table", tensor(&[11, 8], 7)).unwrap();
    let y = b.gather(table, ids, 0).unwrap();
    let (graph, weights) = b.build(&[("y", y)]).unwrap();
    let plan = compile_with(&graph, f16).unwrap();
    assert_eq!(plan.dispatches[0].kernel, "gather_f16w");
    let ids = Tensor::from_i32([5], &[0, 10, 3, 3, 9]).unwrap();
    check_plan(runner, plan, &graph, &weights, &[("ids", &ids)], 1e-3);
}

#[test]
fn weights_larger_than_one_binding_are_split_into_row_blocks() {
    let runner = gpu!();
    // An embedding table of 1600 bytes and a linear weight of 1280 bytes,
    // with a pretend binding limit of 512 bytes.
    let mut b = GraphBuilder::new();
    let ids = b.input("ids", DType::Int32, [3]).unwrap();
    let table = b.constant("table", tensor(&[50, 8], 1)).unwrap();
    let w = b.constant("w", tensor(&[40, 8], 2)).unwrap();
    let bias = b.constant("bias", tensor(&[40], 3)).unwrap();
    let x = b.gather(table, ids, 0).unwrap();
    let y = b.gemm(x, w, GemmOptions { c: Some(bias), b_transpose: true, ..Default::default() }).unwrap();
    let y = b.relu(y).unwrap();
    let (graph, weights) = b.build(&[("y", y), ("x", x)]).unwrap();
    let ids = Tensor::from_i32([3], &[0, 49, 16]).unwrap();
    let f16 = runner.context().has_shader_f16();
    for (f16_weights, tol) in [(false, 1e-6), (true, 3e-3)] {
        if f16_weights && !f16 {
            continue;
        }
        let options = CompileOptions { f16_weights, max_binding_bytes: Some(512) };
        let plan = compile_with(&graph, options).unwrap();
        let gathers = plan.dispatches.iter().filter(|d| d.kernel.starts_with("gather")).count();
        let matmuls = plan.dispatches.iter().filter(|d| d.kernel.starts_with("matmul")).count();
        assert!(gathers >= 2 && matmuls >= 2, "{gathers} gathers, {matmuls} matmuls");
        assert!(plan.buffers.iter().all(|b| b.size <= 512));
        check_plan(runner, plan, &graph, &weights, &[("ids", &ids)], tol);
    }
    // A weight that cannot be split (matmul's B stored [k, n]) is a clear error.
    let mut b = GraphBuilder::new();
    let x = b.input("x", DType::Float32, [2, 40]).unwrap();
    let w = b.constant("w", tensor(&[40, 8], 2)).unwrap();
    let y = b.matmul(x, w).unwrap();
    let (graph, _) = b.build(&[("y", y)]).unwrap();
    let err = compile_with(&graph, CompileOptions { max_binding_bytes: Some(512), ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("largest storage binding"), "{err}");
}
