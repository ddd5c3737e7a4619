//! The `Params` uniforms of the `llm_*` kernels (byte for byte their WGSL structs),
//! their kernel ids, override codes and dispatch sizes.

use bytemuck::{Pod, Zeroable};

use crate::params::{linear_workgroups, row_workgroups};

/// Output columns per workgroup of the GEMV mode of `llm_matmul`.
pub const GEMV_COLS: u32 = 8;
/// Output tile side of the GEMM mode of `llm_matmul`.
pub const GEMM_TILE: u32 = 64;
/// Rows of `x` up to which `llm_matmul` runs as GEMV (each row a pass over the
/// weights); more rows run tiled.
pub const GEMV_MAX_ROWS: u32 = 4;
/// Largest head dimension `llm_attention` takes.
pub const MAX_HEAD_DIM: u32 = 256;

/// How the `llm_*` kernels store activations and the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum ActivationType {
    /// float32, on every adapter.
    #[default]
    F32,
    /// float16 (the `_f16a` kernels; needs `shader-f16`): half the bytes per
    /// activation and cache entry, while products, sums and softmax stay f32.
    F16,
}

/// The `_f16a` twin of each `llm_*` kernel (see build.rs).
const F16A_KERNELS: &[(&str, &str)] = &[
    (MatmulParams::KERNEL, "llm_matmul_f16a"),
    (EmbedParams::KERNEL, "llm_embed_f16a"),
    (NormParams::KERNEL, "llm_norm_f16a"),
    (RopeParams::KERNEL, "llm_rope_f16a"),
    (AttentionParams::KERNEL, "llm_attention_f16a"),
    (ElementwiseParams::KERNEL, "llm_elementwise_f16a"),
];

impl ActivationType {
    /// Bytes per stored element.
    pub fn bytes(self) -> usize {
        match self {
            ActivationType::F32 => 4,
            ActivationType::F16 => 2,
        }
    }

    /// The id of the `llm_*` kernel `kernel` (one of the `KERNEL` constants) that
    /// stores activations as `self`.
    pub fn kernel(self, kernel: &'static str) -> &'static str {
        match self {
            ActivationType::F32 => kernel,
            ActivationType::F16 => F16A_KERNELS.iter().find(|(base, _)| *base == kernel).map_or_else(
                || {
                    debug_assert!(false, "{kernel} has no f16-activation twin");
                    kernel
                },
                |(_, twin)| twin,
            ),
        }
    }

    /// The `llm_matmul` kernel that reads activations as `self` and writes f32
    /// (logits, read by the host in full precision).
    pub fn f32_out_matmul(self) -> &'static str {
        match self {
            ActivationType::F32 => MatmulParams::KERNEL,
            ActivationType::F16 => "llm_matmul_f16a_f32out",
        }
    }
}

/// `llm_matmul` uniform: `out[m, n] = x[m, k] · W[n, k]ᵀ (+ bias)`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct MatmulParams {
    /// Rows of x and out.
    pub m: u32,
    /// Rows of W, columns of out.
    pub n: u32,
    /// Columns of x and W.
    pub k: u32,
    /// Blocks of 32 per row of W (0 for float weights).
    pub nb: u32,
}

impl MatmulParams {
    /// Kernel id.
    pub const KERNEL: &'static str = "llm_matmul";

    /// Whether this shape runs in GEMV mode (the `GEMV` override).
    pub fn gemv(&self) -> bool {
        self.m <= GEMV_MAX_ROWS
    }

    /// Workgroups for the mode [`MatmulParams::gemv`] picks.
    pub fn workgroups(&self) -> [u32; 3] {
        if self.gemv() {
            [self.n.div_ceil(GEMV_COLS), self.m, 1]
        } else {
            [self.n.div_ceil(GEMM_TILE), self.m.div_ceil(GEMM_TILE), 1]
        }
    }
}

/// `llm_embed` uniform.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct EmbedParams {
    /// Ids looked up (rows of the output).
    pub n_ids: u32,
    /// Columns of the table.
    pub cols: u32,
    /// Blocks of 32 per row (0 for float tables).
    pub nb: u32,
    /// Rows of the table.
    pub table_rows: u32,
}

impl EmbedParams {
    /// Kernel id.
    pub const KERNEL: &'static str = "llm_embed";

    /// Workgroups.
    pub fn workgroups(&self) -> [u32; 3] {
        linear_workgroups(self.n_ids * self.cols, 256)
    }
}

/// `llm_norm` uniform.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct NormParams {
    /// Rows.
    pub rows: u32,
    /// Columns (the normalized axis).
    pub cols: u32,
    /// Added to the mean square (RMS) or variance (layer norm).
    pub eps: f32,
    /// Padding.
    pub _pad: u32,
}

