//! The plan compiler: graph → [`Plan`].

use super::lower::ColumnView;
use super::lower::{NodeContext, Step, Value, WeightChunk};
use super::memory::place;
use super::{BufferRole, Dispatch, Plan, PlanBuffer, PlanTensor, PLAN_VERSION};
use crate::error::{GpuError, Result};
use crate::params::{Activation, AttentionParams, CopyParams, DEFAULT_WG};
use ipfs_accelerate_tensor::graph::{decompose::decompose_fused, ConstantSource, Graph, Op};
use ipfs_accelerate_tensor::DType;

/// Compiles `graph` (static shapes, as every graph is) into a plan.
///
/// `attention` runs on the fused kernel, one dispatch per packed segment,
/// reading Q, K and V straight out of the tensor they were sliced from (a
/// fused QKV projection) when those slices have no other use; a graph whose
/// attention exceeds that kernel's limits is first decomposed into WebNN
/// ops. `reshape` and `identity` cost nothing (they alias their input); a
/// `gelu` or `relu` that is the only user of a `matmul`/`gemm` runs in that
/// kernel's epilogue, as does a `clamp` (ReLU6) or `relu` that is the only
/// user of a `conv2d`. Ops or dtypes the kernels do not cover give
/// [`GpuError::Unsupported`] naming the op.
pub fn compile(graph: &Graph) -> Result<Plan> {
    compile_with(graph, CompileOptions::default())
}

/// How [`compile_with`] compiles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompileOptions {
    /// Store the weights that `matmul`/`gemm` multiply by and the tables
    /// `gather` reads (embeddings) as f16 — half the memory and bandwidth —
    /// and run the `_f16w` kernels, which convert them to f32 as they load
    /// them (arithmetic stays f32). Needs the adapter's `shader-f16`.
    pub f16_weights: bool,
    /// The device's largest storage binding (`max_storage_buffer_binding_size`),
    /// when known: a gemm weight `[n, k]` or an embedding table larger than
    /// this is split into row blocks, one dispatch each; any other tensor
    /// larger than this is an error at compile time. `None`: no limit.
    pub max_binding_bytes: Option<u64>,
}

/// [`compile`] with options.
pub fn compile_with(graph: &Graph, options: CompileOptions) -> Result<Plan> {
    let decomposed;
    let graph = if graph.nodes.iter().any(|n| matches!(&n.op, Op::Attention(o) if !fits_attention_kernel(o))) {
        decomposed = decompose_fused(graph).map_err(|e| GpuError::Graph(e.to_string()))?;
        &decomposed
    } else {
        graph
    };
    graph.validate(None).map_err(|e| GpuError::Graph(e.to_string()))?;
    Compiler::new(graph, options).run()
}

/// Whether every segment of an attention fits the fused kernel.
fn fits_attention_kernel(o: &ipfs_accelerate_tensor::graph::AttentionOptions) -> bool {
    o.head_dim as u64 <= u64::from(AttentionParams::MAX_HEAD_DIM)
        && o.segments.iter().all(|s| s.kv_len as u64 <= u64::from(AttentionParams::MAX_KV_LEN))
}

/// Where a value's bytes come from; `None` in [`Compiler::roles`] is scratch.
struct Compiler<'a> {
    graph: &'a Graph,
    options: CompileOptions,
    /// Weight values other than the plain float32 whole: (operand, f16,
    /// rows) → value, created on first use.
    weight_parts: std::collections::HashMap<(usize, bool, Option<[usize; 2]>), Value>,
    /// The value each operand lives in, once defined.
    value_of: Vec<Option<Value>>,
    /// Bytes of each value.
    bytes: Vec<u64>,
    /// Fixed role of each non-scratch value.
    roles: Vec<Option<BufferRole>>,
    steps: Vec<Step>,
}

/// Bytes a tensor of `numel` 4-byte elements occupies in a buffer (at least 4).
fn buffer_bytes(numel: usize) -> u64 {
    (numel as u64 * 4).max(4)
}

impl<'a> Compiler<'a> {
    fn new(graph: &'a Graph, options: CompileOptions) -> Self {
        Compiler {
            graph,
            options,
            weight_parts: Default::default(),
            value_of: vec![None; graph.operands.len()],
            bytes: Vec::new(),
            roles: Vec::new(),
            steps: Vec::new(),
        }
    }

    fn new_value(&mut self, bytes: u64, role: Option<BufferRole>) -> Value {
        self.bytes.push(bytes);
        self.roles.push(role);
        self.bytes.len() - 1
    }

