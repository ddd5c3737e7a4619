//! The CPU backend: graph → lowered program → memory plan → run.
//!
//! Compiling is cheap (no weight is copied: constants are shared `Bytes`), so
//! callers may compile a graph per input shape. Each executable keeps its arena
//! between runs, so steady-state runs allocate only their outputs. All
//! parallelism goes through the one global rayon pool.

mod instr;
mod kernels;
mod lower;
mod memory;
mod plan;
pub(crate) mod simd;

/// The error function the GELU kernels use (absolute error about 1e-7), for
/// callers outside the graph (the eager decoder backends).
pub use simd::erf;

use crate::graph::{ConstantSource, Graph, Weights};
use crate::{Error, Result, Tensor};
use bytes::Bytes;
use instr::Instr;
use kernels::PackedWeights;
use memory::{Arena, Mem, Slot};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The CPU backend. Threads come from rayon's global pool (one per core by
/// default; set `RAYON_NUM_THREADS` to change it).
///
/// Executables compiled by one backend share its pool of arenas, so compiling
/// a new graph per input shape still allocates no new scratch memory once the
/// largest shape has run.
#[derive(Clone, Default)]
pub struct CpuBackend {
    arenas: Arc<Mutex<Vec<Arena>>>,
    packed: Arc<Mutex<HashMap<PackKey, PackedEntry>>>,
}

/// Identity of a packed constant: its bytes' address and length (the entry
/// holds a clone of the bytes, so the address cannot be reused while cached)
/// and how it is read.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct PackKey {
    addr: usize,
    len: usize,
    n: usize,
    k: usize,
    transposed: bool,
}

struct PackedEntry {
    _keep_alive: Bytes,
    packed: Arc<PackedWeights>,
}

impl std::fmt::Debug for CpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuBackend").field("threads", &self.threads()).finish()
    }
}

impl CpuBackend {
    /// The backend.
    pub fn new() -> Self {
        CpuBackend::default()
    }

    /// Threads the backend computes with.
    pub fn threads(&self) -> usize {
        rayon::current_num_threads()
    }

    /// Validates `graph` against `weights` and compiles it for this backend.
    pub fn compile(&self, graph: &Graph, weights: &Weights) -> Result<CpuExecutable> {
        graph.validate(Some(weights))?;
        let mut lowered = lower::lower(graph)?;
        let plan = plan::plan_memory(graph, &lowered);
        let consts: Vec<Bytes> = graph
            .constants
            .iter()
            .map(|c| match &c.source {
                ConstantSource::Inline(t) => t.bytes().clone(),
                ConstantSource::Weight(name) => weights[name].bytes().clone(),
            })
            .collect();
        let packed = self.pack_constant_operands(&mut lowered.instrs, &plan.slots, &consts);
        Ok(CpuExecutable {
            graph_inputs: graph.inputs.iter().map(|i| (i.name.clone(), graph.desc(i.operand).clone())).collect(),
            outputs: graph.outputs.iter().map(|o| (o.name.clone(), o.operand.index())).collect(),
            output_descs: graph.outputs.iter().map(|o| graph.desc(o.operand).clone()).collect(),
            instrs: lowered.instrs,
            slots: plan.slots,
            arena_bytes: plan.arena_bytes,
            consts,
            packed,
            arenas: self.arenas.clone(),
        })
    }