impl NormParams {
    /// Kernel id.
    pub const KERNEL: &'static str = "llm_norm";

    /// Workgroups: one per row.
    pub fn workgroups(&self) -> [u32; 3] {
        row_workgroups(self.rows)
    }
}

/// `llm_rope` uniform.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct RopeParams {
    /// Rows (positions `start..start + rows`).
    pub rows: u32,
    /// Heads per row.
    pub heads: u32,
    /// Dims per head.
    pub head_dim: u32,
    /// Rotated pairs per head (inverse frequencies).
    pub pairs: u32,
    /// Position of row 0.
    pub start: u32,
    /// Padding.
    pub _pad: [u32; 3],
}

impl RopeParams {
    /// Kernel id.
    pub const KERNEL: &'static str = "llm_rope";

    /// Workgroups: one invocation per rotated pair.
    pub fn workgroups(&self) -> [u32; 3] {
        linear_workgroups(self.rows * self.heads * self.pairs, 256)
    }
}

/// `llm_attention` uniform.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct AttentionParams {
    /// Query rows (positions `start..start + rows`).
    pub rows: u32,
    /// Query heads.
    pub heads: u32,
    /// Key/value heads (divides `heads`).
    pub kv_heads: u32,
    /// Dims per head (at most [`MAX_HEAD_DIM`]).
    pub head_dim: u32,
    /// Causal: position of query row 0 (row `r` sees keys `0..=start + r`).
    /// Not causal: the number of keys every row sees.
    pub start: u32,
    /// Score scale, usually `1 / sqrt(head_dim)`.
    pub scale: f32,
    /// Shares of the span computed apart and then combined (1: one pass).
    pub splits: u32,
    /// 1: causal attention over a cache; 0: every row sees all `start` keys
    /// (an encoder's self-attention, cross-attention).
    pub causal: u32,
}

/// Spans of fewer keys than this per share are not split further.
const KEYS_PER_SPLIT: usize = 128;
/// Most shares of one span.
const MAX_SPLITS: usize = 32;
/// (head, row) workgroups from which one pass keeps a GPU busy enough.
const BUSY_WORKGROUPS: usize = 128;

impl AttentionParams {
    /// Kernel id.
    pub const KERNEL: &'static str = "llm_attention";

    /// How many shares to split the keys into: more than one only when few
    /// (head, row) workgroups face a long span (decoding late in a long context),
    /// where one pass would leave most of a GPU idle.
    pub fn choose_splits(heads: usize, rows: usize, span: usize) -> u32 {
        if heads.saturating_mul(rows) >= BUSY_WORKGROUPS {
            return 1;
        }
        (span / KEYS_PER_SPLIT).clamp(1, MAX_SPLITS) as u32
    }

    /// Workgroups of `PHASE` 0 (one pass) and 2 (combine): one per (head, row).
    pub fn workgroups(&self) -> [u32; 3] {
        [self.heads, self.rows, 1]
    }

    /// Workgroups of `PHASE` 1: one per (head, row, share).
    pub fn split_workgroups(&self) -> [u32; 3] {
        [self.heads, self.rows, self.splits]
    }

    /// Floats of the partial results of `PHASE` 1.
    pub fn partial_len(&self) -> usize {
        self.rows as usize * self.heads as usize * self.splits as usize * (self.head_dim as usize + 2)
    }
}

/// `llm_elementwise` uniform.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct ElementwiseParams {
    /// Output elements.
    pub numel: u32,
    /// Output columns ([`ElementwiseOp::Columns`]; else any non-zero value).
    pub cols: u32,
    /// Input columns ([`ElementwiseOp::Columns`]).
    pub src_cols: u32,
    /// First input column copied ([`ElementwiseOp::Columns`]).
    pub src_offset: u32,
}

impl ElementwiseParams {
    /// Kernel id.
    pub const KERNEL: &'static str = "llm_elementwise";

    /// An op over `numel` contiguous elements.
    pub fn new(numel: u32) -> Self {
        ElementwiseParams { numel, cols: 1, src_cols: 1, src_offset: 0 }
    }

    /// Workgroups.
    pub fn workgroups(&self) -> [u32; 3] {
        linear_workgroups(self.numel, 256)
    }
}

/// The `OP` override of `llm_elementwise`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ElementwiseOp {
    /// `out = silu(a) * b`.
    SiluMul = 0,
    /// `out = gelu_tanh(a)`.
    GeluTanh = 1,
    /// `out += a`.
    AddInPlace = 2,
    /// `out = a[:, src_offset..src_offset + cols]`.
    Columns = 3,
    /// `out = gelu(a)`, exact (error function).
    Gelu = 4,
}

impl ElementwiseOp {
    /// The override value.
    pub fn code(self) -> f64 {
        f64::from(self as u32)
    }
}
