//! `GraphBuilder`: builds a [`Graph`] op by op, as WebNN's `MLGraphBuilder` does.

use super::{
    infer_output, AttentionOptions, Constant, ConstantSource, Conv2dOptions, Graph, NamedOperand, Node, Op, Operand,
    OperandDesc, Pool2dOptions, ReduceOptions, Weights,
};
use crate::{DType, Error, Result, Shape, Tensor};

/// Options of [`GraphBuilder::gemm`] (WebNN's `MLGemmOptions`).
#[derive(Clone, Debug)]
pub struct GemmOptions {
    /// Added after the product, broadcast to `[M, N]`.
    pub c: Option<Operand>,
    /// Scales the product.
    pub alpha: f32,
    /// Scales `c`.
    pub beta: f32,
    /// Use the transpose of `a`.
    pub a_transpose: bool,
    /// Use the transpose of `b`.
    pub b_transpose: bool,
}

impl Default for GemmOptions {
    fn default() -> Self {
        GemmOptions { c: None, alpha: 1.0, beta: 1.0, a_transpose: false, b_transpose: false }
    }
}

/// Options of [`GraphBuilder::layer_normalization`] (WebNN's `MLLayerNormalizationOptions`).
#[derive(Clone, Debug, Default)]
pub struct LayerNormOptions {
    /// Multiplies the normalized values.
    pub scale: Option<Operand>,
    /// Added after scaling.
    pub bias: Option<Operand>,
    /// Axes normalized over; `None` means all but the first (WebNN's default).
    pub axes: Option<Vec<usize>>,
    /// Added to the variance; `None` means 1e-5 (WebNN's default).
    pub epsilon: Option<f32>,
}

/// Builds a graph. Every op checks its operands at once and returns a clear
/// error when they do not fit, so a mistake is reported where it is made.
///
/// ```
/// use ipfs_accelerate_tensor::{DType, GraphBuilder, Tensor, CpuBackend};
/// let mut b = GraphBuilder::new();
/// let x = b.input("x", DType::Float32, [2, 3]).unwrap();
/// let w = b.constant("w", Tensor::from_f32([3, 1], &[1.0, 2.0, 3.0]).unwrap()).unwrap();
/// let y = b.matmul(x, w).unwrap();
/// let (graph, weights) = b.build(&[("y", y)]).unwrap();
/// let mut exe = CpuBackend::new().compile(&graph, &weights).unwrap();
/// let x = Tensor::from_f32([2, 3], &[1.0, 1.0, 1.0, 0.0, 1.0, 0.0]).unwrap();
/// let out = exe.run(&[("x", &x)]).unwrap();
/// assert_eq!(out[0].as_f32().unwrap(), &[6.0, 2.0]);
/// ```
#[derive(Default)]
pub struct GraphBuilder {
    graph: Graph,
    weights: Weights,
}

