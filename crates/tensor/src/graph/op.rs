//! The op vocabulary: WebNN `MLGraphBuilder` ops plus fused ops with decompositions.

use crate::DType;
use serde::{Deserialize, Serialize};

/// One operation of a graph. Names and semantics follow the W3C WebNN
/// `MLGraphBuilder`; serialized with `{"op": "<webnnName>", ...options}`.
///
/// Optional operands of WebNN ops (gemm's `c`, layerNormalization's `scale` and
/// `bias`) are extra node inputs, flagged in the options so a node's inputs are
/// always unambiguous.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Op {
    /// `matmul(a, b)`: batched matrix product with broadcast batch dimensions.
    Matmul,
    /// `gemm(a, b, {c, alpha, beta, aTranspose, bTranspose})`: `alpha*A*B + beta*C` on 2-D operands.
    #[serde(rename_all = "camelCase")]
    Gemm {
        /// Scales the product.
        alpha: f32,
        /// Scales `c`.
        beta: f32,
        /// Use the transpose of `a`.
        a_transpose: bool,
        /// Use the transpose of `b` (`[N, K]` weights, as PyTorch's `Linear`).
        b_transpose: bool,
        /// Whether a third input `c` is present (broadcast to `[M, N]`).
        has_c: bool,
    },
    /// Element-wise `a + b` with broadcasting.
    Add,
    /// Element-wise `a - b` with broadcasting.
    Sub,
    /// Element-wise `a * b` with broadcasting.
    Mul,
    /// Element-wise `a / b` with broadcasting.
    Div,
    /// Element-wise maximum with broadcasting.
    Max,
    /// Element-wise minimum with broadcasting.
    Min,
    /// Element-wise `a ^ b` with broadcasting.
    Pow,
    /// Element-wise `a == b`, giving `uint8` 0/1.
    Equal,
    /// Element-wise `a > b`, giving `uint8` 0/1.
    Greater,
    /// Element-wise `a < b`, giving `uint8` 0/1.
    Lesser,
    /// Exact (erf-based) GELU.
    Gelu,
    /// Hyperbolic tangent.
    Tanh,
    /// Gauss error function.
    Erf,
    /// `max(x, 0)`.
    Relu,
    /// Logistic sigmoid.
    Sigmoid,
    /// `e^x`.
    Exp,
    /// Natural logarithm.
    Log,
    /// Square root.
    Sqrt,
    /// `-x`.
    Neg,
    /// `|x|`.
    Abs,
    /// `1 / x`.
    Reciprocal,
    /// Copy of the input.
    Identity,
    /// Softmax along one axis.
    Softmax {
        /// The axis normalized over.
        axis: usize,
    },
    /// `layerNormalization(x, {scale, bias, axes, epsilon})`.
    #[serde(rename_all = "camelCase")]
    LayerNormalization {
        /// Axes normalized over (WebNN's default: all but the first).
        axes: Vec<usize>,
        /// Added to the variance.
        epsilon: f32,
        /// Whether a `scale` input follows `x`.
        has_scale: bool,
        /// Whether a `bias` input follows (after `scale` when both exist).
        has_bias: bool,
    },
    /// Mean over `axes`.
    ReduceMean(ReduceOptions),
    /// Sum over `axes`.
    ReduceSum(ReduceOptions),
    /// Maximum over `axes`.
    ReduceMax(ReduceOptions),
    /// `gather(input, indices, {axis})`: output shape is
    /// `input[..axis] ++ indices ++ input[axis+1..]`.
    Gather {
        /// Axis of `input` indexed.
        axis: usize,
    },
    /// Same elements, another shape.
    #[serde(rename_all = "camelCase")]
    Reshape {
        /// The output shape.
        new_shape: Vec<usize>,
    },
    /// Permute dimensions.
    Transpose {
        /// Output dimension `i` is input dimension `permutation[i]`.
        permutation: Vec<usize>,
    },
    /// Join inputs along an axis.
    Concat {
        /// The joined axis.
        axis: usize,
    },
    /// A window of the input.
    Slice {
        /// First index per dimension.
        starts: Vec<usize>,
        /// Length per dimension.
        sizes: Vec<usize>,
    },
    /// Broadcast the input to a larger shape.
    #[serde(rename_all = "camelCase")]
    Expand {
        /// The output shape.
        new_shape: Vec<usize>,
    },
    /// `where(condition, trueValue, falseValue)` with broadcasting; `condition` is `uint8`.
    Where,
    /// Convert to another dtype.
    Cast {
        /// The output dtype.
        to: DType,
    },
    /// `conv2d(input, filter, {bias, padding, strides, dilations, groups})`:
    /// input NCHW `[N, C, H, W]`, filter OIHW `[O, C/groups, kH, kW]`, and a
    /// bias `[O]` as a third input when `has_bias`. Output `[N, O, outH, outW]`
    /// with `outH = (H + top + bottom - dilH*(kH-1) - 1) / strideH + 1`
    /// (floor), likewise for the width.
    #[serde(rename_all = "camelCase")]
    Conv2d {
        /// Padding, strides, dilations and groups.
        #[serde(flatten)]
        options: Conv2dOptions,
        /// Whether a `bias` `[O]` input follows the filter.
        has_bias: bool,
    },
    /// `averagePool2d(input, options)` on NCHW input. Padded positions are
    /// not counted: each output is the mean of the window's positions that
    /// fall inside the input (as WebNN's conformance tests expect).
    AveragePool2d(Pool2dOptions),
    /// `maxPool2d(input, options)` on NCHW input; padding never wins.
    MaxPool2d(Pool2dOptions),
    /// `clamp(x, {minValue, maxValue})`: `min(max(x, minValue), maxValue)`
    /// (ReLU6 is `clamp(x, 0, 6)`).
    #[serde(rename_all = "camelCase")]
    Clamp {
        /// Lower bound.
        min_value: f32,
        /// Upper bound (not below `min_value`).
        max_value: f32,
    },
    /// Fused scaled-dot-product attention (not a WebNN op; see
    /// [`AttentionOptions`] for its layout and [`crate::graph::decompose`] for
    /// its expansion into WebNN ops).
    Attention(AttentionOptions),
}

