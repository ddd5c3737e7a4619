//! Uniform structs for each kernel (byte-for-byte the WGSL `Params` structs), the op
//! codes behind each kernel's `override` constants, and dispatch-size helpers.
//!
//! Every struct is `#[repr(C)]` + [`bytemuck::Pod`]: write it with
//! `bytemuck::bytes_of(&params)`. All fields are `u32`/`f32` (WGSL uniform layout rules
//! then agree with Rust's), padded to a multiple of 16 bytes.

use bytemuck::{Pod, Zeroable};

/// Largest tensor rank the strided kernels (`binary`, `copy`) take.
pub const MAX_RANK: usize = 8;

/// Most workgroups one dispatch dimension may have (WebGPU's default limit, which every
/// adapter meets). Linear kernels spill over into y beyond it.
pub const MAX_WORKGROUPS_PER_DIM: u32 = 65_535;

/// Default workgroup size of the linear and row kernels (their `WG` override).
pub const DEFAULT_WG: u32 = 256;

/// Workgroups for a linear kernel over `n` elements with `wg` invocations per workgroup:
/// `[x, y, 1]` with `x * y * wg >= n`, matching `index = gid.x + gid.y * num_workgroups.x * WG`.
pub fn linear_workgroups(n: u32, wg: u32) -> [u32; 3] {
    spill(n.div_ceil(wg.max(1)))
}

/// Workgroups for a row kernel (`softmax`, `layernorm`, `reduce`): one per row, matching
/// `row = wid.x + wid.y * num_workgroups.x`.
pub fn row_workgroups(rows: u32) -> [u32; 3] {
    spill(rows)
}

fn spill(groups: u32) -> [u32; 3] {
    if groups <= MAX_WORKGROUPS_PER_DIM {
        [groups.max(1), 1, 1]
    } else {
        [MAX_WORKGROUPS_PER_DIM, groups.div_ceil(MAX_WORKGROUPS_PER_DIM), 1]
    }
}

/// Row-major strides of a contiguous tensor of `shape`.
pub fn contiguous_strides(shape: &[u32]) -> Vec<u32> {
    let mut strides = vec![1u32; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    strides
}

/// Numpy/WebNN broadcast of two shapes; `None` when they are incompatible.
pub fn broadcast_shape(a: &[u32], b: &[u32]) -> Option<Vec<u32>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for (i, o) in out.iter_mut().enumerate() {
        let da = dim_from_end(a, rank - 1 - i);
        let db = dim_from_end(b, rank - 1 - i);
        *o = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

fn dim_from_end(shape: &[u32], from_end: usize) -> u32 {
    if from_end < shape.len() {
        shape[shape.len() - 1 - from_end]
    } else {
        1
    }
}

/// Strides that read a contiguous tensor of shape `input` as if it had shape `out`
/// (which it broadcasts to): 0 for broadcast dimensions.
pub fn broadcast_strides(input: &[u32], out: &[u32]) -> Vec<u32> {
    let own = contiguous_strides(input);
    (0..out.len())
        .map(|i| {
            let from_end = out.len() - 1 - i;
            if from_end < input.len() {
                let d = input.len() - 1 - from_end;
                if input[d] == 1 {
                    0
                } else {
                    own[d]
                }
            } else {
                0
            }
        })
        .collect()
}

fn pad8(v: &[u32]) -> [u32; MAX_RANK] {
    let mut out = [0u32; MAX_RANK];
    out[..v.len()].copy_from_slice(v);
    out
}

/// `matmul` kernel uniform: `C[b] = act(A[b] · B[b] + bias)`. See `kernels/matmul.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct MatmulParams {
    /// Rows of A and C.
    pub m: u32,
    /// Columns of B and C.
    pub n: u32,
    /// Inner dimension.
    pub k: u32,
    /// Number of matrices.
    pub batch: u32,
    /// Row stride of A (elements).
    pub lda: u32,
    /// Row stride of B as stored (k-major: ≥ n; transposed: ≥ k).
    pub ldb: u32,
    /// Row stride of C.
    pub ldc: u32,
    /// First element of C written (a column block of a split weight).
    pub c_offset: u32,
    /// Elements between consecutive A matrices (0 broadcasts A).
    pub stride_a: u32,
    /// Elements between consecutive B matrices (0 broadcasts B, e.g. weights).
    pub stride_b: u32,
    /// Elements between consecutive C matrices.
    pub stride_c: u32,
    /// First bias element read.
    pub bias_offset: u32,
}

impl MatmulParams {
    /// Kernel id.
    pub const KERNEL: &'static str = "matmul";
    /// Output tile edge (rows and columns per workgroup).
    pub const TILE: u32 = 64;

    /// Dense contiguous operands: A `[batch, m, k]`, B `[batch, k, n]` (or `[batch, n, k]`
    /// when `transpose_b`), C `[batch, m, n]`. `broadcast_b` shares one B over the batch.
    pub fn contiguous(batch: u32, m: u32, n: u32, k: u32, transpose_b: bool, broadcast_b: bool) -> Self {
        MatmulParams {
            m,
            n,
            k,
            batch,
            lda: k,
            ldb: if transpose_b { k } else { n },
            ldc: n,
            c_offset: 0,
            stride_a: m * k,
            stride_b: if broadcast_b { 0 } else { k * n },
            stride_c: m * n,
            bias_offset: 0,
        }
    }

    /// Workgroups to dispatch.
    pub fn workgroups(&self) -> [u32; 3] {
        [self.n.div_ceil(Self::TILE).max(1), self.m.div_ceil(Self::TILE).max(1), self.batch.max(1)]
    }
}

/// Activation fused into the `matmul` epilogue (its `ACTIVATION` override).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Activation {
    /// Identity.
    None = 0,
    /// `max(x, 0)`.
    Relu = 1,
    /// `0.5 x (1 + erf(x / √2))`.
    Gelu = 2,
    /// `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`.
    GeluTanh = 3,
}

