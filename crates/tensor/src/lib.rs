//! Tensors, the graph IR and the CPU backend of ipfs-accelerate.
//!
//! Models are written once as graphs of standard ops; every backend runs any
//! graph without knowing which model it is. The op vocabulary is W3C WebNN's
//! `MLGraphBuilder` (so lowering to a browser's WebNN is one-to-one), plus
//! fused ops such as [`graph::Op::Attention`] that carry a decomposition into
//! WebNN ops ([`graph::decompose::decompose_fused`]).
//!
//! - [`DType`], [`Shape`], [`Tensor`]: data (tensors share their bytes, so a
//!   memory-mapped weight file is never copied).
//! - [`GraphBuilder`] builds a [`Graph`]: serializable, validated, static shapes.
//! - [`CpuBackend`] compiles a graph to a fused, memory-planned program and
//!   runs it on all cores.
//!
//! ```
//! use ipfs_accelerate_tensor::{CpuBackend, DType, GraphBuilder, LayerNormOptions, Tensor};
//! let mut b = GraphBuilder::new();
//! let x = b.input("x", DType::Float32, [1, 4])?;
//! let y = b.layer_normalization(x, LayerNormOptions::default())?;
//! let (graph, weights) = b.build(&[("y", y)])?;
//! let mut exe = CpuBackend::new().compile(&graph, &weights)?;
//! let out = exe.run(&[("x", &Tensor::from_f32([1, 4], &[1.0, 2.0, 3.0, 4.0])?)])?;
//! let y = out[0].as_f32().unwrap();
//! assert!((y[0] + 1.3416).abs() < 1e-3);
//! # Ok::<(), ipfs_accelerate_tensor::Error>(())
//! ```
#![deny(missing_docs)]

pub mod cpu;
mod dtype;
mod error;
pub mod graph;
pub mod quant;
pub mod shape;
mod tensor;

pub use cpu::{CpuBackend, CpuExecutable};
pub use dtype::DType;
pub use error::{Error, Result};
pub use graph::{Conv2dOptions, GemmOptions, Graph, GraphBuilder, LayerNormOptions, Operand, Pool2dOptions, Weights};
pub use shape::Shape;
pub use tensor::Tensor;