/// Options of the reduce ops.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReduceOptions {
    /// Axes reduced.
    pub axes: Vec<usize>,
    /// Keep reduced axes as size 1.
    pub keep_dimensions: bool,
}

/// Options of [`Op::Conv2d`] (WebNN's `MLConv2dOptions` with NCHW input and
/// OIHW filter layouts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conv2dOptions {
    /// Zeros added around the input: `[top, bottom, left, right]`.
    pub padding: [usize; 4],
    /// Step of the window: `[height, width]`, each at least 1.
    pub strides: [usize; 2],
    /// Spacing of the filter taps: `[height, width]`, each at least 1.
    pub dilations: [usize; 2],
    /// Channel groups; divides both the input and output channels
    /// (`groups == C == O` is a depthwise convolution).
    pub groups: usize,
}

impl Default for Conv2dOptions {
    /// No padding, stride 1, dilation 1, one group.
    fn default() -> Self {
        Conv2dOptions { padding: [0; 4], strides: [1, 1], dilations: [1, 1], groups: 1 }
    }
}

/// Options of [`Op::AveragePool2d`] and [`Op::MaxPool2d`] (WebNN's
/// `MLPool2dOptions`, NCHW layout, floor rounding). A global pool has
/// `window_dimensions` equal to the input's `[H, W]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pool2dOptions {
    /// Window size: `[height, width]`, each at least 1.
    pub window_dimensions: [usize; 2],
    /// Padding around the input: `[top, bottom, left, right]`.
    pub padding: [usize; 4],
    /// Step of the window: `[height, width]`, each at least 1.
    pub strides: [usize; 2],
    /// Spacing of the window's taps: `[height, width]`, each at least 1.
    pub dilations: [usize; 2],
}

impl Pool2dOptions {
    /// A global pool over an input of spatial size `[height, width]`.
    pub fn global(height: usize, width: usize) -> Self {
        Pool2dOptions { window_dimensions: [height, width], padding: [0; 4], strides: [1, 1], dilations: [1, 1] }
    }
}

/// Options of the fused attention op.
///
/// Layout ("packed", as text-embeddings-inference runs it): the sequences of a
/// batch are concatenated without padding. `q` is `[Tq, num_heads*head_dim]`,
/// `k` and `v` are `[Tkv, num_kv_heads*head_dim]`, and `segments` lists each
/// sequence's query and key lengths in order (`Σ q_len = Tq`, `Σ kv_len = Tkv`).
/// A query only attends to keys of its own segment. With `causal`, query `i` of
/// a segment sees keys `0..=i + kv_len - q_len` (queries are the last tokens).
/// `num_kv_heads < num_heads` is grouped-query attention.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttentionOptions {
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (divides `num_heads`).
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Multiplies the scores, usually `1/sqrt(head_dim)`.
    pub scale: f32,
    /// Mask keys after each query's position.
    pub causal: bool,
    /// The sequences of the packed batch.
    pub segments: Vec<AttentionSegment>,
    /// A fourth input, `mask` `[segments, max kv_len]`, is added to the
    /// scores of each segment's keys (row `s`, its first `kv_len` columns),
    /// for every head and query: a key-padding mask (0 keeps a key, a large
    /// negative number removes it). It is runtime data, so one graph serves
    /// every batch padded to the same shape.
    #[serde(default)]
    pub has_mask: bool,
}