/// `unary` kernel uniform. See `kernels/unary.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct UnaryParams {
    /// Elements.
    pub numel: u32,
    /// Padding.
    pub _pad: [u32; 3],
}

impl UnaryParams {
    /// Kernel id.
    pub const KERNEL: &'static str = "unary";

    /// For `numel` elements.
    pub fn new(numel: u32) -> Self {
        UnaryParams { numel, _pad: [0; 3] }
    }
}

/// The `unary` kernel's `OP` override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum UnaryOp {
    /// gelu with erf.
    Gelu = 0,
    /// erf.
    Erf = 1,
    /// tanh.
    Tanh = 2,
    /// relu.
    Relu = 3,
    /// logistic sigmoid.
    Sigmoid = 4,
    /// e^x.
    Exp = 5,
    /// natural log.
    Log = 6,
    /// square root.
    Sqrt = 7,
    /// -x.
    Neg = 8,
    /// |x|.
    Abs = 9,
    /// 1/x.
    Reciprocal = 10,
    /// gelu, tanh approximation.
    GeluTanh = 11,
    /// x.
    Identity = 12,
}

impl UnaryOp {
    /// Every op.
    pub const ALL: [UnaryOp; 13] = [
        UnaryOp::Gelu,
        UnaryOp::Erf,
        UnaryOp::Tanh,
        UnaryOp::Relu,
        UnaryOp::Sigmoid,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Reciprocal,
        UnaryOp::GeluTanh,
        UnaryOp::Identity,
    ];
}

/// `binary` kernel uniform (broadcasting via strides). See `kernels/binary.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct BinaryParams {
    /// Rank of the output (≤ [`MAX_RANK`]).
    pub rank: u32,
    /// Output elements.
    pub numel: u32,
    /// First element of a.
    pub a_offset: u32,
    /// First element of b.
    pub b_offset: u32,
    /// Output shape (first `rank` entries).
    pub shape: [u32; MAX_RANK],
    /// a's strides over the output shape (0 = broadcast).
    pub a_strides: [u32; MAX_RANK],
    /// b's strides over the output shape (0 = broadcast).
    pub b_strides: [u32; MAX_RANK],
}

