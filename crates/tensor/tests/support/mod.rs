//! Helpers for the CPU backend tests: a deterministic pseudo-random source, a
//! naive f64 reference implementation of every op (plain index loops, written
//! for obviousness rather than speed), and comparison helpers.
#![allow(dead_code)]

use half::f16;
use ipfs_accelerate_tensor::graph::{AttentionOptions, Graph};
use ipfs_accelerate_tensor::{CpuBackend, CpuExecutable, DType, GraphBuilder, Operand, Result, Tensor, Weights};

// ---------------------------------------------------------------------------
// Pseudo-random numbers
// ---------------------------------------------------------------------------

/// A 64-bit linear congruential generator (Knuth's MMIX constants); the high
/// 32 bits of the state are the output.
pub struct Lcg(u64);

impl Lcg {
    /// A generator; different seeds give unrelated streams.
    pub fn new(seed: u64) -> Self {
        let mut g = Lcg(seed ^ 0x853c_49e6_748f_ea9b);
        g.next_u32();
        g
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 32) as u32
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.next_u32() as f64 / 4_294_967_296.0
    }

    /// Uniform in `[lo, hi)`, as f32.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        (lo as f64 + (hi as f64 - lo as f64) * self.unit()) as f32
    }

    /// `n` values uniform in `[lo, hi)`.
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }

    /// Uniform integer in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u32() as u64 * n as u64) >> 32) as usize
    }

    /// An f32 tensor of `shape` with values uniform in `[lo, hi)`.
    pub fn tensor(&mut self, shape: &[usize], lo: f32, hi: f32) -> Tensor {
        Tensor::from_f32(shape.to_vec(), &self.vec(numel(shape), lo, hi)).unwrap()
    }
}

// ---------------------------------------------------------------------------
// Index arithmetic
// ---------------------------------------------------------------------------

/// Number of elements of `shape` (1 for a scalar).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// The multi-index of row-major position `flat` in `shape`.
pub fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = flat % shape[d];
        flat /= shape[d];
    }
    idx
}

/// The row-major position of `idx` in `shape`.
pub fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    assert_eq!(idx.len(), shape.len());
    idx.iter().zip(shape).fold(0, |acc, (&i, &d)| {
        assert!(i < d, "index {idx:?} outside {shape:?}");
        acc * d + i
    })
}

/// Numpy broadcast of two shapes (panics when they do not broadcast).
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Vec<usize> {
    let rank = a.len().max(b.len());
    (0..rank)
        .map(|i| {
            let da = if i + a.len() >= rank { a[i + a.len() - rank] } else { 1 };
            let db = if i + b.len() >= rank { b[i + b.len() - rank] } else { 1 };
            match (da, db) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => panic!("{a:?} and {b:?} do not broadcast"),
            }
        })
        .collect()
}

/// The index into a tensor of `src` shape that output index `idx` reads under
/// numpy broadcasting (dimensions aligned on the right, size-1 dims pinned to 0).
pub fn broadcast_index(idx: &[usize], src: &[usize]) -> Vec<usize> {
    let off = idx.len() - src.len();
    src.iter().enumerate().map(|(i, &d)| if d == 1 { 0 } else { idx[off + i] }).collect()
}

// ---------------------------------------------------------------------------
// The reference array
// ---------------------------------------------------------------------------

/// A dense row-major f64 array: the reference computes everything in these.
#[derive(Clone, Debug, PartialEq)]
pub struct Nd {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Nd {
    /// An array over `data`.
    pub fn new(shape: &[usize], data: Vec<f64>) -> Nd {
        assert_eq!(numel(shape), data.len(), "data does not fit {shape:?}");
        Nd { shape: shape.to_vec(), data }
    }

    /// An array whose element at each index is `f(index)`.
    pub fn from_fn(shape: &[usize], mut f: impl FnMut(&[usize]) -> f64) -> Nd {
        let data = (0..numel(shape)).map(|i| f(&unravel(i, shape))).collect();
        Nd::new(shape, data)
    }

    /// The exact values of a tensor of any plain dtype.
    pub fn of(t: &Tensor) -> Nd {
        let b = t.as_bytes();
        let data: Vec<f64> = match t.dtype() {
            DType::Float32 => t.as_f32().unwrap().iter().map(|&v| v as f64).collect(),
            DType::Float16 => b.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f64()).collect(),
            DType::Int32 => t.as_i32().unwrap().iter().map(|&v| v as f64).collect(),
            DType::Int64 => t.as_i64().unwrap().iter().map(|&v| v as f64).collect(),
            DType::Uint8 => b.iter().map(|&v| v as f64).collect(),
            other => panic!("the reference does not read {other}"),
        };
        Nd::new(t.shape().dims(), data)
    }

