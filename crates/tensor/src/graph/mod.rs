//! The graph IR: operands, nodes, and a builder that follows WebNN's `MLGraphBuilder`.
//!
//! A [`Graph`] is plain, serializable data: operand descriptions, nodes in
//! topological order, named inputs and outputs, and constants. Large constants
//! (weights) are referenced by name and travel separately as [`Weights`], so a
//! graph can be sent to a browser while the weights come from IPFS.

mod builder;
pub mod decompose;
mod infer;
mod op;
mod window;

pub use builder::{GemmOptions, GraphBuilder, LayerNormOptions};
pub use infer::infer_output;
pub use op::{
    AttentionOptions, AttentionSegment, BinaryKind, Conv2dOptions, Op, Pool2dOptions, ReduceOptions, UnaryKind,
};
pub use window::window_output_size;

use crate::{DType, Error, Result, Shape, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Handle of an operand (a value) in a graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Operand(pub u32);

impl Operand {
    /// Index into [`Graph::operands`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Data type and shape of an operand (WebNN's `MLOperandDescriptor`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperandDesc {
    /// Element type.
    pub dtype: DType,
    /// Dimensions.
    pub shape: Shape,
}

impl OperandDesc {
    /// A descriptor.
    pub fn new(dtype: DType, shape: impl Into<Shape>) -> Self {
        OperandDesc { dtype, shape: shape.into() }
    }
}

impl std::fmt::Display for OperandDesc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.dtype, self.shape)
    }
}

/// One op applied to operands, producing one operand.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// What it computes.
    #[serde(flatten)]
    pub op: Op,
    /// Its operands, in the op's order.
    pub inputs: Vec<Operand>,
    /// The operand it defines.
    pub output: Operand,
}

/// A graph input or output: a name bound to an operand.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedOperand {
    /// Name used when running the graph.
    pub name: String,
    /// The operand.
    pub operand: Operand,
}

/// Where a constant's data comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ConstantSource {
    /// Small data carried in the graph itself.
    Inline(Tensor),
    /// A weight from the [`Weights`] given alongside the graph.
    Weight(String),
}

/// A constant operand.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Constant {
    /// The operand it defines.
    pub operand: Operand,
    /// Its data.
    pub source: ConstantSource,
}

/// The largest operand a graph may declare (1 TiB): keeps size arithmetic
/// far from overflow whatever a received graph says.
pub const MAX_OPERAND_BYTES: usize = 1 << 40;

/// Named weight tensors that a graph's constants refer to.
pub type Weights = HashMap<String, Tensor>;

/// A computation graph with static shapes, as WebNN's `MLGraph`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    /// Descriptor of every operand, indexed by [`Operand::index`].
    pub operands: Vec<OperandDesc>,
    /// Named inputs.
    pub inputs: Vec<NamedOperand>,
    /// Constants.
    pub constants: Vec<Constant>,
    /// Nodes in topological order.
    pub nodes: Vec<Node>,
    /// Named outputs.
    pub outputs: Vec<NamedOperand>,
}

impl Graph {
    /// Descriptor of an operand.
    pub fn desc(&self, operand: Operand) -> &OperandDesc {
        &self.operands[operand.index()]
    }

    /// How many times each operand is read by a node or named as an output.
    pub fn use_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.operands.len()];
        for node in &self.nodes {
            for input in &node.inputs {
                counts[input.index()] += 1;
            }
        }
        for output in &self.outputs {
            counts[output.operand.index()] += 1;
        }
        counts
    }

    /// Index of the node defining each operand (`None` for inputs and constants).
    pub fn producers(&self) -> Vec<Option<usize>> {
        let mut producers = vec![None; self.operands.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            producers[node.output.index()] = Some(i);
        }
        producers
    }

    /// Checks that the graph is well formed: every operand is defined exactly
    /// once before use, every node's output descriptor is what shape inference
    /// gives, and every weight exists in `weights` with the declared dtype and
    /// shape (when `weights` is given). Graphs received from elsewhere must
    /// pass this before a backend sees them.
    pub fn validate(&self, weights: Option<&Weights>) -> Result<()> {
        for (i, desc) in self.operands.iter().enumerate() {
            let bytes = desc.shape.checked_numel().and_then(|n| desc.dtype.storage_bytes(n));
            if bytes.is_none_or(|b| b > MAX_OPERAND_BYTES) {
                return Err(Error::Graph(format!(
                    "operand {i} ({desc}) is too large or not a whole number of blocks (limit {MAX_OPERAND_BYTES} bytes)"
                )));
            }
        }
        let mut is_defined = vec![false; self.operands.len()];
        for input in &self.inputs {
            mark_defined(&mut is_defined, input.operand, &format!("input {:?}", input.name))?;
        }
        for constant in &self.constants {
            mark_defined(&mut is_defined, constant.operand, "a constant")?;
            let desc = &self.operands[constant.operand.index()];
            let (dtype, shape) = match &constant.source {
                ConstantSource::Inline(t) => (t.dtype(), t.shape().clone()),
                ConstantSource::Weight(name) => match weights.map(|w| w.get(name)) {
                    None => continue,
                    Some(None) => return Err(Error::Graph(format!("weight {name:?} is missing from the weights"))),
                    Some(Some(t)) => (t.dtype(), t.shape().clone()),
                },
            };
            if dtype != desc.dtype || shape != desc.shape {
                return Err(Error::Graph(format!(
                    "constant operand {} is declared {desc} but its data is {dtype}{shape}",
                    constant.operand.0
                )));
            }
        }
        for node in &self.nodes {
            let mut descs = Vec::with_capacity(node.inputs.len());
            for input in &node.inputs {
                if !is_defined.get(input.index()).copied().unwrap_or(false) {
                    return Err(Error::Graph(format!(
                        "{} reads operand {} before it is defined",
                        node.op.name(),
                        input.0
                    )));
                }
                descs.push(&self.operands[input.index()]);
            }
            let inferred = infer_output(&node.op, &descs)?;
            let out = node.output.index();
            if out >= self.operands.len() || is_defined[out] {
                return Err(Error::Graph(format!(
                    "{} defines operand {} twice or out of range",
                    node.op.name(),
                    node.output.0
                )));
            }
            if inferred != self.operands[out] {
                return Err(Error::Graph(format!(
                    "{} output is declared {} but its inputs give {inferred}",
                    node.op.name(),
                    self.operands[out]
                )));
            }
            is_defined[out] = true;
        }
        if self.outputs.is_empty() {
            return Err(Error::Graph("the graph has no outputs".into()));
        }
        for output in &self.outputs {
            if !is_defined.get(output.operand.index()).copied().unwrap_or(false) {
                return Err(Error::Graph(format!("output {:?} is never computed", output.name)));
            }
        }
        Ok(())
    }
}

/// Marks `operand` as defined by `what`; an error if it does not exist or is
/// already defined.
fn mark_defined(is_defined: &mut [bool], operand: Operand, what: &str) -> Result<()> {
    let slot = is_defined
        .get_mut(operand.index())
        .ok_or_else(|| Error::Graph(format!("{what} refers to operand {} which does not exist", operand.0)))?;
    if *slot {
        return Err(Error::Graph(format!("operand {} is defined twice", operand.0)));
    }
    *slot = true;
    Ok(())
}
