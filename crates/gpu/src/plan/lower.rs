//! Lowering one graph node to kernel dispatches ("steps" on values; the
//! memory planner later turns values into buffers).

use crate::error::{GpuError, Result};
use crate::params::{
    linear_workgroups, row_workgroups, Activation, AttentionParams, BinaryOp, BinaryParams, ClampParams, Conv2dParams,
    CopyParams, GatherParams, LayerNormParams, MatmulParams, Pool2dOp, Pool2dParams, ReduceOp, RowParams, UnaryOp,
    UnaryParams, DEFAULT_WG,
};
use bytemuck::Pod;
use ipfs_accelerate_tensor::graph::{
    AttentionOptions, BinaryKind, Conv2dOptions, Graph, Node, Op, Pool2dOptions, UnaryKind,
};
use ipfs_accelerate_tensor::DType;

/// Index of a value: a graph operand's storage, after aliasing.
pub(super) type Value = usize;

/// A dispatch on values.
#[derive(Debug, Clone)]
pub(super) struct Step {
    pub kernel: &'static str,
    pub constants: Vec<(&'static str, f64)>,
    pub uniform: Vec<u32>,
    pub reads: Vec<Option<Value>>,
    pub write: Value,
    pub workgroups: [u32; 3],
}

/// A 2-D operand read in place from the tensor it was sliced from: rows
/// of `row_stride` elements, starting at `column`.
#[derive(Debug, Clone, Copy)]
pub(super) struct ColumnView {
    /// Index of the sliced operand.
    pub source: usize,
    /// First column of the slice.
    pub column: usize,
    /// Elements per row of the sliced operand.
    pub row_stride: usize,
}

/// One row block of a weight too large for one storage binding: rows
/// `[start, start + count)` of it, in their own buffer (`value`).
#[derive(Debug, Clone, Copy)]
pub(super) struct WeightChunk {
    pub value: Value,
    pub start: usize,
    pub count: usize,
}

/// What lowering a node needs to know about the graph.
pub(super) struct NodeContext<'a> {
    pub graph: &'a Graph,
    pub node: &'a Node,
    /// The value each input operand lives in.
    pub inputs: Vec<Value>,
    /// The value the output lives in.
    pub output: Value,
    /// An activation fused into this node's epilogue (matmul/gemm only).
    pub activation: Activation,
    /// A clamp (or ReLU) fused into this node's epilogue (conv2d only).
    pub clamp: Option<(f32, f32)>,
    /// Inputs read in place from a larger tensor (attention only).
    pub views: Vec<Option<ColumnView>>,
    /// The f16 copy of each input that is a weight, when f16 weights are on.
    pub f16_weights: Vec<Option<Value>>,
    /// The row blocks of a gemm's B or a gather's table that exceeds one
    /// storage binding (stored as f16 when `f16_weights` is on).
    pub weight_chunks: Option<Vec<WeightChunk>>,
}

fn words<T: Pod>(params: &T) -> Vec<u32> {
    bytemuck::cast_slice(bytemuck::bytes_of(params)).to_vec()
}

fn unsupported(node: &Node, message: impl Into<String>) -> GpuError {
    GpuError::Unsupported { op: node.op.name().to_string(), message: message.into() }
}

/// `usize` dims to the kernels' `u32`, refusing tensors the kernels cannot index.
fn dims32(node: &Node, dims: &[usize]) -> Result<Vec<u32>> {
    dims.iter()
        .map(|&d| u32::try_from(d).map_err(|_| unsupported(node, format!("dimension {d} exceeds u32"))))
        .collect()
}

fn count32(node: &Node, n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| unsupported(node, format!("{n} elements exceed the kernels' u32 indexing")))
}

