//! Plans: a graph compiled for concrete input shapes into buffers and kernel
//! dispatches, as plain serializable data.
//!
//! A [`Plan`] is what both executors interpret — the native one in
//! [`crate::executor`] and the browser's JavaScript one — so it names kernels
//! by their stable id and carries every uniform as words; it holds no device
//! object and no model knowledge. Weights are referenced by name and bound
//! from the model's weight buffers; small inline constants travel inside.
//!
//! ```text
//! graph (WebNN ops) ──compile──► Plan { buffers, dispatches, inputs, outputs } ──serde──► JSON
//!                                    │
//!                                    └─► executor: create buffers + pipelines + bind groups once,
//!                                        then per run: write inputs, one encoder, read outputs
//! ```

mod compile;
mod lower;
mod memory;

pub use compile::{compile, compile_with, CompileOptions};

use ipfs_accelerate_tensor::DType;
use serde::{Deserialize, Serialize};

/// Version of the plan format; bumped on any incompatible change so an
/// executor refuses plans it would misread.
pub const PLAN_VERSION: u32 = 1;

/// A graph compiled for one set of input shapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// [`PLAN_VERSION`] of the compiler that made it.
    pub version: u32,
    /// Every buffer the plan uses, indexed by [`Dispatch::bindings`].
    pub buffers: Vec<PlanBuffer>,
    /// The graph inputs: where the host writes each one.
    pub inputs: Vec<PlanTensor>,
    /// The graph outputs: where the host reads each one.
    pub outputs: Vec<PlanTensor>,
    /// Kernel dispatches, in order; each one sees the writes of the previous.
    pub dispatches: Vec<Dispatch>,
}

/// One buffer: its size and what fills it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanBuffer {
    /// Size in bytes (a multiple of 4, at least 4).
    pub size: u64,
    /// What it holds.
    pub role: BufferRole,
}

/// What a buffer holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum BufferRole {
    /// A graph input, written by the host before every run.
    Input {
        /// The input's name.
        name: String,
    },
    /// A weight of the model, uploaded once and shared by every plan of it.
    Weight {
        /// The weight's name in the graph's `Weights`.
        name: String,
        /// How it is stored on the device: `float32`, or `float16` for the
        /// weights of `matmul_f16w`/`gather_f16w` (converted at upload).
        dtype: DType,
        /// Only rows `[start, start + count)` of the weight (its first axis):
        /// one block of a weight too large for one storage binding.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rows: Option<[usize; 2]>,
    },
    /// A small constant carried in the plan (little-endian words).
    Constant {
        /// Its bytes, as 32-bit words.
        words: Vec<u32>,
    },
    /// Intermediate values and outputs; one scratch buffer serves several
    /// values whose lifetimes do not overlap.
    Scratch,
}

/// A graph input or output in the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanTensor {
    /// Its name in the graph.
    pub name: String,
    /// Index into [`Plan::buffers`]; the tensor starts at byte 0.
    pub buffer: u32,
    /// Element type.
    pub dtype: DType,
    /// Dimensions.
    pub shape: Vec<usize>,
}

/// One kernel dispatch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dispatch {
    /// Kernel id in [`crate::kernels::KERNELS`].
    pub kernel: String,
    /// `override` constants, sorted by name.
    pub constants: Vec<(String, f64)>,
    /// The kernel's `Params` uniform, as 32-bit words.
    pub uniform: Vec<u32>,
    /// Buffer of each storage binding, in the kernel's binding order (inputs,
    /// then the output); `None` binds a placeholder (an absent optional input).
    pub bindings: Vec<Option<u32>>,
    /// Workgroups to dispatch.
    pub workgroups: [u32; 3],
}

impl Plan {
    /// Total bytes of scratch buffers (intermediates and outputs).
    pub fn scratch_bytes(&self) -> u64 {
        self.buffers.iter().filter(|b| b.role == BufferRole::Scratch).map(|b| b.size).sum()
    }
}