    /// The element at `idx`.
    pub fn at(&self, idx: &[usize]) -> f64 {
        self.data[ravel(idx, &self.shape)]
    }

    /// As an f32 tensor.
    pub fn to_f32_tensor(&self) -> Tensor {
        let v: Vec<f32> = self.data.iter().map(|&x| x as f32).collect();
        Tensor::from_f32(self.shape.clone(), &v).unwrap()
    }
}

/// Element-wise `f(x)`.
pub fn unary(x: &Nd, f: impl Fn(f64) -> f64) -> Nd {
    Nd::new(&x.shape, x.data.iter().map(|&v| f(v)).collect())
}

/// Element-wise `f(a, b)` with numpy broadcasting.
pub fn binary(a: &Nd, b: &Nd, f: impl Fn(f64, f64) -> f64) -> Nd {
    let shape = broadcast_shape(&a.shape, &b.shape);
    Nd::from_fn(&shape, |idx| f(a.at(&broadcast_index(idx, &a.shape)), b.at(&broadcast_index(idx, &b.shape))))
}

/// `x` broadcast to `shape`.
pub fn expand(x: &Nd, shape: &[usize]) -> Nd {
    Nd::from_fn(shape, |idx| x.at(&broadcast_index(idx, &x.shape)))
}

/// `where(c, t, f)` with broadcasting.
pub fn where_(c: &Nd, t: &Nd, f: &Nd) -> Nd {
    let shape = broadcast_shape(&c.shape, &broadcast_shape(&t.shape, &f.shape));
    Nd::from_fn(&shape, |idx| {
        if c.at(&broadcast_index(idx, &c.shape)) != 0.0 {
            t.at(&broadcast_index(idx, &t.shape))
        } else {
            f.at(&broadcast_index(idx, &f.shape))
        }
    })
}

/// Batched matrix product with broadcast batch dimensions (both operands rank >= 2).
pub fn matmul(a: &Nd, b: &Nd) -> Nd {
    let (ar, br) = (a.shape.len(), b.shape.len());
    let (m, k, n) = (a.shape[ar - 2], a.shape[ar - 1], b.shape[br - 1]);
    assert_eq!(k, b.shape[br - 2]);
    let batch = broadcast_shape(&a.shape[..ar - 2], &b.shape[..br - 2]);
    let mut shape = batch.clone();
    shape.extend([m, n]);
    Nd::from_fn(&shape, |idx| {
        let bi = &idx[..batch.len()];
        let (i, j) = (idx[batch.len()], idx[batch.len() + 1]);
        let mut ai = broadcast_index(bi, &a.shape[..ar - 2]);
        let mut bj = broadcast_index(bi, &b.shape[..br - 2]);
        ai.extend([i, 0]);
        bj.extend([0, j]);
        (0..k)
            .map(|p| {
                ai[ar - 1] = p;
                bj[br - 2] = p;
                a.at(&ai) * b.at(&bj)
            })
            .sum()
    })
}

/// 2-D transpose.
pub fn t2(x: &Nd) -> Nd {
    transpose(x, &[1, 0])
}

/// WebNN gemm: `alpha * op(A) op(B) + beta * C`.
pub fn gemm(a: &Nd, b: &Nd, c: Option<&Nd>, alpha: f64, beta: f64, a_t: bool, b_t: bool) -> Nd {
    let a = if a_t { t2(a) } else { a.clone() };
    let b = if b_t { t2(b) } else { b.clone() };
    let p = unary(&matmul(&a, &b), |v| alpha * v);
    match c {
        Some(c) => binary(&p, c, |x, y| x + beta * y),
        None => p,
    }
}

/// Output dim `i` is input dim `perm[i]`.
pub fn transpose(x: &Nd, perm: &[usize]) -> Nd {
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    Nd::from_fn(&shape, |idx| {
        let mut src = vec![0; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            src[p] = idx[i];
        }
        x.at(&src)
    })
}

/// The window `starts .. starts + sizes`.
pub fn slice(x: &Nd, starts: &[usize], sizes: &[usize]) -> Nd {
    Nd::from_fn(sizes, |idx| {
        let src: Vec<usize> = idx.iter().zip(starts).map(|(i, s)| i + s).collect();
        x.at(&src)
    })
}

