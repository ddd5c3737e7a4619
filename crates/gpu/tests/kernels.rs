//! Every kernel of the library against a plain Rust reference (f64) on small real
//! inputs, on whatever adapter wgpu finds (Mesa's llvmpipe in CI).
//!
//! Without an adapter these tests print a skip notice and pass — unless `CI=true`, where
//! a missing adapter is a failure (CI installs `mesa-vulkan-drivers libvulkan1`).

mod support;

use ipfs_accelerate_gpu::params::{
    linear_workgroups, row_workgroups, Activation, AttentionParams, BinaryOp, BinaryParams, CopyParams, GatherParams,
    LayerNormParams, MatmulParams, ReduceOp, RowParams, UnaryOp, UnaryParams,
};
use ipfs_accelerate_gpu::{AdapterSelector, GpuContext, GpuError, KernelRunner, Launch, KERNELS};

/// xorshift64*: deterministic inputs without a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        lo + (hi - lo) * (bits as f32 / (1u64 << 24) as f32)
    }
    fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

#[track_caller]
fn assert_close(what: &str, got: &[f32], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g as f64 == w
        } else {
            (g as f64 - w).abs() <= atol + rtol * w.abs()
        };
        assert!(ok, "{what}: element {i}: got {g}, want {w}");
    }
}

fn bytes(v: &[f32]) -> &[u8] {
    bytemuck::cast_slice(v)
}