impl GraphBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        GraphBuilder::default()
    }

    /// Descriptor of an operand built so far.
    pub fn desc(&self, operand: Operand) -> &OperandDesc {
        self.graph.desc(operand)
    }

    fn new_operand(&mut self, desc: OperandDesc) -> Operand {
        self.graph.operands.push(desc);
        Operand((self.graph.operands.len() - 1) as u32)
    }

    fn check(&self, operand: Operand) -> Result<()> {
        if operand.index() < self.graph.operands.len() {
            Ok(())
        } else {
            Err(Error::Graph(format!("operand {} does not belong to this builder", operand.0)))
        }
    }

    /// A named input (WebNN `input(name, descriptor)`).
    pub fn input(&mut self, name: &str, dtype: DType, shape: impl Into<Shape>) -> Result<Operand> {
        if self.graph.inputs.iter().any(|i| i.name == name) {
            return Err(Error::Graph(format!("input {name:?} is declared twice")));
        }
        let operand = self.new_operand(OperandDesc::new(dtype, shape));
        self.graph.inputs.push(NamedOperand { name: name.to_string(), operand });
        Ok(operand)
    }

    /// A named weight constant; its data travels beside the graph as a weight.
    /// Using the same name twice returns the same operand.
    pub fn constant(&mut self, name: &str, tensor: Tensor) -> Result<Operand> {
        if let Some(existing) =
            self.graph.constants.iter().find(|c| c.source == ConstantSource::Weight(name.to_string()))
        {
            return Ok(existing.operand);
        }
        let operand = self.new_operand(OperandDesc::new(tensor.dtype(), tensor.shape().clone()));
        self.graph.constants.push(Constant { operand, source: ConstantSource::Weight(name.to_string()) });
        self.weights.insert(name.to_string(), tensor);
        Ok(operand)
    }

    /// A small constant carried inside the graph (a scalar, a mask).
    pub fn constant_inline(&mut self, tensor: Tensor) -> Operand {
        let operand = self.new_operand(OperandDesc::new(tensor.dtype(), tensor.shape().clone()));
        self.graph.constants.push(Constant { operand, source: ConstantSource::Inline(tensor) });
        operand
    }

    /// A `float32` scalar constant.
    pub fn scalar(&mut self, value: f32) -> Operand {
        self.constant_inline(Tensor::scalar_f32(value))
    }

    /// Appends `op` over `inputs` after inferring its output. Every typed
    /// method below goes through here.
    pub fn op(&mut self, op: Op, inputs: &[Operand]) -> Result<Operand> {
        for &i in inputs {
            self.check(i)?;
        }
        let descs: Vec<&OperandDesc> = inputs.iter().map(|&i| self.graph.desc(i)).collect();
        let desc = infer_output(&op, &descs)?;
        let output = self.new_operand(desc);
        self.graph.nodes.push(Node { op, inputs: inputs.to_vec(), output });
        Ok(output)
    }

    /// `matmul(a, b)`.
    pub fn matmul(&mut self, a: Operand, b: Operand) -> Result<Operand> {
        self.op(Op::Matmul, &[a, b])
    }

    /// `gemm(a, b, options)`.
    pub fn gemm(&mut self, a: Operand, b: Operand, options: GemmOptions) -> Result<Operand> {
        let op = Op::Gemm {
            alpha: options.alpha,
            beta: options.beta,
            a_transpose: options.a_transpose,
            b_transpose: options.b_transpose,
            has_c: options.c.is_some(),
        };
        let mut inputs = vec![a, b];
        inputs.extend(options.c);
        self.op(op, &inputs)
    }

    /// `a + b`.
    pub fn add(&mut self, a: Operand, b: Operand) -> Result<Operand> {
        self.op(Op::Add, &[a, b])
    }
    /// `a - b`.
    pub fn sub(&mut self, a: Operand, b: Operand) -> Result<Operand> {
        self.op(Op::Sub, &[a, b])
    }
    /// `a * b`.
    pub fn mul(&mut self, a: Operand, b: Operand) -> Result<Operand> {
        self.op(Op::Mul, &[a, b])
    }
    /// `a / b`.
    pub fn div(&mut self, a: Operand, b: Operand) -> Result<Operand> {
        self.op(Op::Div, &[a, b])
    }
    /// `max(a, b)`.
    pub fn max(&mut self, a: Operand, b: Operand) -> Result<Operand> {
        self.op(Op::Max, &[a, b])
    }
    /// `min(a, b)`.
    pub fn min(&mut self, a: Operand, b: Operand) -> Result<Operand> {
        self.op(Op::Min, &[a, b])
    }
    /// `pow(a, b)`.
    pub fn pow(&mut self, a: Operand, b: Operand) -> Result<Operand> {
        self.op(Op::Pow, &[a, b])
    }
    /// `equal(a, b)` as uint8.
    pub fn equal(&mut self, a: Operand, b: Operand) -> Result<Operand> {
        self.op(Op::Equal, &[a, b])
    }
    /// `greater(a, b)` as uint8.
    pub fn greater(&mut self, a: Operand, b: Operand) -> Result<Operand> {
        self.op(Op::Greater, &[a, b])
    }
    /// `lesser(a, b)` as uint8.
    pub fn lesser(&mut self, a: Operand, b: Operand) -> Result<Operand> {
        self.op(Op::Lesser, &[a, b])
    }
    /// Exact GELU.
    pub fn gelu(&mut self, x: Operand) -> Result<Operand> {
        self.op(Op::Gelu, &[x])
    }
    /// tanh.
    pub fn tanh(&mut self, x: Operand) -> Result<Operand> {
        self.op(Op::Tanh, &[x])
    }
    /// erf.
    pub fn erf(&mut self, x: Operand) -> Result<Operand> {
        self.op(Op::Erf, &[x])
    }
    /// ReLU.
    pub fn relu(&mut self, x: Operand) -> Result<Operand> {
        self.op(Op::Relu, &[x])
    }
    /// Sigmoid.
    pub fn sigmoid(&mut self, x: Operand) -> Result<Operand> {
        self.op(Op::Sigmoid, &[x])
    }
    /// exp.
    pub fn exp(&mut self, x: Operand) -> Result<Operand> {
        self.op(Op::Exp, &[x])
    }
    /// sqrt.
    pub fn sqrt(&mut self, x: Operand) -> Result<Operand> {
        self.op(Op::Sqrt, &[x])
    }
    /// `softmax(x, axis)`.
    pub fn softmax(&mut self, x: Operand, axis: usize) -> Result<Operand> {
        self.op(Op::Softmax { axis }, &[x])
    }

    /// `layerNormalization(x, options)`.
    pub fn layer_normalization(&mut self, x: Operand, options: LayerNormOptions) -> Result<Operand> {
        self.check(x)?;
        let rank = self.graph.desc(x).shape.rank();
        let axes = options.axes.unwrap_or_else(|| (1..rank).collect());
        let op = Op::LayerNormalization {
            axes,
            epsilon: options.epsilon.unwrap_or(1e-5),
            has_scale: options.scale.is_some(),
            has_bias: options.bias.is_some(),
        };
        let mut inputs = vec![x];
        inputs.extend(options.scale);
        inputs.extend(options.bias);
        self.op(op, &inputs)
    }

    /// `reduceMean(x, {axes, keepDimensions})`.
    pub fn reduce_mean(&mut self, x: Operand, axes: &[usize], keep_dimensions: bool) -> Result<Operand> {
        self.op(Op::ReduceMean(ReduceOptions { axes: axes.to_vec(), keep_dimensions }), &[x])
    }
    /// `reduceSum(x, {axes, keepDimensions})`.
    pub fn reduce_sum(&mut self, x: Operand, axes: &[usize], keep_dimensions: bool) -> Result<Operand> {
        self.op(Op::ReduceSum(ReduceOptions { axes: axes.to_vec(), keep_dimensions }), &[x])
    }
    /// `reduceMax(x, {axes, keepDimensions})`.
    pub fn reduce_max(&mut self, x: Operand, axes: &[usize], keep_dimensions: bool) -> Result<Operand> {
        self.op(Op::ReduceMax(ReduceOptions { axes: axes.to_vec(), keep_dimensions }), &[x])
    }
    /// `gather(x, indices, {axis})`.
    pub fn gather(&mut self, x: Operand, indices: Operand, axis: usize) -> Result<Operand> {
        self.op(Op::Gather { axis }, &[x, indices])
    }
    /// `reshape(x, newShape)`.
    pub fn reshape(&mut self, x: Operand, new_shape: &[usize]) -> Result<Operand> {
        self.op(Op::Reshape { new_shape: new_shape.to_vec() }, &[x])
    }
    /// `transpose(x, {permutation})`.
    pub fn transpose(&mut self, x: Operand, permutation: &[usize]) -> Result<Operand> {
        self.op(Op::Transpose { permutation: permutation.to_vec() }, &[x])
    }
    /// `concat(inputs, axis)`.
    pub fn concat(&mut self, inputs: &[Operand], axis: usize) -> Result<Operand> {
        self.op(Op::Concat { axis }, inputs)
    }
    /// `slice(x, starts, sizes)`.
    pub fn slice(&mut self, x: Operand, starts: &[usize], sizes: &[usize]) -> Result<Operand> {
        self.op(Op::Slice { starts: starts.to_vec(), sizes: sizes.to_vec() }, &[x])
    }
    /// `expand(x, newShape)`.
    pub fn expand(&mut self, x: Operand, new_shape: &[usize]) -> Result<Operand> {
        self.op(Op::Expand { new_shape: new_shape.to_vec() }, &[x])
    }
    /// `where(condition, trueValue, falseValue)`.
    pub fn where_(&mut self, condition: Operand, on_true: Operand, on_false: Operand) -> Result<Operand> {
        self.op(Op::Where, &[condition, on_true, on_false])
    }
    /// `cast(x, dtype)`.
    pub fn cast(&mut self, x: Operand, to: DType) -> Result<Operand> {
        self.op(Op::Cast { to }, &[x])
    }
    /// `conv2d(input, filter, {bias, ...options})`: input NCHW `[N, C, H, W]`,
    /// filter OIHW `[O, C/groups, kH, kW]`, optional bias `[O]`; gives
    /// `[N, O, outH, outW]` (see [`Op::Conv2d`]).
    pub fn conv2d(
        &mut self,
        input: Operand,
        filter: Operand,
        bias: Option<Operand>,
        options: Conv2dOptions,
    ) -> Result<Operand> {
        let mut inputs = vec![input, filter];
        inputs.extend(bias);
        self.op(Op::Conv2d { options, has_bias: bias.is_some() }, &inputs)
    }
    /// `averagePool2d(input, options)` on NCHW input; padded positions are not
    /// counted in the mean.
    pub fn average_pool2d(&mut self, input: Operand, options: Pool2dOptions) -> Result<Operand> {
        self.op(Op::AveragePool2d(options), &[input])
    }
    /// `maxPool2d(input, options)` on NCHW input.
    pub fn max_pool2d(&mut self, input: Operand, options: Pool2dOptions) -> Result<Operand> {
        self.op(Op::MaxPool2d(options), &[input])
    }
    /// `clamp(x, {minValue, maxValue})`; ReLU6 is `clamp(x, 0.0, 6.0)`.
    pub fn clamp(&mut self, x: Operand, min_value: f32, max_value: f32) -> Result<Operand> {
        self.op(Op::Clamp { min_value, max_value }, &[x])
    }
    /// Fused attention over a packed batch (see [`AttentionOptions`]).
    pub fn attention(&mut self, q: Operand, k: Operand, v: Operand, options: AttentionOptions) -> Result<Operand> {
        self.op(Op::Attention(AttentionOptions { has_mask: false, ..options }), &[q, k, v])
    }

    /// Fused attention with an additive key-padding `mask` `[segments, max kv_len]`
    /// (see [`AttentionOptions::has_mask`]).
    pub fn attention_masked(
        &mut self,
        q: Operand,
        k: Operand,
        v: Operand,
        mask: Operand,
        options: AttentionOptions,
    ) -> Result<Operand> {
        self.op(Op::Attention(AttentionOptions { has_mask: true, ..options }), &[q, k, v, mask])
    }

    /// Finishes the graph with these named outputs; returns it with the
    /// weights its constants refer to.
    pub fn build(mut self, outputs: &[(&str, Operand)]) -> Result<(Graph, Weights)> {
        for &(name, operand) in outputs {
            self.check(operand)?;
            self.graph.outputs.push(NamedOperand { name: name.to_string(), operand });
        }
        self.graph.validate(Some(&self.weights))?;
        Ok((self.graph, self.weights))
    }
}