/// Parts joined along `axis`.
pub fn concat(parts: &[&Nd], axis: usize) -> Nd {
    let mut shape = parts[0].shape.clone();
    shape[axis] = parts.iter().map(|p| p.shape[axis]).sum();
    Nd::from_fn(&shape, |idx| {
        let mut pos = idx[axis];
        for p in parts {
            if pos < p.shape[axis] {
                let mut src = idx.to_vec();
                src[axis] = pos;
                return p.at(&src);
            }
            pos -= p.shape[axis];
        }
        unreachable!()
    })
}

/// WebNN gather: `out[pre, j.., post] = table[pre, indices[j..], post]`.
pub fn gather(table: &Nd, indices: &[i64], idx_shape: &[usize], axis: usize) -> Nd {
    let mut shape = table.shape[..axis].to_vec();
    shape.extend_from_slice(idx_shape);
    shape.extend_from_slice(&table.shape[axis + 1..]);
    Nd::from_fn(&shape, |idx| {
        let j = &idx[axis..axis + idx_shape.len()];
        let row = indices[ravel(j, idx_shape)];
        assert!(row >= 0 && (row as usize) < table.shape[axis]);
        let mut src = idx[..axis].to_vec();
        src.push(row as usize);
        src.extend_from_slice(&idx[axis + idx_shape.len()..]);
        table.at(&src)
    })
}

/// Softmax along `axis`, computed directly from the definition (with the
/// maximum subtracted so large inputs do not overflow).
pub fn softmax(x: &Nd, axis: usize) -> Nd {
    Nd::from_fn(&x.shape, |idx| {
        let mut j = idx.to_vec();
        let vals: Vec<f64> = (0..x.shape[axis])
            .map(|p| {
                j[axis] = p;
                x.at(&j)
            })
            .collect();
        let max = vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let denom: f64 = vals.iter().map(|v| (v - max).exp()).sum();
        (x.at(idx) - max).exp() / denom
    })
}

/// The reductions.
#[derive(Clone, Copy, Debug)]
pub enum Red {
    Sum,
    Mean,
    Max,
}

/// Reduction over `axes`; reduced dims kept as 1 or dropped.
pub fn reduce(x: &Nd, axes: &[usize], keep: bool, kind: Red) -> Nd {
    let kept: Vec<usize> = x.shape.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect();
    let mut acc = vec![Vec::new(); numel(&kept)];
    for flat in 0..x.data.len() {
        let mut idx = unravel(flat, &x.shape);
        for &a in axes {
            idx[a] = 0;
        }
        acc[ravel(&idx, &kept)].push(x.data[flat]);
    }
    let data = acc
        .iter()
        .map(|v| match kind {
            Red::Sum => v.iter().sum(),
            Red::Mean => v.iter().sum::<f64>() / v.len() as f64,
            Red::Max => v.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        })
        .collect();
    let shape: Vec<usize> = if keep {
        kept
    } else {
        x.shape.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect()
    };
    Nd::new(&shape, data)
}

/// WebNN layerNormalization: mean and (biased) variance over `axes`, then
/// `(x - mean) / sqrt(var + eps) * scale + bias`; `scale` and `bias` have the
/// shape of the normalized axes in the order of `axes`.
pub fn layer_norm(x: &Nd, axes: &[usize], scale: Option<&Nd>, bias: Option<&Nd>, eps: f64) -> Nd {
    let mean = reduce(x, axes, true, Red::Mean);
    let centered = binary(x, &mean, |a, b| a - b);
    let var = reduce(&unary(&centered, |v| v * v), axes, true, Red::Mean);
    Nd::from_fn(&x.shape, |idx| {
        let param_idx: Vec<usize> = axes.iter().map(|&a| idx[a]).collect();
        let mut kept = idx.to_vec();
        for &a in axes {
            kept[a] = 0;
        }
        let mut v = centered.at(idx) / (var.at(&kept) + eps).sqrt();
        if let Some(s) = scale {
            v *= s.at(&param_idx);
        }
        if let Some(b) = bias {
            v += b.at(&param_idx);
        }
        v
    })
}