impl NodeContext<'_> {
    fn in_dims(&self, i: usize) -> &[usize] {
        self.graph.desc(self.node.inputs[i]).shape.dims()
    }

    fn out_dims(&self) -> &[usize] {
        self.graph.desc(self.node.output).shape.dims()
    }

    fn step(&self, kernel: &'static str, constants: Vec<(&'static str, f64)>, uniform: Vec<u32>) -> Step {
        Step { kernel, constants, uniform, reads: Vec::new(), write: self.output, workgroups: [1, 1, 1] }
    }

    /// The steps computing this node. Reshape and identity never get here
    /// (they alias their input), nor the activations fused into a matmul.
    pub fn lower(&self) -> Result<Vec<Step>> {
        let node = self.node;
        for &operand in node.inputs.iter().chain([&node.output]) {
            let dtype = self.graph.desc(operand).dtype;
            let index_input = matches!(node.op, Op::Gather { .. }) && operand == node.inputs[1];
            let ok = if index_input { dtype == DType::Int32 } else { dtype == DType::Float32 };
            if !ok {
                return Err(unsupported(
                    node,
                    format!(
                        "operand {} is {dtype}; the webgpu kernels take float32 (and int32 gather indices)",
                        operand.0
                    ),
                ));
            }
        }
        if let Some(kind) = node.op.unary() {
            return self.unary(kind).map(|s| vec![s]);
        }
        if let Some(kind) = node.op.binary() {
            return self.binary(kind).map(|s| vec![s]);
        }
        match &node.op {
            Op::Matmul => self.matmul(),
            Op::Gemm { alpha, beta, a_transpose, b_transpose, has_c } => {
                self.gemm(*alpha, *beta, *a_transpose, *b_transpose, *has_c)
            }
            Op::Softmax { axis } => self.rows("softmax", &[*axis], vec![]),
            Op::ReduceMean(o) => self.rows("reduce", &o.axes, vec![("OP", ReduceOp::Mean as u32 as f64)]),
            Op::ReduceSum(o) => self.rows("reduce", &o.axes, vec![("OP", ReduceOp::Sum as u32 as f64)]),
            Op::ReduceMax(o) => self.rows("reduce", &o.axes, vec![("OP", ReduceOp::Max as u32 as f64)]),
            Op::LayerNormalization { axes, epsilon, has_scale, has_bias } => {
                self.layer_norm(axes, *epsilon, *has_scale, *has_bias)
            }
            Op::Gather { axis } => self.gather(*axis),
            Op::Transpose { permutation } => {
                let shape = dims32(node, self.in_dims(0))?;
                let params = CopyParams::transpose(&shape, permutation)
                    .ok_or_else(|| unsupported(node, "rank above the copy kernel's 8"))?;
                Ok(vec![self.copy(params, self.inputs[0])])
            }
            Op::Slice { starts, sizes } => {
                let strides: Vec<usize> = ipfs_accelerate_tensor::shape::contiguous_strides(self.in_dims(0));
                let offset: usize = starts.iter().zip(&strides).map(|(s, st)| s * st).sum();
                let params =
                    CopyParams::strided(&dims32(node, sizes)?, &dims32(node, &strides)?, count32(node, offset)?, 0)
                        .ok_or_else(|| unsupported(node, "rank above the copy kernel's 8"))?;
                Ok(vec![self.copy(params, self.inputs[0])])
            }
            Op::Expand { new_shape } => {
                let input = dims32(node, self.in_dims(0))?;
                let out = dims32(node, new_shape)?;
                let strides = crate::params::broadcast_strides(&input, &out);
                let params = CopyParams::strided(&out, &strides, 0, 0)
                    .ok_or_else(|| unsupported(node, "rank above the copy kernel's 8"))?;
                Ok(vec![self.copy(params, self.inputs[0])])
            }
            Op::Concat { axis } => self.concat(*axis),
            Op::Attention(options) => self.attention(options),
            Op::Conv2d { options, has_bias } => self.conv2d(options, *has_bias),
            Op::AveragePool2d(o) => self.pool2d(o, Pool2dOp::Average),
            Op::MaxPool2d(o) => self.pool2d(o, Pool2dOp::Max),
            Op::Clamp { min_value, max_value } => {
                let numel = count32(node, self.out_dims().iter().product())?;
                let params = ClampParams::new(numel, *min_value, *max_value);
                let mut step = self.step("clamp", vec![], words(&params));
                step.reads = vec![Some(self.inputs[0])];
                step.workgroups = linear_workgroups(numel, DEFAULT_WG);
                Ok(vec![step])
            }
            other => Err(unsupported(node, format!("the webgpu backend has no kernel for {} yet", other.name()))),
        }
    }

    fn copy(&self, params: CopyParams, from: Value) -> Step {
        let mut step = self.step("copy", vec![], words(&params));
        step.reads = vec![Some(from)];
        step.workgroups = linear_workgroups(params.numel, DEFAULT_WG);
        step
    }

    fn unary(&self, kind: UnaryKind) -> Result<Step> {
        let op = match kind {
            UnaryKind::Gelu => UnaryOp::Gelu,
            UnaryKind::Tanh => UnaryOp::Tanh,
            UnaryKind::Erf => UnaryOp::Erf,
            UnaryKind::Relu => UnaryOp::Relu,
            UnaryKind::Sigmoid => UnaryOp::Sigmoid,
            UnaryKind::Exp => UnaryOp::Exp,
            UnaryKind::Log => UnaryOp::Log,
            UnaryKind::Sqrt => UnaryOp::Sqrt,
            UnaryKind::Neg => UnaryOp::Neg,
            UnaryKind::Abs => UnaryOp::Abs,
            UnaryKind::Reciprocal => UnaryOp::Reciprocal,
            UnaryKind::Identity => UnaryOp::Identity,
        };
        let numel = count32(self.node, self.out_dims().iter().product())?;
        let mut step = self.step("unary", vec![("OP", op as u32 as f64)], words(&UnaryParams::new(numel)));
        step.reads = vec![Some(self.inputs[0])];
        step.workgroups = linear_workgroups(numel, DEFAULT_WG);
        Ok(step)
    }

    fn binary(&self, kind: BinaryKind) -> Result<Step> {
        let op = match kind {
            BinaryKind::Add => BinaryOp::Add,
            BinaryKind::Sub => BinaryOp::Sub,
            BinaryKind::Mul => BinaryOp::Mul,
            BinaryKind::Div => BinaryOp::Div,
            BinaryKind::Max => BinaryOp::Max,
            BinaryKind::Min => BinaryOp::Min,
            BinaryKind::Pow => BinaryOp::Pow,
            BinaryKind::Equal | BinaryKind::Greater | BinaryKind::Lesser => {
                return Err(unsupported(self.node, "comparisons are not in the webgpu kernel library yet"))
            }
        };
        let a = dims32(self.node, self.in_dims(0))?;
        let b = dims32(self.node, self.in_dims(1))?;
        let (params, _) = BinaryParams::broadcast(&a, &b)
            .ok_or_else(|| unsupported(self.node, "rank above the binary kernel's 8"))?;
        let mut step = self.step("binary", vec![("OP", op as u32 as f64)], words(&params));
        step.reads = vec![Some(self.inputs[0]), Some(self.inputs[1])];
        step.workgroups = linear_workgroups(params.numel, DEFAULT_WG);
        Ok(step)
    }

    fn matmul_step(&self, params: MatmulParams, transpose_b: bool, bias: Option<Value>) -> Step {
        let constants = vec![
            ("ACTIVATION", self.activation as u32 as f64),
            ("HAS_BIAS", bias.is_some() as u32 as f64),
            ("TRANSPOSE_B", transpose_b as u32 as f64),
        ];
        // Weights stored as f16 go through the f16-weight kernel.
        let (kernel, b) = match self.f16_weights[1] {
            Some(twin) => ("matmul_f16w", twin),
            None => ("matmul", self.inputs[1]),
        };
        let mut step = self.step(kernel, constants, words(&params));
        step.reads = vec![Some(self.inputs[0]), Some(b), bias];
        step.workgroups = params.workgroups();
        step
    }

    fn matmul(&self) -> Result<Vec<Step>> {
        let node = self.node;
        let (a, b, out) = (self.in_dims(0), self.in_dims(1), self.out_dims());
        if a.len() < 2 || b.len() < 2 {
            return Err(unsupported(node, "matmul of rank-1 operands; reshape them to matrices"));
        }
        let (m, k, n) = (a[a.len() - 2], a[a.len() - 1], b[b.len() - 1]);
        let batch = |d: &[usize]| d[..d.len() - 2].iter().product::<usize>();
        let (ba, bb, bo) = (batch(a), batch(b), batch(out));
        if !(ba == bo || ba == 1) || !(bb == bo || bb == 1) {
            return Err(unsupported(node, format!("batch broadcasting of {a:?} with {b:?}")));
        }
        let (m, n, k, bo) = (count32(node, m)?, count32(node, n)?, count32(node, k)?, count32(node, bo)?);
        let mut params = MatmulParams::contiguous(bo, m, n, k, false, bb == 1);
        if ba == 1 {
            params.stride_a = 0;
        }
        for total in [ba * a[a.len() - 2] * a[a.len() - 1], bb * b[b.len() - 2] * n as usize, out.iter().product()] {
            count32(node, total)?;
        }
        Ok(vec![self.matmul_step(params, false, None)])
    }

    fn gemm(&self, alpha: f32, beta: f32, a_transpose: bool, b_transpose: bool, has_c: bool) -> Result<Vec<Step>> {
        let node = self.node;
        if alpha != 1.0 || (has_c && beta != 1.0) || a_transpose {
            return Err(unsupported(node, "gemm with alpha or beta other than 1, or aTranspose"));
        }
        let (a, b) = (self.in_dims(0), self.in_dims(1));
        let (m, k) = (a[0], a[1]);
        let n = if b_transpose { b[0] } else { b[1] };
        let bias = if has_c {
            let c = self.in_dims(2);
            if c.iter().product::<usize>() != n || c.last() != Some(&n) {
                return Err(unsupported(node, format!("gemm c of shape {c:?} (only a bias of {n} columns)")));
            }
            Some(self.inputs[2])
        } else {
            None
        };
        count32(node, m * k)?;
        count32(node, m * n)?;
        count32(node, k * n)?;
        let params =
            MatmulParams::contiguous(1, count32(node, m)?, count32(node, n)?, count32(node, k)?, b_transpose, true);
        let Some(chunks) = &self.weight_chunks else {
            return Ok(vec![self.matmul_step(params, b_transpose, bias)]);
        };
        // B [n, k] in row blocks: each block computes its block of columns of C.
        let mut steps = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            let mut p = params;
            p.n = count32(node, chunk.count)?;
            p.c_offset = count32(node, chunk.start)?;
            p.bias_offset = if bias.is_some() { p.c_offset } else { 0 };
            let mut step = self.matmul_step(p, b_transpose, bias);
            step.kernel = if self.f16_weights[1].is_some() { "matmul_f16w" } else { "matmul" };
            step.reads[1] = Some(chunk.value);
            steps.push(step);
        }
        Ok(steps)
    }

    /// `[rows, cols]` view when `axes` are the trailing axes, in order.
    fn trailing(&self, axes: &[usize]) -> Result<(u32, u32)> {
        let dims = self.in_dims(0);
        let r = dims.len();
        let k = axes.len();
        if k == 0 || k > r || axes.iter().enumerate().any(|(i, &a)| a != r - k + i) {
            return Err(unsupported(self.node, format!("axes {axes:?} of a rank-{r} tensor (only the trailing axes)")));
        }
        let cols: usize = dims[r - k..].iter().product();
        let rows: usize = dims[..r - k].iter().product();
        count32(self.node, rows * cols)?;
        Ok((count32(self.node, rows)?, count32(self.node, cols)?))
    }

    fn rows(&self, kernel: &'static str, axes: &[usize], constants: Vec<(&'static str, f64)>) -> Result<Vec<Step>> {
        let (rows, cols) = self.trailing(axes)?;
        let mut step = self.step(kernel, constants, words(&RowParams::new(rows, cols)));
        step.reads = vec![Some(self.inputs[0])];
        step.workgroups = row_workgroups(rows);
        Ok(vec![step])
    }

    fn layer_norm(&self, axes: &[usize], epsilon: f32, has_scale: bool, has_bias: bool) -> Result<Vec<Step>> {
        let (rows, cols) = self.trailing(axes)?;
        let mut next = self.inputs[1..].iter().copied();
        let scale = if has_scale { next.next() } else { None };
        let bias = if has_bias { next.next() } else { None };
        // The inputs after x are exactly the scale and bias that are present.
        if (1..self.inputs.len()).any(|i| self.in_dims(i).iter().product::<usize>() != cols as usize) {
            return Err(unsupported(self.node, "scale or bias that does not cover the normalized axes"));
        }
        let constants = vec![("HAS_BIAS", has_bias as u32 as f64), ("HAS_SCALE", has_scale as u32 as f64)];
        let mut step = self.step("layernorm", constants, words(&LayerNormParams::new(rows, cols, epsilon)));
        step.reads = vec![Some(self.inputs[0]), scale, bias];
        step.workgroups = row_workgroups(rows);
        Ok(vec![step])
    }

    fn gather(&self, axis: usize) -> Result<Vec<Step>> {
        let (x, idx) = (self.in_dims(0), self.in_dims(1));
        let outer: usize = x[..axis].iter().product();
        let inner: usize = x[axis + 1..].iter().product();
        let num_indices: usize = idx.iter().product();
        count32(self.node, outer * num_indices * inner)?;
        let params = GatherParams::new(
            count32(self.node, outer)?,
            count32(self.node, x[axis])?,
            count32(self.node, inner)?,
            count32(self.node, num_indices)?,
        );
        let (kernel, table) = match self.f16_weights[0] {
            Some(twin) => ("gather_f16w", twin),
            None => ("gather", self.inputs[0]),
        };
        // A table in row blocks: one dispatch per block, each writing the
        // output rows whose index falls in its block.
        let whole = [WeightChunk { value: table, start: 0, count: x[axis] }];
        let chunks = self.weight_chunks.as_deref().unwrap_or(&whole);
        let mut steps = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            let mut p = params;
            p.row_start = count32(self.node, chunk.start)?;
            p.row_count = count32(self.node, chunk.count)?;
            let mut step = self.step(kernel, vec![], words(&p));
            step.reads = vec![Some(chunk.value), Some(self.inputs[1])];
            step.workgroups = linear_workgroups(params.numel(), DEFAULT_WG);
            steps.push(step);
        }
        Ok(steps)
    }

    /// The fused kernel: one dispatch for a batch of equal segments (the
    /// padded layout), else one per packed segment. Query rows
    /// `[q_start, q_start + q_len)` of a segment attend to its key rows
    /// `[kv_start, kv_start + kv_len)`, plus row `s` of the mask if any.
    fn attention(&self, o: &AttentionOptions) -> Result<Vec<Step>> {
        let node = self.node;
        let u = |n: usize| count32(node, n);
        let (h, hkv, d) = (o.num_heads, o.num_kv_heads, o.head_dim);
        // (first column, row stride) of Q, K and V in the buffers read.
        let view = |i: usize| match self.views[i] {
            Some(v) => (v.column, v.row_stride),
            None => (0, self.in_dims(i)[1]),
        };
        let ((qc, qs), (kc, ks), (vc, vs)) = (view(0), view(1), view(2));
        let total_rows = self.in_dims(0)[0].max(self.in_dims(1)[0]);
        for stride in [qs, ks, vs] {
            count32(node, (total_rows + 1) * stride)?;
        }
        let mask_cols = o.segments.iter().map(|s| s.kv_len).max().unwrap_or(0);
        let mask = o.has_mask.then(|| self.inputs[3]);
        let constants = vec![("CAUSAL", o.causal as u32 as f64), ("HAS_MASK", o.has_mask as u32 as f64)];
        // Parameters of `batch` segments of `q_len` × `kv_len` starting at
        // segment `first` (rows q_start, kv_start).
        let params = |batch: usize, q_len: usize, kv_len: usize, first: usize, q_start: usize, kv_start: usize| {
            let mut p = AttentionParams::contiguous(u(batch)?, u(h)?, u(q_len)?, u(kv_len)?, u(d)?);
            p.kv_group = u(h / hkv)?;
            p.scale = o.scale;
            p.q_strides = [u(q_len * qs)?, u(d)?, u(qs)?, 0];
            p.k_strides = [u(kv_len * ks)?, u(d)?, u(ks)?, 0];
            p.v_strides = [u(kv_len * vs)?, u(d)?, u(vs)?, 0];
            p.o_strides = [u(q_len * h * d)?, u(d)?, u(h * d)?, 0];
            p.m_strides = [u(mask_cols)?, 0, 0, 0];
            p.q_offset = u(qc + q_start * qs)?;
            p.k_offset = u(kc + kv_start * ks)?;
            p.v_offset = u(vc + kv_start * vs)?;
            p.o_offset = u(q_start * h * d)?;
            p.m_offset = u(first * mask_cols)?;
            Ok::<_, GpuError>(p)
        };
        let step = |p: AttentionParams, q_len: usize, batch: usize| -> Result<Step> {
            let mut step = self.step("attention", constants.clone(), words(&p));
            step.reads = vec![Some(self.inputs[0]), Some(self.inputs[1]), Some(self.inputs[2]), mask];
            step.workgroups = [u(q_len)?, u(h)?, u(batch)?];
            Ok(step)
        };
        let first = o.segments.first().copied();
        let uniform = first.is_some_and(|f| f.q_len > 0 && o.segments.iter().all(|s| *s == f));
        if let (true, Some(seg)) = (uniform, first) {
            let p = params(o.segments.len(), seg.q_len, seg.kv_len, 0, 0, 0)?;
            return Ok(vec![step(p, seg.q_len, o.segments.len())?]);
        }
        let mut steps = Vec::new();
        let (mut q_start, mut kv_start) = (0usize, 0usize);
        for (s, seg) in o.segments.iter().enumerate() {
            if seg.q_len > 0 {
                steps.push(step(params(1, seg.q_len, seg.kv_len, s, q_start, kv_start)?, seg.q_len, 1)?);
            }
            q_start += seg.q_len;
            kv_start += seg.kv_len;
        }
        Ok(steps)
    }

    /// One invocation per output element; depthwise is the `groups == C` case.
    fn conv2d(&self, o: &Conv2dOptions, has_bias: bool) -> Result<Vec<Step>> {
        let node = self.node;
        let (x, f) = (dims32(node, self.in_dims(0))?, dims32(node, self.in_dims(1))?);
        let out = dims32(node, self.out_dims())?;
        for i in 0..2 {
            count32(node, self.in_dims(i).iter().product())?;
        }
        let numel = count32(node, self.out_dims().iter().product())?;
        let u = |v: usize| count32(node, v);
        let (min_value, max_value) = self.clamp.unwrap_or((0.0, 0.0));
        let params = Conv2dParams {
            n: x[0],
            c: x[1],
            h: x[2],
            w: x[3],
            oc: f[0],
            oh: out[2],
            ow: out[3],
            groups: u(o.groups)?,
            kh: f[2],
            kw: f[3],
            pad_top: u(o.padding[0])?,
            pad_left: u(o.padding[2])?,
            stride_h: u(o.strides[0])?,
            stride_w: u(o.strides[1])?,
            dil_h: u(o.dilations[0])?,
            dil_w: u(o.dilations[1])?,
            min_value,
            max_value,
            numel,
            _pad: 0,
        };
        let constants = vec![("CLAMP", self.clamp.is_some() as u32 as f64), ("HAS_BIAS", has_bias as u32 as f64)];
        let mut step = self.step(Conv2dParams::KERNEL, constants, words(&params));
        step.reads = vec![Some(self.inputs[0]), Some(self.inputs[1]), has_bias.then(|| self.inputs[2])];
        step.workgroups = linear_workgroups(numel, Conv2dParams::WG);
        Ok(vec![step])
    }

    /// One invocation per output element, every plane pooled alike.
    fn pool2d(&self, o: &Pool2dOptions, op: Pool2dOp) -> Result<Vec<Step>> {
        let node = self.node;
        let x = dims32(node, self.in_dims(0))?;
        let out = dims32(node, self.out_dims())?;
        count32(node, self.in_dims(0).iter().product())?;
        let numel = count32(node, self.out_dims().iter().product())?;
        let u = |v: usize| count32(node, v);
        let params = Pool2dParams {
            h: x[2],
            w: x[3],
            oh: out[2],
            ow: out[3],
            kh: u(o.window_dimensions[0])?,
            kw: u(o.window_dimensions[1])?,
            pad_top: u(o.padding[0])?,
            pad_left: u(o.padding[2])?,
            stride_h: u(o.strides[0])?,
            stride_w: u(o.strides[1])?,
            dil_h: u(o.dilations[0])?,
            dil_w: u(o.dilations[1])?,
            numel,
            _pad: [0; 3],
        };
        let mut step = self.step(Pool2dParams::KERNEL, vec![("OP", op as u32 as f64)], words(&params));
        step.reads = vec![Some(self.inputs[0])];
        step.workgroups = linear_workgroups(numel, Pool2dParams::WG);
        Ok(vec![step])
    }

    fn concat(&self, axis: usize) -> Result<Vec<Step>> {
        let out = self.out_dims();
        if out[..axis].iter().product::<usize>() != 1 {
            return Err(unsupported(self.node, "concat along an inner axis (only the outermost non-unit axis)"));
        }
        let mut steps = Vec::new();
        let mut offset = 0usize;
        for (i, &input) in self.inputs.iter().enumerate() {
            let numel: usize = self.in_dims(i).iter().product();
            if numel == 0 {
                continue;
            }
            let n = count32(self.node, numel)?;
            let params = CopyParams::strided(&[n], &[1], 0, count32(self.node, offset)?).expect("rank 1");
            steps.push(self.copy(params, input));
            offset += numel;
        }
        Ok(steps)
    }
}