impl BinaryParams {
    /// Kernel id.
    pub const KERNEL: &'static str = "binary";

    /// Contiguous `a` and `b` broadcast together; `None` if the shapes do not broadcast
    /// or the rank exceeds [`MAX_RANK`]. Returns the output shape too.
    pub fn broadcast(a: &[u32], b: &[u32]) -> Option<(Self, Vec<u32>)> {
        let out = broadcast_shape(a, b)?;
        if out.len() > MAX_RANK {
            return None;
        }
        let params = BinaryParams {
            rank: out.len() as u32,
            numel: out.iter().product(),
            a_offset: 0,
            b_offset: 0,
            shape: pad8(&out),
            a_strides: pad8(&broadcast_strides(a, &out)),
            b_strides: pad8(&broadcast_strides(b, &out)),
        };
        Some((params, out))
    }
}

/// The `binary` kernel's `OP` override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum BinaryOp {
    /// a + b.
    Add = 0,
    /// a - b.
    Sub = 1,
    /// a * b.
    Mul = 2,
    /// a / b.
    Div = 3,
    /// max(a, b).
    Max = 4,
    /// min(a, b).
    Min = 5,
    /// a^b (C `powf` sign rules).
    Pow = 6,
}

impl BinaryOp {
    /// Every op.
    pub const ALL: [BinaryOp; 7] =
        [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max, BinaryOp::Min, BinaryOp::Pow];
}

/// `copy` kernel uniform (strided gather into a contiguous output). See `kernels/copy.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct CopyParams {
    /// Rank of the iteration (output) shape.
    pub rank: u32,
    /// Elements copied.
    pub numel: u32,
    /// First input element.
    pub in_offset: u32,
    /// First output element written.
    pub out_offset: u32,
    /// Iteration (output) shape.
    pub shape: [u32; MAX_RANK],
    /// Input strides over that shape.
    pub in_strides: [u32; MAX_RANK],
}

impl CopyParams {
    /// Kernel id.
    pub const KERNEL: &'static str = "copy";

    /// Copies a view of shape `shape` with the given input strides; `None` past [`MAX_RANK`]
    /// or when `strides` has a different length.
    pub fn strided(shape: &[u32], in_strides: &[u32], in_offset: u32, out_offset: u32) -> Option<Self> {
        if shape.len() > MAX_RANK || shape.len() != in_strides.len() {
            return None;
        }
        Some(CopyParams {
            rank: shape.len() as u32,
            numel: shape.iter().product(),
            in_offset,
            out_offset,
            shape: pad8(shape),
            in_strides: pad8(in_strides),
        })
    }

    /// WebNN transpose of a contiguous tensor of `shape`: output dim `i` is input dim
    /// `perm[i]`. `None` if `perm` is not a permutation of `0..rank`.
    pub fn transpose(shape: &[u32], perm: &[usize]) -> Option<Self> {
        if perm.len() != shape.len() {
            return None;
        }
        let mut seen = vec![false; perm.len()];
        for &p in perm {
            if p >= perm.len() || std::mem::replace(&mut seen[p], true) {
                return None;
            }
        }
        let strides = contiguous_strides(shape);
        let out_shape: Vec<u32> = perm.iter().map(|&p| shape[p]).collect();
        let out_strides: Vec<u32> = perm.iter().map(|&p| strides[p]).collect();
        Self::strided(&out_shape, &out_strides, 0, 0)
    }
}

/// `gather` kernel uniform. See `kernels/gather.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct GatherParams {
    /// Product of the input dims before the axis.
    pub outer: u32,
    /// Size of the gathered axis.
    pub axis_size: u32,
    /// Product of the input dims after the axis.
    pub inner: u32,
    /// Number of indices.
    pub num_indices: u32,
    /// First row of the axis that this dispatch's table holds.
    pub row_start: u32,
    /// Rows of the axis that this dispatch's table holds.
    pub row_count: u32,
    /// Padding.
    pub _pad: [u32; 2],
}