/// Gauss error function by its Maclaurin series (accurate to ~1e-9 for |x| <= 5).
pub fn erf(x: f64) -> f64 {
    if x.abs() > 5.0 {
        return x.signum();
    }
    let mut sum = 0.0;
    let mut term = x;
    for n in 0..300 {
        sum += term / (2 * n + 1) as f64;
        term *= -x * x / (n + 1) as f64;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

/// Exact GELU.
pub fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

/// Packed-batch attention straight from its definition: for each segment,
/// head and query, softmax over the visible keys of `scale * q·k`, then the
/// weighted sum of values. `q` is `[Tq, H*D]`, `k` and `v` `[Tkv, Hkv*D]`.
pub fn attention(q: &Nd, k: &Nd, v: &Nd, o: &AttentionOptions) -> Nd {
    let (h, hkv, d) = (o.num_heads, o.num_kv_heads, o.head_dim);
    let group = h / hkv;
    let mut out = Nd::new(&q.shape, vec![0.0; q.data.len()]);
    let (mut q0, mut k0) = (0, 0);
    for seg in &o.segments {
        for head in 0..h {
            let kvh = head / group;
            for i in 0..seg.q_len {
                let visible = if o.causal { i + seg.kv_len - seg.q_len + 1 } else { seg.kv_len };
                let scores: Vec<f64> = (0..visible)
                    .map(|j| {
                        (0..d).map(|c| q.at(&[q0 + i, head * d + c]) * k.at(&[k0 + j, kvh * d + c])).sum::<f64>()
                            * o.scale as f64
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                for c in 0..d {
                    let val: f64 = (0..visible).map(|j| weights[j] / total * v.at(&[k0 + j, kvh * d + c])).sum();
                    let pos = ravel(&[q0 + i, head * d + c], &out.shape);
                    out.data[pos] = val;
                }
            }
        }
        q0 += seg.q_len;
        k0 += seg.kv_len;
    }
    out
}

// ---------------------------------------------------------------------------
// Comparing
// ---------------------------------------------------------------------------

/// Asserts `got` has `want`'s shape and every value is within
/// `atol + rtol * |want|` (NaN only matches NaN, infinities must be equal).
pub fn assert_close(what: &str, got: &Tensor, want: &Nd, rtol: f64, atol: f64) {
    assert_eq!(got.shape().dims(), want.shape.as_slice(), "{what}: shape");
    let got = Nd::of(got);
    for (i, (&g, &w)) in got.data.iter().zip(&want.data).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= atol + rtol * w.abs()
        };
        assert!(
            ok,
            "{what}: at {:?} (flat {i}) got {g}, want {w} (diff {:e}, allowed {:e})",
            unravel(i, &want.shape),
            (g - w).abs(),
            atol + rtol * w.abs()
        );
    }
}

/// Asserts exact equality of dtype, shape and values.
pub fn assert_exact(what: &str, got: &Tensor, dtype: DType, want: &Nd) {
    assert_eq!(got.dtype(), dtype, "{what}: dtype");
    assert_eq!(got.shape().dims(), want.shape.as_slice(), "{what}: shape");
    let got = Nd::of(got);
    for (i, (&g, &w)) in got.data.iter().zip(&want.data).enumerate() {
        assert!(g == w, "{what}: at {:?} got {g}, want {w}", unravel(i, &want.shape));
    }
}

/// Asserts two tensors are bit-identical.
pub fn assert_same_bits(what: &str, a: &Tensor, b: &Tensor) {
    assert_eq!(a.dtype(), b.dtype(), "{what}: dtype");
    assert_eq!(a.shape(), b.shape(), "{what}: shape");
    assert!(a.as_bytes() == b.as_bytes(), "{what}: values differ");
}

// ---------------------------------------------------------------------------
// Running graphs
// ---------------------------------------------------------------------------

/// Compiles on a fresh backend (panicking with the error's message on failure).
pub fn compile(graph: &Graph, weights: &Weights) -> CpuExecutable {
    CpuBackend::new().compile(graph, weights).unwrap_or_else(|e| panic!("compile failed: {e}"))
}

/// Builds a graph whose inputs are `inputs` (named as given, with their
/// tensors' dtype and shape) and whose one output `y` is what `build` returns,
/// then compiles and runs it. Returns the output and the instruction count.
pub fn run_with(
    inputs: &[(&str, &Tensor)],
    build: impl FnOnce(&mut GraphBuilder, &[Operand]) -> Result<Operand>,
) -> (Tensor, usize) {
    let mut b = GraphBuilder::new();
    let ops: Vec<Operand> =
        inputs.iter().map(|(name, t)| b.input(name, t.dtype(), t.shape().clone()).unwrap()).collect();
    let y = build(&mut b, &ops).unwrap_or_else(|e| panic!("building failed: {e}"));
    let (graph, weights) = b.build(&[("y", y)]).unwrap();
    let exe = compile(&graph, &weights);
    let mut out = exe.run(inputs).unwrap_or_else(|e| panic!("run failed: {e}"));
    assert_eq!(out.len(), 1);
    (out.remove(0), exe.instruction_count())
}

/// [`run_with`], output only.
pub fn run1(
    inputs: &[(&str, &Tensor)],
    build: impl FnOnce(&mut GraphBuilder, &[Operand]) -> Result<Operand>,
) -> Tensor {
    run_with(inputs, build).0
}