/// One sequence of a packed attention batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttentionSegment {
    /// Query tokens of the sequence.
    pub q_len: usize,
    /// Key/value tokens of the sequence.
    pub kv_len: usize,
}

impl Op {
    /// The WebNN name of the op (`layerNormalization`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Matmul => "matmul",
            Op::Gemm { .. } => "gemm",
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Div => "div",
            Op::Max => "max",
            Op::Min => "min",
            Op::Pow => "pow",
            Op::Equal => "equal",
            Op::Greater => "greater",
            Op::Lesser => "lesser",
            Op::Gelu => "gelu",
            Op::Tanh => "tanh",
            Op::Erf => "erf",
            Op::Relu => "relu",
            Op::Sigmoid => "sigmoid",
            Op::Exp => "exp",
            Op::Log => "log",
            Op::Sqrt => "sqrt",
            Op::Neg => "neg",
            Op::Abs => "abs",
            Op::Reciprocal => "reciprocal",
            Op::Identity => "identity",
            Op::Softmax { .. } => "softmax",
            Op::LayerNormalization { .. } => "layerNormalization",
            Op::ReduceMean(_) => "reduceMean",
            Op::ReduceSum(_) => "reduceSum",
            Op::ReduceMax(_) => "reduceMax",
            Op::Gather { .. } => "gather",
            Op::Reshape { .. } => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Concat { .. } => "concat",
            Op::Slice { .. } => "slice",
            Op::Expand { .. } => "expand",
            Op::Where => "where",
            Op::Cast { .. } => "cast",
            Op::Conv2d { .. } => "conv2d",
            Op::AveragePool2d(_) => "averagePool2d",
            Op::MaxPool2d(_) => "maxPool2d",
            Op::Clamp { .. } => "clamp",
            Op::Attention(_) => "attention",
        }
    }

    /// True for ops that are not in WebNN and carry a decomposition.
    pub fn is_fused(&self) -> bool {
        matches!(self, Op::Attention(_))
    }

    /// The unary element-wise kind of this op, if it is one.
    pub fn unary(&self) -> Option<UnaryKind> {
        Some(match self {
            Op::Gelu => UnaryKind::Gelu,
            Op::Tanh => UnaryKind::Tanh,
            Op::Erf => UnaryKind::Erf,
            Op::Relu => UnaryKind::Relu,
            Op::Sigmoid => UnaryKind::Sigmoid,
            Op::Exp => UnaryKind::Exp,
            Op::Log => UnaryKind::Log,
            Op::Sqrt => UnaryKind::Sqrt,
            Op::Neg => UnaryKind::Neg,
            Op::Abs => UnaryKind::Abs,
            Op::Reciprocal => UnaryKind::Reciprocal,
            Op::Identity => UnaryKind::Identity,
            _ => return None,
        })
    }

    /// The binary element-wise kind of this op, if it is one.
    pub fn binary(&self) -> Option<BinaryKind> {
        Some(match self {
            Op::Add => BinaryKind::Add,
            Op::Sub => BinaryKind::Sub,
            Op::Mul => BinaryKind::Mul,
            Op::Div => BinaryKind::Div,
            Op::Max => BinaryKind::Max,
            Op::Min => BinaryKind::Min,
            Op::Pow => BinaryKind::Pow,
            Op::Equal => BinaryKind::Equal,
            Op::Greater => BinaryKind::Greater,
            Op::Lesser => BinaryKind::Lesser,
            _ => return None,
        })
    }
}

/// Unary element-wise functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryKind {
    /// Exact GELU.
    Gelu,
    /// tanh.
    Tanh,
    /// erf.
    Erf,
    /// ReLU.
    Relu,
    /// Sigmoid.
    Sigmoid,
    /// exp.
    Exp,
    /// ln.
    Log,
    /// sqrt.
    Sqrt,
    /// Negation.
    Neg,
    /// Absolute value.
    Abs,
    /// 1/x.
    Reciprocal,
    /// Copy.
    Identity,
}

/// Binary element-wise functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryKind {
    /// a + b.
    Add,
    /// a - b.
    Sub,
    /// a * b.
    Mul,
    /// a / b.
    Div,
    /// max(a, b).
    Max,
    /// min(a, b).
    Min,
    /// a ^ b.
    Pow,
    /// a == b (uint8 result).
    Equal,
    /// a > b (uint8 result).
    Greater,
    /// a < b (uint8 result).
    Lesser,
}

impl BinaryKind {
    /// True for the comparisons, whose result is `uint8`.
    pub fn is_comparison(self) -> bool {
        matches!(self, BinaryKind::Equal | BinaryKind::Greater | BinaryKind::Lesser)
    }
}