impl GatherParams {
    /// Kernel id.
    pub const KERNEL: &'static str = "gather";

    /// A gather from a whole `[outer, axis_size, inner]` table.
    pub fn new(outer: u32, axis_size: u32, inner: u32, num_indices: u32) -> Self {
        GatherParams { outer, axis_size, inner, num_indices, row_start: 0, row_count: axis_size, _pad: [0; 2] }
    }

    /// Output elements.
    pub fn numel(&self) -> u32 {
        self.outer * self.num_indices * self.inner
    }
}

/// Uniform of the row kernels `softmax` and `reduce` (`[rows, cols]`, last axis).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct RowParams {
    /// Rows.
    pub rows: u32,
    /// Columns (the reduced / normalized axis).
    pub cols: u32,
    /// Padding.
    pub _pad: [u32; 2],
}

impl RowParams {
    /// Softmax kernel id.
    pub const SOFTMAX: &'static str = "softmax";
    /// Reduce kernel id.
    pub const REDUCE: &'static str = "reduce";

    /// `[rows, cols]`.
    pub fn new(rows: u32, cols: u32) -> Self {
        RowParams { rows, cols, _pad: [0; 2] }
    }
}

/// The `reduce` kernel's `OP` override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ReduceOp {
    /// Sum.
    Sum = 0,
    /// Mean.
    Mean = 1,
    /// Max.
    Max = 2,
    /// Min.
    Min = 3,
}

/// `layernorm` kernel uniform. See `kernels/layernorm.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct LayerNormParams {
    /// Rows.
    pub rows: u32,
    /// Columns (the normalized axis).
    pub cols: u32,
    /// Added to the variance.
    pub epsilon: f32,
    /// Padding.
    pub _pad: u32,
}

impl LayerNormParams {
    /// Kernel id.
    pub const KERNEL: &'static str = "layernorm";

    /// `[rows, cols]` with `epsilon`.
    pub fn new(rows: u32, cols: u32, epsilon: f32) -> Self {
        LayerNormParams { rows, cols, epsilon, _pad: 0 }
    }
}

/// `attention` kernel uniform (fused scaled-dot-product attention, strided operands).
/// See `kernels/attention.wgsl`. Strides are `[batch, head, row, unused]` in elements;
/// the head dimension is contiguous.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct AttentionParams {
    /// Batch size.
    pub batch: u32,
    /// Query heads.
    pub heads: u32,
    /// Query rows per sequence.
    pub q_len: u32,
    /// Key/value rows per sequence.
    pub kv_len: u32,
    /// Head dimension (≤ [`AttentionParams::MAX_HEAD_DIM`]).
    pub head_dim: u32,
    /// Query heads per key/value head (1 = multi-head, >1 = grouped-query).
    pub kv_group: u32,
    /// Score scale, usually `1 / sqrt(head_dim)`.
    pub scale: f32,
    /// Padding.
    pub _pad0: u32,
    /// Query strides.
    pub q_strides: [u32; 4],
    /// Key strides (the head index is the key/value head).
    pub k_strides: [u32; 4],
    /// Value strides.
    pub v_strides: [u32; 4],
    /// Output strides.
    pub o_strides: [u32; 4],
    /// Additive-mask strides (`[batch, head, query row]`, key index contiguous; 0 broadcasts).
    pub m_strides: [u32; 4],
    /// First query element.
    pub q_offset: u32,
    /// First key element.
    pub k_offset: u32,
    /// First value element.
    pub v_offset: u32,
    /// First output element.
    pub o_offset: u32,
    /// First mask element.
    pub m_offset: u32,
    /// Padding.
    pub _pad: [u32; 3],
}

impl AttentionParams {
    /// Kernel id.
    pub const KERNEL: &'static str = "attention";
    /// Longest key/value sequence the fused kernel takes.
    pub const MAX_KV_LEN: u32 = 2048;
    /// Largest head dimension the fused kernel takes.
    pub const MAX_HEAD_DIM: u32 = 256;