    /// Packs (or finds already packed) the constant right-hand matrix of each
    /// GEMM, so weights are packed once per backend, not once per compile.
    fn pack_constant_operands(
        &self,
        instrs: &mut [Instr],
        slots: &[Slot],
        consts: &[Bytes],
    ) -> Vec<Arc<PackedWeights>> {
        let mut packed = Vec::new();
        let mut cache = self.packed.lock().unwrap_or_else(|e| e.into_inner());
        for instr in instrs {
            let Instr::Gemm(g) = instr else { continue };
            let memory::Loc::Const(ci) = slots[g.b].loc else { continue };
            if g.a_transpose {
                continue;
            }
            let bytes = &consts[ci];
            let key =
                PackKey { addr: bytes.as_ptr() as usize, len: bytes.len(), n: g.n, k: g.k, transposed: g.b_transpose };
            let entry = cache.entry(key).or_insert_with(|| PackedEntry {
                _keep_alive: bytes.clone(),
                packed: Arc::new(PackedWeights::pack(bytemuck::cast_slice(bytes), g.n, g.k, g.b_transpose)),
            });
            g.packed_b = Some(packed.len());
            packed.push(entry.packed.clone());
        }
        packed
    }
}

/// A compiled graph, ready to run repeatedly.
pub struct CpuExecutable {
    graph_inputs: Vec<(String, crate::graph::OperandDesc)>,
    outputs: Vec<(String, usize)>,
    output_descs: Vec<crate::graph::OperandDesc>,
    instrs: Vec<Instr>,
    slots: Vec<Slot>,
    arena_bytes: usize,
    consts: Vec<Bytes>,
    packed: Vec<Arc<PackedWeights>>,
    arenas: Arc<Mutex<Vec<Arena>>>,
}

impl CpuExecutable {
    /// Runs the graph on named inputs; returns the outputs in the graph's order.
    /// Inputs must match the graph's declared dtypes and shapes exactly.
    pub fn run(&self, inputs: &[(&str, &Tensor)]) -> Result<Vec<Tensor>> {
        let given: HashMap<&str, &Tensor> = inputs.iter().copied().collect();
        for (name, _) in inputs {
            if !self.graph_inputs.iter().any(|(n, _)| n == name) {
                let known: Vec<&str> = self.graph_inputs.iter().map(|(n, _)| n.as_str()).collect();
                return Err(Error::Graph(format!("the graph has no input named {name:?} (its inputs: {known:?})")));
            }
        }
        let mut input_bytes = Vec::with_capacity(self.graph_inputs.len());
        for (name, desc) in &self.graph_inputs {
            let t = given.get(name.as_str()).ok_or_else(|| Error::Graph(format!("input {name:?} was not given")))?;
            if t.dtype() != desc.dtype || t.shape() != &desc.shape {
                return Err(Error::Graph(format!("input {name:?} must be {desc}, got {}{}", t.dtype(), t.shape())));
            }
            input_bytes.push(t.as_bytes());
        }
        let mut arena = self.arenas.lock().map(|mut pool| pool.pop()).unwrap_or_default().unwrap_or_default();
        arena.reserve(self.arena_bytes);
        // Run the whole program on a pool thread: the kernels' parallel loops
        // then fork from inside the pool, and this thread sleeps and wakes once
        // per run instead of once per parallel op.
        let result = rayon::scope(|_| self.execute(&mut arena, &input_bytes));
        if let Ok(mut pool) = self.arenas.lock() {
            pool.push(arena);
        }
        result
    }

    fn execute(&self, arena: &mut Arena, input_bytes: &[&[u8]]) -> Result<Vec<Tensor>> {
        let mem = Mem::new(arena, &self.slots, &self.consts, input_bytes, &self.packed);
        for instr in &self.instrs {
            kernels::execute(instr, &mem)?;
        }
        self.outputs
            .iter()
            .zip(&self.output_descs)
            .map(|((_, id), desc)| Tensor::copy_from_bytes(desc.dtype, desc.shape.clone(), mem.bytes(*id)))
            .collect()
    }

    /// Names of the outputs, in the order `run` returns them.
    pub fn output_names(&self) -> Vec<&str> {
        self.outputs.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Number of instructions after fusion (for tests and diagnostics).
    pub fn instruction_count(&self) -> usize {
        self.instrs.len()
    }

    /// Arena bytes a run uses.
    pub fn arena_bytes(&self) -> usize {
        self.arena_bytes
    }
}