/// erf in f64: Taylor series below 4 (enough terms for ~1e-12), ±1 beyond
/// (|erfc(4)| < 2e-8).
fn erf(x: f64) -> f64 {
    if x.abs() >= 4.0 {
        return x.signum();
    }
    let mut term = x;
    let mut sum = x;
    for n in 1..200 {
        term *= -x * x / n as f64;
        let add = term / (2 * n + 1) as f64;
        sum += add;
        if add.abs() < 1e-17 {
            break;
        }
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

fn gelu_tanh(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
}

// ---------------------------------------------------------------- context & registry

#[test]
fn adapter_report_serializes() {
    let r = gpu!();
    let report = r.context().report();
    let json = serde_json::to_string(report).unwrap();
    let back: ipfs_accelerate_gpu::AdapterReport = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, report);
    assert!(report.limits.max_storage_buffer_binding_size >= 128 << 20, "{report:?}");
    let all = GpuContext::adapters();
    assert!(all.iter().any(|a| a.name == report.name), "{all:?}");
}

#[test]
fn unknown_adapter_is_a_clear_error() {
    gpu!();
    let err = GpuContext::with_selector(&AdapterSelector::Index(999)).unwrap_err();
    assert!(matches!(err, GpuError::AdapterNotFound { .. }), "{err}");
    let err = GpuContext::with_selector(&AdapterSelector::Name("no-such-gpu".into())).unwrap_err();
    assert!(err.to_string().contains("no-such-gpu"), "{err}");
}

#[test]
fn every_kernel_compiles() {
    let r = gpu!();
    for k in KERNELS {
        r.pipeline(k.id, &[]).unwrap_or_else(|e| panic!("{}: {e}", k.id));
    }
    assert!(matches!(r.pipeline("nope", &[]), Err(GpuError::UnknownKernel(_))));
    assert!(matches!(r.pipeline("unary", &[("NOPE", 1.0)]), Err(GpuError::BadLaunch { .. })));
    // Cached: same Arc for the same constants.
    let a = r.pipeline("unary", &[("OP", 3.0)]).unwrap();
    let b = r.pipeline("unary", &[("OP", 3.0)]).unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
}

#[test]
fn bad_launch_is_an_error_not_a_panic() {
    let r = gpu!();
    let x = [1.0f32; 4];
    let err = r
        .run(&Launch {
            kernel: "unary",
            constants: &[],
            uniform: &[0u8; 8],
            inputs: &[Some(bytes(&x))],
            output_bytes: 16,
            workgroups: [1, 1, 1],
        })
        .unwrap_err();
    assert!(matches!(err, GpuError::BadLaunch { .. }), "{err}");
}

// ---------------------------------------------------------------- matmul

struct MatmulCase {
    batch: u32,
    m: u32,
    n: u32,
    k: u32,
    transpose_b: bool,
    broadcast_b: bool,
    bias: bool,
    act: Activation,
}

fn check_matmul(r: &KernelRunner, c: MatmulCase, seed: u64) {
    let MatmulCase { batch, m, n, k, transpose_b, broadcast_b, bias, act } = c;
    let (bu, mu, nu, ku) = (batch as usize, m as usize, n as usize, k as usize);
    let mut rng = Rng::new(seed);
    let a = rng.vec(bu * mu * ku, -1.0, 1.0);
    let b_mats = if broadcast_b { 1 } else { bu };
    let b = rng.vec(b_mats * ku * nu, -1.0, 1.0);
    let bias_v = rng.vec(nu, -1.0, 1.0);
    let mut want = vec![0f64; bu * mu * nu];
    for bi in 0..bu {
        let bb = if broadcast_b { 0 } else { bi * ku * nu };
        for i in 0..mu {
            for j in 0..nu {
                let mut s = 0f64;
                for p in 0..ku {
                    let bv = if transpose_b { b[bb + j * ku + p] } else { b[bb + p * nu + j] };
                    s += a[bi * mu * ku + i * ku + p] as f64 * bv as f64;
                }
                if bias {
                    s += bias_v[j] as f64;
                }
                want[bi * mu * nu + i * nu + j] = match act {
                    Activation::None => s,
                    Activation::Relu => s.max(0.0),
                    Activation::Gelu => gelu(s),
                    Activation::GeluTanh => gelu_tanh(s),
                };
            }
        }
    }
    let params = MatmulParams::contiguous(batch, m, n, k, transpose_b, broadcast_b);
    let got = r
        .run_f32(&Launch {
            kernel: MatmulParams::KERNEL,
            constants: &[
                ("TRANSPOSE_B", transpose_b as u32 as f64),
                ("HAS_BIAS", bias as u32 as f64),
                ("ACTIVATION", act as u32 as f64),
            ],
            uniform: bytemuck::bytes_of(&params),
            inputs: &[Some(bytes(&a)), Some(bytes(&b)), bias.then_some(bytes(&bias_v))],
            output_bytes: (want.len() * 4) as u64,
            workgroups: params.workgroups(),
        })
        .unwrap();
    let what = format!("matmul {batch}x{m}x{k} @ {k}x{n} t={transpose_b} bias={bias} {act:?}");
    assert_close(&what, &got, &want, 1e-4, 1e-5 * (k as f64).sqrt());
}

#[test]
fn matmul_small_odd_sizes() {
    let r = gpu!();
    for (m, n, k) in [(3, 5, 37), (1, 1, 1), (1, 7, 3), (65, 1, 17), (2, 70, 16)] {
        check_matmul(
            r,
            MatmulCase {
                batch: 1,
                m,
                n,
                k,
                transpose_b: false,
                broadcast_b: false,
                bias: false,
                act: Activation::None,
            },
            (m * 1000 + n * 10 + k) as u64,
        );
    }
}

#[test]
fn matmul_larger_than_one_tile() {
    let r = gpu!();
    check_matmul(
        r,
        MatmulCase {
            batch: 1,
            m: 64,
            n: 96,
            k: 128,
            transpose_b: false,
            broadcast_b: false,
            bias: false,
            act: Activation::None,
        },
        1,
    );
    check_matmul(
        r,
        MatmulCase {
            batch: 1,
            m: 130,
            n: 67,
            k: 45,
            transpose_b: true,
            broadcast_b: false,
            bias: true,
            act: Activation::None,
        },
        2,
    );
}

#[test]
fn matmul_batched_transposed_fused_epilogues() {
    let r = gpu!();
    for (i, act) in [Activation::None, Activation::Relu, Activation::Gelu, Activation::GeluTanh].into_iter().enumerate()
    {
        check_matmul(
            r,
            MatmulCase { batch: 3, m: 17, n: 33, k: 19, transpose_b: i % 2 == 0, broadcast_b: false, bias: true, act },
            10 + i as u64,
        );
    }
    // Shared weights over the batch (a linear layer on [batch, m, k]).
    check_matmul(
        r,
        MatmulCase {
            batch: 4,
            m: 5,
            n: 24,
            k: 40,
            transpose_b: true,
            broadcast_b: true,
            bias: true,
            act: Activation::Gelu,
        },
        20,
    );
}

// ---------------------------------------------------------------- elementwise

#[test]
fn unary_ops() {
    let r = gpu!();
    let n = 1000usize; // not a multiple of the workgroup size
    for op in UnaryOp::ALL {
        let mut rng = Rng::new(op as u64 + 100);
        let x: Vec<f32> = match op {
            UnaryOp::Log | UnaryOp::Sqrt => rng.vec(n, 0.01, 10.0),
            UnaryOp::Reciprocal => {
                rng.vec(n, 0.1, 4.0).into_iter().enumerate().map(|(i, v)| if i % 2 == 0 { -v } else { v }).collect()
            }
            UnaryOp::Exp => rng.vec(n, -10.0, 10.0),
            _ => {
                let mut v = rng.vec(n, -6.0, 6.0);
                v[0] = 0.0;
                v[1] = -50.0;
                v[2] = 50.0;
                v
            }
        };
        let f = |v: f64| -> f64 {
            match op {
                UnaryOp::Gelu => gelu(v),
                UnaryOp::Erf => erf(v),
                UnaryOp::Tanh => v.tanh(),
                UnaryOp::Relu => v.max(0.0),
                UnaryOp::Sigmoid => 1.0 / (1.0 + (-v).exp()),
                UnaryOp::Exp => v.exp(),
                UnaryOp::Log => v.ln(),
                UnaryOp::Sqrt => v.sqrt(),
                UnaryOp::Neg => -v,
                UnaryOp::Abs => v.abs(),
                UnaryOp::Reciprocal => 1.0 / v,
                UnaryOp::GeluTanh => gelu_tanh(v),
                UnaryOp::Identity => v,
            }
        };
        let want: Vec<f64> = x.iter().map(|&v| f(v as f64)).collect();
        let params = UnaryParams::new(n as u32);
        let got = r
            .run_f32(&Launch {
                kernel: UnaryParams::KERNEL,
                constants: &[("OP", op as u32 as f64)],
                uniform: bytemuck::bytes_of(&params),
                inputs: &[Some(bytes(&x))],
                output_bytes: (n * 4) as u64,
                workgroups: linear_workgroups(n as u32, 256),
            })
            .unwrap();
        // erf-based ops: the A&S approximation is good to ~2e-7 absolute.
        assert_close(&format!("{op:?}"), &got, &want, 1e-4, 1e-6);
    }
}

fn binary_ref(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Max => a.max(b),
        BinaryOp::Min => a.min(b),
        BinaryOp::Pow => a.powf(b),
    }
}