    /// Separate contiguous `[batch, heads, len, head_dim]` Q, K, V and output tensors,
    /// no mask, scale `1/sqrt(head_dim)`.
    pub fn contiguous(batch: u32, heads: u32, q_len: u32, kv_len: u32, head_dim: u32) -> Self {
        let strides = |len: u32| [heads * len * head_dim, len * head_dim, head_dim, 0];
        AttentionParams {
            batch,
            heads,
            q_len,
            kv_len,
            head_dim,
            kv_group: 1,
            scale: 1.0 / (head_dim as f32).sqrt(),
            _pad0: 0,
            q_strides: strides(q_len),
            k_strides: strides(kv_len),
            v_strides: strides(kv_len),
            o_strides: strides(q_len),
            m_strides: [0; 4],
            q_offset: 0,
            k_offset: 0,
            v_offset: 0,
            o_offset: 0,
            m_offset: 0,
            _pad: [0; 3],
        }
    }

    /// Self-attention reading Q, K and V from one fused projection `[batch, seq,
    /// 3 * heads * head_dim]` (Q, then K, then V along the last axis, as a fused QKV
    /// matmul writes them) and writing `[batch, seq, heads * head_dim]` — no transposes.
    pub fn fused_qkv(batch: u32, heads: u32, seq: u32, head_dim: u32) -> Self {
        let hidden = heads * head_dim;
        let qkv = [seq * 3 * hidden, head_dim, 3 * hidden, 0];
        AttentionParams {
            q_strides: qkv,
            k_strides: qkv,
            v_strides: qkv,
            o_strides: [seq * hidden, head_dim, hidden, 0],
            q_offset: 0,
            k_offset: hidden,
            v_offset: 2 * hidden,
            ..Self::contiguous(batch, heads, seq, seq, head_dim)
        }
    }

    /// Uses an additive key-padding mask `[batch, kv_len]` (broadcast over heads and
    /// query rows); set `HAS_MASK` when dispatching.
    pub fn with_key_padding_mask(mut self) -> Self {
        self.m_strides = [self.kv_len, 0, 0, 0];
        self
    }

    /// Whether the fused kernel can run these sizes.
    pub fn fits(&self) -> bool {
        self.kv_len <= Self::MAX_KV_LEN && self.head_dim <= Self::MAX_HEAD_DIM
    }

