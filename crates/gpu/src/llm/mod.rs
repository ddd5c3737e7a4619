//! Kernels for decoder-only language models (text generation): linear layers on
//! quantized weights with the dequantization fused, RMS/layer norm, rotary embedding,
//! attention over a KV cache, SwiGLU/GELU, residual adds and embedding lookups.
//!
//! Unlike the encoder kernels, these are not driven by a compiled [`crate::Plan`]: a
//! decode step's shapes change every token and the KV cache lives across steps, so
//! the model's backend (`ipfs_accelerate_models::llm::gpu_ops`) calls them eagerly.
//! [`LlmStream`] records those calls into one command encoder with every buffer kept
//! on the device, and submits only when a result is read back (or the encoder grows
//! long), so a token costs one submission and one readback.
//!
//! * [`pack`] — GGML weight blocks repacked at upload into the word-aligned layout the
//!   kernels read ([`PackedWeights`]).
//! * [`params`] — the kernels' `Params` uniforms and override codes.
//! * [`stream`] — [`LlmStream`], the recorder, and [`BufferPool`], which recycles
//!   activation buffers between steps.

pub mod pack;
pub mod params;
pub mod stream;

pub use pack::{pack_k_quant, KQuant, PackedWeights, WeightFormat};
pub use stream::{BufferPool, LlmStream, PooledBuffer};