/// Reads element `out_index` of a contiguous tensor of `shape` broadcast to `out`.
fn broadcast_read(v: &[f32], shape: &[u32], out: &[u32], mut out_index: usize) -> f64 {
    let mut idx = 0usize;
    let mut stride = 1usize;
    for d in (0..out.len()).rev() {
        let coord = out_index % out[d] as usize;
        out_index /= out[d] as usize;
        let from_end = out.len() - 1 - d;
        if from_end < shape.len() {
            let sd = shape[shape.len() - 1 - from_end] as usize;
            if sd != 1 {
                idx += coord * stride;
            }
            stride *= sd;
        }
    }
    v[idx] as f64
}

#[test]
fn binary_ops_with_broadcasting() {
    let r = gpu!();
    let cases: [(&[u32], &[u32]); 4] =
        [(&[2, 3, 1, 5], &[3, 4, 1]), (&[7, 33], &[7, 33]), (&[1], &[5, 1, 3]), (&[4, 1], &[1, 9])];
    for (ci, (sa, sb)) in cases.into_iter().enumerate() {
        for op in BinaryOp::ALL {
            let (params, out) = BinaryParams::broadcast(sa, sb).unwrap();
            let numel: usize = out.iter().product::<u32>() as usize;
            let mut rng = Rng::new((ci * 10 + op as usize) as u64);
            let na = sa.iter().product::<u32>() as usize;
            let nb = sb.iter().product::<u32>() as usize;
            let (a, b) = match op {
                // Negative bases with integral exponents, and positive bases with any.
                BinaryOp::Pow => (
                    rng.vec(na, -2.0, 2.0),
                    (0..nb).map(|i| if i % 2 == 0 { (i % 5) as f32 - 2.0 } else { 0.5 }).collect::<Vec<_>>(),
                ),
                BinaryOp::Div => (rng.vec(na, -3.0, 3.0), rng.vec(nb, 0.5, 3.0)),
                _ => (rng.vec(na, -3.0, 3.0), rng.vec(nb, -3.0, 3.0)),
            };
            let want: Vec<f64> = (0..numel)
                .map(|i| binary_ref(op, broadcast_read(&a, sa, &out, i), broadcast_read(&b, sb, &out, i)))
                .collect();
            let got = r
                .run_f32(&Launch {
                    kernel: BinaryParams::KERNEL,
                    constants: &[("OP", op as u32 as f64)],
                    uniform: bytemuck::bytes_of(&params),
                    inputs: &[Some(bytes(&a)), Some(bytes(&b))],
                    output_bytes: (numel * 4) as u64,
                    workgroups: linear_workgroups(numel as u32, 256),
                })
                .unwrap();
            assert_close(&format!("{op:?} {sa:?} {sb:?}"), &got, &want, 1e-5, 1e-6);
        }
    }
}

