//! The CPU program: instructions over operand ids, produced by `lower`.

use crate::graph::{AttentionOptions, BinaryKind, UnaryKind};
use crate::DType;

/// A term added into a GEMM's output before the product is accumulated:
/// `scale * operand`, read with row/column strides (0 for broadcast dims).
#[derive(Clone, Debug)]
pub(crate) struct InitTerm {
    pub operand: usize,
    pub scale: f32,
    pub row_stride: usize,
    pub col_stride: usize,
}

/// `out = act(alpha · op(A) · op(B) + Σ init terms)` over 2-D operands; the
/// bias, residual and activation that follow a matmul are fused in here.
#[derive(Clone, Debug)]
pub(crate) struct GemmInstr {
    pub a: usize,
    pub b: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a_transpose: bool,
    pub b_transpose: bool,
    pub alpha: f32,
    pub init: Vec<InitTerm>,
    pub activation: Option<UnaryKind>,
    pub out: usize,
    /// Index of B pre-packed by the backend (B is a constant), if any.
    pub packed_b: Option<usize>,
}

/// A 2-D matrix read from a wider one: `rows × cols` starting at column
/// `col_offset` of `operand`, whose rows are `row_stride` elements apart.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View {
    pub operand: usize,
    pub col_offset: usize,
    pub row_stride: usize,
}

/// Geometry of a 2-D windowed op on NCHW data: `n` images of `c` channels of
/// `h × w` in, `oh × ow` out, a `kh × kw` window placed at
/// `(oy*stride[0] + ki*dilation[0] - pad_top, ox*stride[1] + kj*dilation[1] - pad_left)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window2d {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
}

/// `conv2d` on NCHW input and OIHW filter, bias and a clamp fused in.
#[derive(Clone, Debug)]
pub(crate) struct ConvInstr {
    pub x: usize,
    pub filter: usize,
    pub bias: Option<usize>,
    pub out: usize,
    pub win: Window2d,
    /// Output channels.
    pub out_channels: usize,
    pub groups: usize,
    /// `(min, max)` applied to every output (a fused clamp or ReLU).
    pub clamp: Option<(f32, f32)>,
}

/// The 2-D pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PoolKind {
    /// Mean of the window's positions inside the input.
    Average,
    /// Maximum of the window's positions inside the input.
    Max,
}

/// A strided read of `shape` elements from `src`, starting at element `offset`.
#[derive(Clone, Debug)]
pub(crate) struct StridedRead {
    pub operand: usize,
    pub offset: usize,
    pub strides: Vec<usize>,
}

/// One step of a CPU program.
#[derive(Clone, Debug)]
pub(crate) enum Instr {
    Gemm(GemmInstr),
    /// Batched matmul: for each batch index, `out[b] = a[b] · b[b]`, where the
    /// batch offsets (in elements) already account for broadcasting.
    BatchMatmul {
        a: usize,
        b: usize,
        out: usize,
        m: usize,
        n: usize,
        k: usize,
        offsets: Vec<(usize, usize)>,
    },
    Unary {
        kind: UnaryKind,
        x: usize,
        out: usize,
    },
    Binary {
        kind: BinaryKind,
        a: StridedRead,
        b: StridedRead,
        shape: Vec<usize>,
        out: usize,
    },
    Softmax {
        x: usize,
        out: usize,
        outer: usize,
        len: usize,
        inner: usize,
    },
    LayerNorm {
        x: usize,
        scale: Option<usize>,
        bias: Option<usize>,
        cols: usize,
        epsilon: f32,
        out: usize,
    },
    Reduce {
        kind: ReduceKind,
        x: usize,
        shape: Vec<usize>,
        out_strides: Vec<usize>,
        count: usize,
        out: usize,
    },
    Gather {
        table: usize,
        indices: usize,
        out: usize,
        outer: usize,
        axis_len: usize,
        inner_bytes: usize,
    },
    Copy {
        src: StridedRead,
        shape: Vec<usize>,
        elem: usize,
        out: usize,
    },
    Concat {
        parts: Vec<(usize, Vec<usize>)>,
        axis: usize,
        elem: usize,
        out_shape: Vec<usize>,
        out: usize,
    },
    Where {
        cond: StridedRead,
        on_true: StridedRead,
        on_false: StridedRead,
        shape: Vec<usize>,
        elem: usize,
        out: usize,
    },
    Cast {
        x: usize,
        from: DType,
        to: DType,
        out: usize,
    },
    Conv2d(ConvInstr),
    Pool2d {
        kind: PoolKind,
        x: usize,
        win: Window2d,
        out: usize,
    },
    Clamp {
        x: usize,
        min: f32,
        max: f32,
        out: usize,
    },
    Attention {
        q: View,
        k: View,
        v: View,
        options: AttentionOptions,
        /// `starts[s]`: first query row and first key row of segment `s`.
        starts: Vec<(usize, usize)>,
        /// The additive key-padding mask operand, `[segments, max kv_len]`.
        mask: Option<usize>,
        out: usize,
    },
}

/// The reductions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReduceKind {
    Sum,
    Mean,
    Max,
}

impl Instr {
    /// The operand this instruction writes.
    pub(crate) fn output(&self) -> usize {
        match self {
            Instr::Gemm(g) => g.out,
            Instr::Conv2d(c) => c.out,
            Instr::BatchMatmul { out, .. }
            | Instr::Unary { out, .. }
            | Instr::Binary { out, .. }
            | Instr::Softmax { out, .. }
            | Instr::LayerNorm { out, .. }
            | Instr::Reduce { out, .. }
            | Instr::Gather { out, .. }
            | Instr::Copy { out, .. }
            | Instr::Concat { out, .. }
            | Instr::Where { out, .. }
            | Instr::Cast { out, .. }
            | Instr::Pool2d { out, .. }
            | Instr::Clamp { out, .. }
            | Instr::Attention { out, .. } => *out,
        }
    }

    /// The operands this instruction reads (views by their base operand).
    pub(crate) fn reads(&self) -> Vec<usize> {
        match self {
            Instr::Gemm(g) => {
                let mut r = vec![g.a, g.b];
                r.extend(g.init.iter().map(|t| t.operand));
                r
            }
            Instr::BatchMatmul { a, b, .. } => vec![*a, *b],
            Instr::Conv2d(c) => {
                let mut r = vec![c.x, c.filter];
                r.extend(c.bias);
                r
            }
            Instr::Pool2d { x, .. } | Instr::Clamp { x, .. } => vec![*x],
            Instr::Unary { x, .. } | Instr::Softmax { x, .. } | Instr::Reduce { x, .. } | Instr::Cast { x, .. } => {
                vec![*x]
            }
            Instr::Binary { a, b, .. } => vec![a.operand, b.operand],
            Instr::LayerNorm { x, scale, bias, .. } => {
                let mut r = vec![*x];
                r.extend(*scale);
                r.extend(*bias);
                r
            }
            Instr::Gather { table, indices, .. } => vec![*table, *indices],
            Instr::Copy { src, .. } => vec![src.operand],
            Instr::Concat { parts, .. } => parts.iter().map(|p| p.0).collect(),
            Instr::Where { cond, on_true, on_false, .. } => vec![cond.operand, on_true.operand, on_false.operand],
            Instr::Attention { q, k, v, mask, .. } => {
                let mut r = vec![q.operand, k.operand, v.operand];
                r.extend(mask);
                r
            }
        }
    }
}