impl GraphBuilder {
    pub(crate) fn push_constant(&mut self, desc: OperandDesc, source: ConstantSource) -> Operand {
        let operand = self.new_operand(desc);
        self.graph.constants.push(Constant { operand, source });
        operand
    }

    /// Finishes without checking weights (used by graph rewrites, whose
    /// weights travel separately).
    pub(crate) fn finish_unchecked_weights(mut self, outputs: &[(&str, Operand)]) -> Result<Graph> {
        for &(name, operand) in outputs {
            self.graph.outputs.push(NamedOperand { name: name.to_string(), operand });
        }
        self.graph.validate(None)?;
        Ok(self.graph)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatched_matmul_says_which_shapes() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", DType::Float32, [2, 3]).unwrap();
        let y = b.input("y", DType::Float32, [4, 5]).unwrap();
        let err = b.matmul(x, y).unwrap_err().to_string();
        assert!(err.contains("matmul") && err.contains("[2, 3]") && err.contains("[4, 5]"), "{err}");
    }

    #[test]
    fn gather_shape_follows_webnn() {
        let mut b = GraphBuilder::new();
        let table = b.input("t", DType::Float32, [10, 4]).unwrap();
        let idx = b.input("i", DType::Int32, [2, 3]).unwrap();
        let g = b.gather(table, idx, 0).unwrap();
        assert_eq!(b.desc(g).shape, Shape::from([2, 3, 4]));
    }

    #[test]
    fn graph_round_trips_through_json() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", DType::Float32, [2, 4]).unwrap();
        let s = b.scalar(2.0);
        let y = b.mul(x, s).unwrap();
        let z = b.layer_normalization(y, LayerNormOptions { epsilon: Some(1e-12), ..Default::default() }).unwrap();
        let (graph, _) = b.build(&[("z", z)]).unwrap();
        let json = serde_json::to_string(&graph).unwrap();
        assert!(json.contains("\"op\":\"layerNormalization\""), "{json}");
        let back: Graph = serde_json::from_str(&json).unwrap();
        assert_eq!(back, graph);
        back.validate(None).unwrap();
    }

    #[test]
    fn validate_rejects_a_tampered_graph() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", DType::Float32, [2, 4]).unwrap();
        let y = b.relu(x).unwrap();
        let (mut graph, _) = b.build(&[("y", y)]).unwrap();
        graph.operands[y.index()].shape = Shape::from([3]);
        assert!(graph.validate(None).unwrap_err().to_string().contains("declared"));
        graph.nodes[0].inputs[0] = Operand(99);
        assert!(graph.validate(None).is_err());
    }
}