// ---------------------------------------------------------------- data movement

fn run_copy(r: &KernelRunner, params: &CopyParams, x: &[f32], out_len: usize) -> Vec<f32> {
    r.run_f32(&Launch {
        kernel: CopyParams::KERNEL,
        constants: &[("WG", 64.0)],
        uniform: bytemuck::bytes_of(params),
        inputs: &[Some(bytes(x))],
        output_bytes: (out_len * 4) as u64,
        workgroups: linear_workgroups(params.numel, 64),
    })
    .unwrap()
}

#[test]
fn copy_transpose_slice_and_broadcast() {
    let r = gpu!();
    let x: Vec<f32> = (0..2 * 3 * 5).map(|v| v as f32).collect();
    // transpose [2,3,5] by [2,0,1] → [5,2,3]
    let p = CopyParams::transpose(&[2, 3, 5], &[2, 0, 1]).unwrap();
    let got = run_copy(r, &p, &x, 30);
    let mut want = Vec::new();
    for c in 0..5 {
        for a in 0..2 {
            for b in 0..3 {
                want.push((a * 15 + b * 5 + c) as f64);
            }
        }
    }
    assert_close("transpose", &got, &want, 0.0, 0.0);
    // slice x[1, 1:3, 2:5] → [2, 3]
    let p = CopyParams::strided(&[2, 3], &[5, 1], 15 + 5 + 2, 0).unwrap();
    let got = run_copy(r, &p, &x, 6);
    assert_close("slice", &got, &[22.0, 23.0, 24.0, 27.0, 28.0, 29.0], 0.0, 0.0);
    // expand [3] → [4, 3]
    let p = CopyParams::strided(&[4, 3], &[0, 1], 0, 0).unwrap();
    let got = run_copy(r, &p, &x, 12);
    let want: Vec<f64> = (0..12).map(|i| (i % 3) as f64).collect();
    assert_close("expand", &got, &want, 0.0, 0.0);
}