    /// Workgroups to dispatch: one per (query row, head, batch).
    pub fn workgroups(&self) -> [u32; 3] {
        [self.q_len.max(1), self.heads.max(1), self.batch.max(1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_sizes_match_wgsl() {
        assert_eq!(std::mem::size_of::<MatmulParams>(), 48);
        assert_eq!(std::mem::size_of::<UnaryParams>(), 16);
        assert_eq!(std::mem::size_of::<BinaryParams>(), 112);
        assert_eq!(std::mem::size_of::<CopyParams>(), 80);
        assert_eq!(std::mem::size_of::<GatherParams>(), 32);
        assert_eq!(std::mem::size_of::<RowParams>(), 16);
        assert_eq!(std::mem::size_of::<LayerNormParams>(), 16);
        assert_eq!(std::mem::size_of::<AttentionParams>(), 144);
    }

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast_shape(&[2, 1, 4], &[3, 1]), Some(vec![2, 3, 4]));
        assert_eq!(broadcast_shape(&[2, 3], &[4]), None);
        assert_eq!(broadcast_strides(&[3, 1], &[2, 3, 4]), vec![0, 1, 0]);
        assert_eq!(contiguous_strides(&[2, 3, 4]), vec![12, 4, 1]);
    }

    #[test]
    fn workgroups_spill_into_y() {
        assert_eq!(linear_workgroups(0, 256), [1, 1, 1]);
        assert_eq!(linear_workgroups(257, 256), [2, 1, 1]);
        assert_eq!(row_workgroups(70_000), [65_535, 2, 1]);
    }

    #[test]
    fn transpose_checks_permutation() {
        assert!(CopyParams::transpose(&[2, 3], &[0, 0]).is_none());
        let p = CopyParams::transpose(&[2, 3, 4], &[2, 0, 1]).unwrap();
        assert_eq!(&p.shape[..3], &[4, 2, 3]);
        assert_eq!(&p.in_strides[..3], &[1, 12, 4]);
    }
}

/// `conv2d` kernel uniform (NCHW input, OIHW weight). See `kernels/conv2d.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct Conv2dParams {
    /// Images.
    pub n: u32,
    /// Input channels.
    pub c: u32,
    /// Input height.
    pub h: u32,
    /// Input width.
    pub w: u32,
    /// Output channels.
    pub oc: u32,
    /// Output height.
    pub oh: u32,
    /// Output width.
    pub ow: u32,
    /// Channel groups (divides `c` and `oc`).
    pub groups: u32,
    /// Kernel height.
    pub kh: u32,
    /// Kernel width.
    pub kw: u32,
    /// Rows of padding above the input.
    pub pad_top: u32,
    /// Columns of padding left of the input.
    pub pad_left: u32,
    /// Vertical stride.
    pub stride_h: u32,
    /// Horizontal stride.
    pub stride_w: u32,
    /// Vertical dilation.
    pub dil_h: u32,
    /// Horizontal dilation.
    pub dil_w: u32,
    /// Lower bound of the fused clamp (with `CLAMP`).
    pub min_value: f32,
    /// Upper bound of the fused clamp (with `CLAMP`).
    pub max_value: f32,
    /// Output elements (`n * oc * oh * ow`).
    pub numel: u32,
    /// Padding.
    pub _pad: u32,
}

impl Conv2dParams {
    /// Kernel id.
    pub const KERNEL: &'static str = "conv2d";
    /// Invocations per workgroup (the kernel's `WG` default).
    pub const WG: u32 = 64;
}

/// The `pool2d` kernel's `OP` override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Pool2dOp {
    /// Mean of the window's positions inside the input.
    Average = 0,
    /// Maximum of the window's positions inside the input.
    Max = 1,
}

/// `pool2d` kernel uniform (NCHW; every `h × w` plane pooled alike). See `kernels/pool2d.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct Pool2dParams {
    /// Input height.
    pub h: u32,
    /// Input width.
    pub w: u32,
    /// Output height.
    pub oh: u32,
    /// Output width.
    pub ow: u32,
    /// Window height.
    pub kh: u32,
    /// Window width.
    pub kw: u32,
    /// Rows of padding above the input.
    pub pad_top: u32,
    /// Columns of padding left of the input.
    pub pad_left: u32,
    /// Vertical stride.
    pub stride_h: u32,
    /// Horizontal stride.
    pub stride_w: u32,
    /// Vertical dilation.
    pub dil_h: u32,
    /// Horizontal dilation.
    pub dil_w: u32,
    /// Output elements (`planes * oh * ow`).
    pub numel: u32,
    /// Padding.
    pub _pad: [u32; 3],
}

impl Pool2dParams {
    /// Kernel id.
    pub const KERNEL: &'static str = "pool2d";
    /// Invocations per workgroup (the kernel's `WG` default).
    pub const WG: u32 = 64;
}

/// `clamp` kernel uniform. See `kernels/clamp.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct ClampParams {
    /// Elements.
    pub numel: u32,
    /// Lower bound.
    pub min_value: f32,
    /// Upper bound.
    pub max_value: f32,
    /// Padding.
    pub _pad: u32,
}

impl ClampParams {
    /// Kernel id.
    pub const KERNEL: &'static str = "clamp";

    /// `numel` elements clamped to `[min_value, max_value]`.
    pub fn new(numel: u32, min_value: f32, max_value: f32) -> Self {
        ClampParams { numel, min_value, max_value, _pad: 0 }
    }
}