    fn operand_bytes(&self, operand: ipfs_accelerate_tensor::graph::Operand) -> u64 {
        buffer_bytes(self.graph.desc(operand).shape.numel())
    }

    fn run(mut self) -> Result<Plan> {
        let graph = self.graph;
        for input in &graph.inputs {
            let v =
                self.new_value(self.operand_bytes(input.operand), Some(BufferRole::Input { name: input.name.clone() }));
            self.value_of[input.operand.index()] = Some(v);
        }
        for constant in &graph.constants {
            let role = match &constant.source {
                ConstantSource::Weight(name) => {
                    BufferRole::Weight { name: name.clone(), dtype: DType::Float32, rows: None }
                }
                ConstantSource::Inline(tensor) => {
                    let mut bytes = tensor.as_bytes().to_vec();
                    bytes.resize(bytes.len().next_multiple_of(4).max(4), 0);
                    BufferRole::Constant {
                        words: bytes.chunks_exact(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect(),
                    }
                }
            };
            let v = self.new_value(self.operand_bytes(constant.operand), Some(role));
            self.value_of[constant.operand.index()] = Some(v);
        }

        let fused = self.fusions();
        for (i, node) in graph.nodes.iter().enumerate() {
            // A slice read in place has no value of its own (usize::MAX): only
            // the attention reading it sees it, through its view.
            let inputs: Vec<Value> =
                node.inputs.iter().map(|o| self.value_of[o.index()].unwrap_or(usize::MAX)).collect();
            let same_dtype = |to| graph.desc(node.inputs[0]).dtype == to;
            let alias = match &node.op {
                Op::Reshape { .. } | Op::Identity => true,
                Op::Cast { to } => same_dtype(*to),
                Op::Gelu | Op::Relu | Op::Clamp { .. } => fused.absorbed[i],
                _ => false,
            };
            if fused.absorbed[i] && matches!(node.op, Op::Slice { .. }) {
                // Read in place by the attention that uses it: no value.
                continue;
            }
            if alias {
                self.value_of[node.output.index()] = Some(inputs[0]);
                continue;
            }
            let output = self.new_value(self.operand_bytes(node.output), None);
            self.value_of[node.output.index()] = Some(output);
            let views = node.inputs.iter().map(|o| fused.views.get(&o.index()).copied()).collect();
            let inputs = node
                .inputs
                .iter()
                .zip(inputs)
                .map(|(o, v)| match fused.views.get(&o.index()) {
                    Some(view) => self.value_of[view.source].expect("the sliced tensor is defined first"),
                    None => v,
                })
                .collect();
            let f16_weights =
                node.inputs.iter().map(|o| self.weight_part(*o, self.options.f16_weights, None)).collect();
            let weight_chunks = self.weight_chunks(node)?;
            let context = NodeContext {
                graph,
                node,
                inputs,
                output,
                activation: fused.activation[i],
                clamp: fused.clamp[i],
                views,
                f16_weights,
                weight_chunks,
            };
            self.steps.extend(context.lower()?);
        }

        // Outputs must live in scratch buffers the host reads back; an output
        // that is an input or constant as is gets a copy.
        let mut outputs = Vec::new();
        for out in &graph.outputs {
            let mut v = self.value_of[out.operand.index()].expect("validated: outputs are computed");
            if self.roles[v].is_some() {
                let numel = graph.desc(out.operand).shape.numel();
                let n = u32::try_from(numel)
                    .map_err(|_| GpuError::Unsupported { op: "output".into(), message: "too many elements".into() })?;
                let copy = self.new_value(self.bytes[v], None);
                let params = CopyParams::strided(&[n], &[1], 0, 0).expect("rank 1");
                self.steps.push(Step {
                    kernel: "copy",
                    constants: vec![],
                    uniform: bytemuck::cast_slice(bytemuck::bytes_of(&params)).to_vec(),
                    reads: vec![Some(v)],
                    write: copy,
                    workgroups: crate::params::linear_workgroups(n, DEFAULT_WG),
                });
                v = copy;
            }
            outputs.push((out, v));
        }
        self.assemble(outputs)
    }

    /// The value holding weight `operand` stored as f16 (when `f16`) and/or
    /// only `rows` of it; `None` when `operand` is not a weight or when
    /// neither applies. Created here; it gets a buffer only if a kernel reads it.
    fn weight_part(
        &mut self,
        operand: ipfs_accelerate_tensor::graph::Operand,
        f16: bool,
        rows: Option<[usize; 2]>,
    ) -> Option<Value> {
        if !f16 && rows.is_none() {
            return None;
        }
        let v = self.value_of[operand.index()]?;
        let Some(BufferRole::Weight { name, .. }) = self.roles[v].clone() else { return None };
        let key = (operand.index(), f16, rows);
        if let Some(&part) = self.weight_parts.get(&key) {
            return Some(part);
        }
        let desc = self.graph.desc(operand);
        let numel = match rows {
            Some([_, count]) => desc.shape.numel() / desc.shape.dims()[0].max(1) * count,
            None => desc.shape.numel(),
        } as u64;
        let (dtype, elem) = if f16 { (DType::Float16, 2) } else { (DType::Float32, 4) };
        let part =
            self.new_value((numel * elem).next_multiple_of(4).max(4), Some(BufferRole::Weight { name, dtype, rows }));
        self.weight_parts.insert(key, part);
        Some(part)
    }

    /// Row blocks for a weight read by a gemm (as B, stored `[n, k]`) or a
    /// gather (the table, axis 0) that exceeds the largest storage binding.
    fn weight_chunks(&mut self, node: &ipfs_accelerate_tensor::graph::Node) -> Result<Option<Vec<WeightChunk>>> {
        let Some(limit) = self.options.max_binding_bytes else { return Ok(None) };
        let input = match node.op {
            Op::Gemm { .. } | Op::Matmul => 1,
            Op::Gather { axis: 0 } => 0,
            _ => return Ok(None),
        };
        let operand = node.inputs[input];
        let Some(v) = self.value_of[operand.index()] else { return Ok(None) };
        if !matches!(self.roles[v], Some(BufferRole::Weight { .. })) {
            return Ok(None);
        }
        let f16 = self.options.f16_weights;
        let desc = self.graph.desc(operand);
        let elem = if f16 { 2 } else { 4 };
        let bytes = desc.shape.numel() as u64 * elem;
        if bytes <= limit {
            return Ok(None);
        }
        let splittable = matches!(node.op, Op::Gemm { b_transpose: true, .. } | Op::Gather { axis: 0 });
        let rows = desc.shape.dims()[0];
        let row_bytes = bytes / rows.max(1) as u64;
        let per_chunk = (limit / row_bytes.max(1)) as usize;
        if !splittable || per_chunk == 0 {
            return Err(GpuError::Unsupported {
                op: node.op.name().to_string(),
                message: format!(
                    "weight operand {} ({desc}, {bytes} bytes) exceeds this device's largest storage binding of {limit} bytes, \
                     and only a gemm's B stored [n, k] or a gather's table (axis 0) with rows under the limit can be split",
                    operand.0
                ),
            });
        }
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < rows {
            let count = per_chunk.min(rows - start);
            let value = self.weight_part(operand, f16, Some([start, count])).expect("a weight");
            chunks.push(WeightChunk { value, start, count });
            start += count;
        }
        Ok(Some(chunks))
    }

    /// Which activations fold into the matmul/gemm that feeds them.
    fn fusions(&self) -> Fusions {
        let graph = self.graph;
        let n = graph.nodes.len();
        let mut fusions = Fusions {
            activation: vec![Activation::None; n],
            clamp: vec![None; n],
            absorbed: vec![false; n],
            views: Default::default(),
        };
        let uses = graph.use_counts();
        let producers = graph.producers();
        for (i, node) in graph.nodes.iter().enumerate() {
            if matches!(node.op, Op::Attention(_)) {
                for input in &node.inputs {
                    let Some(p) = producers[input.index()] else { continue };
                    let slice = &graph.nodes[p];
                    if uses[input.index()] != 1 || fusions.views.contains_key(&input.index()) {
                        continue;
                    }
                    if let Some(view) = column_view(graph, slice) {
                        fusions.views.insert(input.index(), view);
                        fusions.absorbed[p] = true;
                    }
                }
                continue;
            }
            // A clamp or ReLU that is a conv2d's only reader runs in its epilogue.
            let bounds = match node.op {
                Op::Clamp { min_value, max_value } => Some((min_value, max_value)),
                Op::Relu => Some((0.0, f32::INFINITY)),
                _ => None,
            };
            if let (Some(bounds), Some(p)) = (bounds, producers[node.inputs[0].index()]) {
                if matches!(graph.nodes[p].op, Op::Conv2d { .. })
                    && uses[node.inputs[0].index()] == 1
                    && fusions.clamp[p].is_none()
                {
                    fusions.clamp[p] = Some(bounds);
                    fusions.absorbed[i] = true;
                    continue;
                }
            }
            let activation = match node.op {
                Op::Gelu => Activation::Gelu,
                Op::Relu => Activation::Relu,
                _ => continue,
            };
            let input = node.inputs[0];
            let Some(p) = producers[input.index()] else { continue };
            let is_matmul = matches!(graph.nodes[p].op, Op::Matmul | Op::Gemm { .. });
            if is_matmul && uses[input.index()] == 1 && fusions.activation[p] == Activation::None {
                fusions.activation[p] = activation;
                fusions.absorbed[i] = true;
            }
        }
        fusions
    }

    fn assemble(self, outputs: Vec<(&ipfs_accelerate_tensor::graph::NamedOperand, Value)>) -> Result<Plan> {
        let is_scratch: Vec<bool> = self.roles.iter().map(Option::is_none).collect();
        let keep: Vec<Value> = outputs.iter().map(|(_, v)| *v).collect();
        let placement = place(&self.steps, &self.bytes, &is_scratch, &keep);
        let mut buffers: Vec<PlanBuffer> =
            placement.sizes.iter().map(|&size| PlanBuffer { size, role: BufferRole::Scratch }).collect();
        // Every value's buffer: scratch from the placement, others one each
        // (only those some dispatch reads).
        let mut buffer_of: Vec<Option<u32>> = placement.buffer_of.iter().map(|b| b.map(|b| b as u32)).collect();
        let used: std::collections::HashSet<Value> =
            self.steps.iter().flat_map(|s| s.reads.iter().flatten()).copied().collect();
        for (v, role) in self.roles.iter().enumerate() {
            if let Some(role) = role {
                let needed = used.contains(&v) || matches!(role, BufferRole::Input { .. });
                if needed {
                    buffer_of[v] = Some(buffers.len() as u32);
                    buffers.push(PlanBuffer { size: self.bytes[v], role: role.clone() });
                }
            }
        }
        if let Some(limit) = self.options.max_binding_bytes {
            if let Some((i, b)) = buffers.iter().enumerate().find(|(_, b)| b.size > limit) {
                return Err(GpuError::Unsupported {
                    op: "plan".into(),
                    message: format!(
                        "buffer {i} ({:?}) needs {} bytes, more than this device's largest storage binding of {limit} bytes \
                         (use smaller batches, or the cpu backend)",
                        b.role, b.size
                    ),
                });
            }
        }
        let dispatches = self
            .steps
            .iter()
            .map(|s| {
                let mut constants: Vec<(String, f64)> = s.constants.iter().map(|(k, v)| (k.to_string(), *v)).collect();
                constants.sort_by(|a, b| a.0.cmp(&b.0));
                let mut bindings: Vec<Option<u32>> = s.reads.iter().map(|r| r.and_then(|v| buffer_of[v])).collect();
                bindings.push(buffer_of[s.write]);
                Dispatch {
                    kernel: s.kernel.to_string(),
                    constants,
                    uniform: s.uniform.clone(),
                    bindings,
                    workgroups: s.workgroups,
                }
            })
            .collect();
        let tensor = |name: &str, operand, v: Value| {
            let desc = self.graph.desc(operand);
            PlanTensor {
                name: name.to_string(),
                buffer: buffer_of[v].expect("inputs and outputs have buffers"),
                dtype: desc.dtype,
                shape: desc.shape.dims().to_vec(),
            }
        };
        let inputs = self
            .graph
            .inputs
            .iter()
            .map(|i| tensor(&i.name, i.operand, self.value_of[i.operand.index()].expect("defined")))
            .collect();
        let outputs = outputs.iter().map(|(o, v)| tensor(&o.name, o.operand, *v)).collect();
        Ok(Plan { version: PLAN_VERSION, buffers, inputs, outputs, dispatches })
    }
}

/// Result of the fusion pass, indexed by node.
struct Fusions {
    /// Activation to run in the epilogue of a matmul/gemm node.
    activation: Vec<Activation>,
    /// Clamp to run in the epilogue of a conv2d node.
    clamp: Vec<Option<(f32, f32)>>,
    /// Activation nodes folded into their producer, and slices read in place.
    absorbed: Vec<bool>,
    /// Operands (slices) an attention reads in place, by operand index.
    views: std::collections::HashMap<usize, ColumnView>,
}

/// A slice of whole rows and a range of columns of a 2-D tensor, as a view
/// of that tensor.
fn column_view(graph: &Graph, node: &ipfs_accelerate_tensor::graph::Node) -> Option<ColumnView> {
    let Op::Slice { starts, sizes } = &node.op else { return None };
    let source = graph.desc(node.inputs[0]).shape.dims();
    let whole_rows = source.len() == 2 && starts[0] == 0 && sizes[0] == source[0];
    whole_rows.then(|| ColumnView { source: node.inputs[0].index(), column: starts[1], row_stride: source[1] })
}