#[test]
fn gather_embeddings_and_inner_axis() {
    let r = gpu!();
    let (vocab, dim) = (10u32, 7u32);
    let table: Vec<f32> = (0..vocab * dim).map(|v| v as f32 * 0.5).collect();
    let idx: [i32; 6] = [3, 0, 9, -1, 42, -100];
    let params = GatherParams::new(1, vocab, dim, idx.len() as u32);
    let got = r
        .run_f32(&Launch {
            kernel: GatherParams::KERNEL,
            constants: &[],
            uniform: bytemuck::bytes_of(&params),
            inputs: &[Some(bytes(&table)), Some(bytemuck::cast_slice(&idx))],
            output_bytes: params.numel() as u64 * 4,
            workgroups: linear_workgroups(params.numel(), 256),
        })
        .unwrap();
    let rows = [3u32, 0, 9, 9, 9, 0]; // -1 → last; out of range → clamped
    let want: Vec<f64> =
        rows.iter().flat_map(|&row| (0..dim).map(move |d| ((row * dim + d) as f32 * 0.5) as f64)).collect();
    assert_close("gather axis 0", &got, &want, 0.0, 0.0);

    // gather along axis 1 of [2, 4, 3] with indices [2, 2, 0] → [2, 3, 3]
    let x: Vec<f32> = (0..24).map(|v| v as f32).collect();
    let idx: [i32; 3] = [2, 2, 0];
    let params = GatherParams::new(2, 4, 3, 3);
    let got = r
        .run_f32(&Launch {
            kernel: GatherParams::KERNEL,
            constants: &[],
            uniform: bytemuck::bytes_of(&params),
            inputs: &[Some(bytes(&x)), Some(bytemuck::cast_slice(&idx))],
            output_bytes: params.numel() as u64 * 4,
            workgroups: linear_workgroups(params.numel(), 256),
        })
        .unwrap();
    let mut want = Vec::new();
    for o in 0..2 {
        for &i in &idx {
            for n in 0..3 {
                want.push((o * 12 + i * 3 + n) as f64);
            }
        }
    }
    assert_close("gather axis 1", &got, &want, 0.0, 0.0);
}

// ---------------------------------------------------------------- row kernels

#[test]
fn softmax_last_axis() {
    let r = gpu!();
    for (rows, cols, scale) in [(5u32, 1u32, 1.0f32), (3, 300, 1.0), (7, 1000, 30.0), (1, 17, 1000.0)] {
        let x = Rng::new(rows as u64 * cols as u64).vec((rows * cols) as usize, -scale, scale);
        let mut want = Vec::new();
        for row in x.chunks(cols as usize) {
            let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let s: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
            want.extend(row.iter().map(|&v| (v as f64 - m).exp() / s));
        }
        let params = RowParams::new(rows, cols);
        let got = r
            .run_f32(&Launch {
                kernel: RowParams::SOFTMAX,
                constants: &[],
                uniform: bytemuck::bytes_of(&params),
                inputs: &[Some(bytes(&x))],
                output_bytes: want.len() as u64 * 4,
                workgroups: row_workgroups(rows),
            })
            .unwrap();
        assert_close(&format!("softmax {rows}x{cols}"), &got, &want, 1e-4, 1e-7);
    }
}

#[test]
fn layernorm_last_axis() {
    let r = gpu!();
    for (rows, cols, has_scale, has_bias) in
        [(4u32, 384u32, true, true), (3, 1, true, true), (5, 3, false, true), (2, 700, true, false)]
    {
        let mut rng = Rng::new(cols as u64);
        let x = rng.vec((rows * cols) as usize, -2.0, 3.0);
        let scale = rng.vec(cols as usize, 0.5, 1.5);
        let bias = rng.vec(cols as usize, -1.0, 1.0);
        let eps = 1e-5f64;
        let mut want = Vec::new();
        for row in x.chunks(cols as usize) {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / cols as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / cols as f64;
            for (j, &v) in row.iter().enumerate() {
                let mut y = (v as f64 - mean) / (var + eps).sqrt();
                if has_scale {
                    y *= scale[j] as f64;
                }
                if has_bias {
                    y += bias[j] as f64;
                }
                want.push(y);
            }
        }
        let params = LayerNormParams::new(rows, cols, eps as f32);
        let got = r
            .run_f32(&Launch {
                kernel: LayerNormParams::KERNEL,
                constants: &[("HAS_SCALE", has_scale as u32 as f64), ("HAS_BIAS", has_bias as u32 as f64)],
                uniform: bytemuck::bytes_of(&params),
                inputs: &[Some(bytes(&x)), has_scale.then_some(bytes(&scale)), has_bias.then_some(bytes(&bias))],
                output_bytes: want.len() as u64 * 4,
                workgroups: row_workgroups(rows),
            })
            .unwrap();
        assert_close(&format!("layernorm {rows}x{cols}"), &got, &want, 1e-4, 1e-4);
    }
}

#[test]
fn reductions_last_axis() {
    let r = gpu!();
    // 65_600 rows spill the dispatch into y (more than 65_535 workgroups).
    for (rows, cols, wg) in [(6u32, 513u32, 256u32), (4, 1, 256), (65_600, 3, 32)] {
        let x = Rng::new(rows as u64 + cols as u64).vec((rows * cols) as usize, -4.0, 4.0);
        for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
            let want: Vec<f64> = x
                .chunks(cols as usize)
                .map(|row| {
                    let it = row.iter().map(|&v| v as f64);
                    match op {
                        ReduceOp::Sum => it.sum(),
                        ReduceOp::Mean => it.sum::<f64>() / cols as f64,
                        ReduceOp::Max => it.fold(f64::NEG_INFINITY, f64::max),
                        ReduceOp::Min => it.fold(f64::INFINITY, f64::min),
                    }
                })
                .collect();
            let params = RowParams::new(rows, cols);
            let got = r
                .run_f32(&Launch {
                    kernel: RowParams::REDUCE,
                    constants: &[("OP", op as u32 as f64), ("WG", wg as f64)],
                    uniform: bytemuck::bytes_of(&params),
                    inputs: &[Some(bytes(&x))],
                    output_bytes: rows as u64 * 4,
                    workgroups: row_workgroups(rows),
                })
                .unwrap();
            assert_close(&format!("reduce {op:?} {rows}x{cols}"), &got, &want, 1e-5, 1e-5);
        }
    }
}

// ---------------------------------------------------------------- attention

/// Reference attention reading every operand through the params' strides; returns the
/// output buffer (`out_len` elements, untouched elements 0).
fn attention_ref(
    p: &AttentionParams,
    [q, k, v, mask]: [&[f32]; 4],
    has_mask: bool,
    causal: bool,
    out_len: usize,
) -> Vec<f64> {
    let at = |off: u32, st: [u32; 4], b: u32, h: u32, r: u32| (off + b * st[0] + h * st[1] + r * st[2]) as usize;
    let mut out = vec![0f64; out_len];
    for b in 0..p.batch {
        for h in 0..p.heads {
            let g = h / p.kv_group;
            for s in 0..p.q_len {
                let qi = at(p.q_offset, p.q_strides, b, h, s);
                let mut scores: Vec<f64> = (0..p.kv_len)
                    .map(|t| {
                        if causal && t > s + p.kv_len - p.q_len {
                            return f64::NEG_INFINITY;
                        }
                        let ki = at(p.k_offset, p.k_strides, b, g, t);
                        let dot: f64 = (0..p.head_dim as usize).map(|d| q[qi + d] as f64 * k[ki + d] as f64).sum();
                        let m =
                            if has_mask { mask[at(p.m_offset, p.m_strides, b, h, s) + t as usize] as f64 } else { 0.0 };
                        dot * p.scale as f64 + m
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                if max == f64::NEG_INFINITY {
                    scores.iter_mut().for_each(|x| *x = 0.0);
                } else {
                    scores.iter_mut().for_each(|x| *x = (*x - max).exp());
                    let sum: f64 = scores.iter().sum();
                    scores.iter_mut().for_each(|x| *x /= sum);
                }
                let oi = at(p.o_offset, p.o_strides, b, h, s);
                for d in 0..p.head_dim as usize {
                    out[oi + d] = (0..p.kv_len)
                        .map(|t| scores[t as usize] * v[at(p.v_offset, p.v_strides, b, g, t) + d] as f64)
                        .sum();
                }
            }
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn check_attention(
    r: &KernelRunner,
    what: &str,
    p: &AttentionParams,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
    causal: bool,
    out_len: usize,
) {
    assert!(p.fits());
    let want = attention_ref(p, [q, k, v, mask.unwrap_or(&[])], mask.is_some(), causal, out_len);
    let got = r
        .run_f32(&Launch {
            kernel: AttentionParams::KERNEL,
            constants: &[("HAS_MASK", mask.is_some() as u32 as f64), ("CAUSAL", causal as u32 as f64)],
            uniform: bytemuck::bytes_of(p),
            inputs: &[Some(bytes(q)), Some(bytes(k)), Some(bytes(v)), mask.map(bytes)],
            output_bytes: out_len as u64 * 4,
            workgroups: p.workgroups(),
        })
        .unwrap();
    assert_close(what, &got, &want, 1e-4, 1e-5);
}

#[test]
fn attention_contiguous_and_causal() {
    let r = gpu!();
    for (b, h, s, t, d, causal) in [
        (2u32, 3u32, 5u32, 5u32, 16u32, false),
        (1, 2, 6, 6, 8, true),
        (1, 2, 2, 9, 8, true),
        (1, 1, 3, 300, 64, false),
        (1, 1, 1, 1, 1, false),
    ] {
        let p = AttentionParams::contiguous(b, h, s, t, d);
        let mut rng = Rng::new((b * 100 + s * 10 + t) as u64);
        let q = rng.vec((b * h * s * d) as usize, -1.0, 1.0);
        let k = rng.vec((b * h * t * d) as usize, -1.0, 1.0);
        let v = rng.vec((b * h * t * d) as usize, -1.0, 1.0);
        let what = format!("attention b{b} h{h} s{s} t{t} d{d} causal={causal}");
        check_attention(r, &what, &p, &q, &k, &v, None, causal, (b * h * s * d) as usize);
    }
}

#[test]
fn attention_fused_qkv_with_padding_mask() {
    let r = gpu!();
    let (b, h, s, d) = (2u32, 4u32, 11u32, 24u32);
    let p = AttentionParams::fused_qkv(b, h, s, d).with_key_padding_mask();
    let mut rng = Rng::new(7);
    let qkv = rng.vec((b * s * 3 * h * d) as usize, -1.0, 1.0);
    // batch 0: one key pushed far down, one biased; batch 1: a bias, last three keys padded out.
    let mut mask = vec![0f32; (b * s) as usize];
    mask[4] = -10_000.0;
    mask[2] = -1.5;
    mask[(s + 1) as usize] = 0.7;
    for t in 8..11 {
        mask[(s + t) as usize] = f32::NEG_INFINITY;
    }
    check_attention(r, "attention fused qkv", &p, &qkv, &qkv, &qkv, Some(&mask), false, (b * s * h * d) as usize);
    // Every key masked: zeros, not NaN.
    let all = vec![f32::NEG_INFINITY; (b * s) as usize];
    check_attention(r, "attention all masked", &p, &qkv, &qkv, &qkv, Some(&all), false, (b * s * h * d) as usize);
}

#[test]
fn attention_grouped_query() {
    let r = gpu!();
    let (b, h, kvh, s, d) = (1u32, 4u32, 2u32, 5u32, 8u32);
    let mut p = AttentionParams::contiguous(b, h, s, s, d);
    p.kv_group = h / kvh;
    p.k_strides = [kvh * s * d, s * d, d, 0];
    p.v_strides = p.k_strides;
    let mut rng = Rng::new(11);
    let q = rng.vec((b * h * s * d) as usize, -1.0, 1.0);
    let k = rng.vec((b * kvh * s * d) as usize, -1.0, 1.0);
    let v = rng.vec((b * kvh * s * d) as usize, -1.0, 1.0);
    check_attention(r, "attention gqa", &p, &q, &k, &v, None, true, (b * h * s * d) as usize);
}

// ---------------------------------------------------------------- executor-style use

/// What the plan executor does: tensors bound as ranges of larger buffers, pipelines
/// and bind groups made once, several dispatches in one encoder, one readback per run.
/// A dispatch may not write a buffer it also reads (WebGPU usage scopes are per buffer,
/// not per range), so the output lives in a different buffer than the inputs.
#[test]
fn buffer_ranges_and_one_encoder() {
    let r = gpu!();
    let ctx = r.context();
    let align = ctx.limits().min_storage_buffer_offset_alignment as u64;
    let n = 300usize;
    let bytes_n = (n * 4) as u64;
    let slot = bytes_n.next_multiple_of(align);
    let x: Vec<f32> = (0..n).map(|i| i as f32 - 150.0).collect();
    let y: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 3.0).collect();
    // inputs = [x | y]; tmp = relu(x); outputs = [unused | relu(x) * y]
    let mut init = vec![0u8; (2 * slot) as usize];
    init[..bytes_n as usize].copy_from_slice(bytes(&x));
    init[slot as usize..(slot + bytes_n) as usize].copy_from_slice(bytes(&y));
    let inputs = r.storage_buffer("inputs", &init).unwrap();
    let tmp = r.empty_storage_buffer("tmp", bytes_n).unwrap();
    let outputs = r.empty_storage_buffer("outputs", 2 * slot).unwrap();
    fn slot_range(buffer: &wgpu::Buffer, offset: u64, size: u64) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer, offset, size: wgpu::BufferSize::new(size) })
    }
    let range = |buffer, i: u64| slot_range(buffer, i * slot, bytes_n);
    let (inputs, outputs) = (&inputs, &outputs);

    let relu = r.pipeline("unary", &[("OP", UnaryOp::Relu as u32 as f64)]).unwrap();
    let mul = r.pipeline("binary", &[("OP", BinaryOp::Mul as u32 as f64)]).unwrap();
    let u_relu = r.uniform_buffer("relu", bytemuck::bytes_of(&UnaryParams::new(n as u32))).unwrap();
    let (bp, _) = BinaryParams::broadcast(&[n as u32], &[n as u32]).unwrap();
    let u_mul = r.uniform_buffer("mul", bytemuck::bytes_of(&bp)).unwrap();
    let bg_relu = r
        .bind_group_resources(&relu, &[u_relu.as_entire_binding(), range(inputs, 0), tmp.as_entire_binding()])
        .unwrap();
    let bg_mul = r
        .bind_group_resources(
            &mul,
            &[u_mul.as_entire_binding(), tmp.as_entire_binding(), range(inputs, 1), range(outputs, 1)],
        )
        .unwrap();
    let want: Vec<f64> = x.iter().zip(&y).map(|(&a, &b)| (a.max(0.0) * b) as f64).collect();
    for _run in 0..2 {
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        let wg = linear_workgroups(n as u32, 256);
        r.encode(&mut encoder, &relu, &bg_relu, wg).unwrap();
        r.encode(&mut encoder, &mul, &bg_mul, wg).unwrap();
        r.submit(encoder).unwrap();
        let all = r.read_buffer(outputs, 2 * slot).unwrap();
        let z: Vec<f32> = bytemuck::pod_collect_to_vec(&all[slot as usize..(slot + bytes_n) as usize]);
        assert_close("relu(x) * y from ranges", &z, &want, 0.0, 0.0);
    }

    // Reading and writing one buffer in one dispatch is a clear error, not a panic.
    let bg_bad = r
        .bind_group_resources(
            &mul,
            &[u_mul.as_entire_binding(), tmp.as_entire_binding(), range(inputs, 1), range(inputs, 0)],
        )
        .unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    r.encode(&mut encoder, &mul, &bg_bad, linear_workgroups(n as u32, 256)).unwrap();
    let err = r.submit(encoder).unwrap_err();
    eprintln!("expected error: {err}");
    assert!(matches!(err, GpuError::Validation { .. }), "{err}");
}
