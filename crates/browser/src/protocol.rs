//! The bridge protocol, version [`PROTOCOL_VERSION`]: JSON control messages
//! and binary tensor frames over one WebSocket per worker page.
//!
//! ```text
//! page → host   hello {capabilities}                 once, first
//! host → page   load {id, model, plan|graph, weights, kernels}
//! page → host   loaded {id, cache} | error {id, message}
//! host → page   run {id, model, inputs: [desc]}  + one binary frame per input
//! page → host   result {id, outputs: [desc]}     + one binary frame per output
//!               | error {id, message}
//! either way    ping {id} / pong {id};  host → page  unload {model}, bye
//! ```
//!
//! A binary frame is a [`FRAME_HEADER`]-byte header — the request id and the
//! tensor's index, both little-endian `u32` — followed by the tensor's bytes
//! (little-endian, row-major). A message the other side cannot parse closes
//! that one connection; nothing else is affected.

use ipfs_accelerate_tensor::DType;
use serde::{Deserialize, Serialize};

/// Version of this protocol; a page speaking another is refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// Bytes before a binary frame's tensor data.
pub const FRAME_HEADER: usize = 8;

/// Name, dtype and shape of a tensor travelling in a binary frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorDesc {
    /// Input or output name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Dimensions.
    pub shape: Vec<usize>,
}

/// One weight buffer the page must fill, by the CIDs of its chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightRef {
    /// Key the plan or graph uses for it (the weight name, and for plans its
    /// stored dtype and row block).
    pub key: String,
    /// Total bytes.
    pub bytes: u64,
    /// CIDs (v1, raw, sha2-256) of consecutive chunks; the page fetches each
    /// from `/ipfs/{cid}?format=raw`, checks its SHA-256 and concatenates.
    pub chunks: Vec<String>,
}

/// What a `load` carries for one kernel: where its WGSL is and its layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelRef {
    /// Kernel id (the plan names it).
    pub id: String,
    /// Binding kinds in order: `uniform`, `read-only-storage`, `storage`.
    pub bindings: Vec<String>,
    /// Whether the kernel needs `shader-f16`.
    pub shader_f16: bool,
}

/// Messages from the host to a page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum HostMessage {
    /// Prepare `model` for runs: a WebGPU plan (with its kernels) or a WebNN
    /// graph, and the weights it reads.
    Load {
        /// Request id.
        id: u32,
        /// Key later `run`s name.
        model: String,
        /// `webgpu` or `webnn`.
        backend: String,
        /// The compiled plan (`webgpu`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan: Option<serde_json::Value>,
        /// The graph with fused ops decomposed (`webnn`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        graph: Option<serde_json::Value>,
        /// Weight buffers.
        weights: Vec<WeightRef>,
        /// Kernels the plan uses (`webgpu`).
        #[serde(default)]
        kernels: Vec<KernelRef>,
    },
    /// Run `model` on the inputs that follow as binary frames.
    Run {
        /// Request id.
        id: u32,
        /// A loaded model key.
        model: String,
        /// The inputs, in frame order.
        inputs: Vec<TensorDesc>,
    },
    /// Forget a model and free its buffers.
    Unload {
        /// The model key.
        model: String,
    },
    /// Liveness check; the page answers `pong` with the same id.
    Ping {
        /// Request id.
        id: u32,
    },
    /// Answer to the page's `ping`.
    Pong {
        /// The ping's id.
        id: u32,
    },
    /// The host is going away; the page should close.
    Bye,
}

/// Messages from a page to the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum PageMessage {
    /// The first message: protocol version and what the browser can do.
    Hello {
        /// The page's [`PROTOCOL_VERSION`].
        version: u32,
        /// Capability report (WebGPU adapter, features, limits; WebNN
        /// contexts; WASM; memory), as the page measured it.
        capabilities: serde_json::Value,
    },
    /// A `load` finished.
    Loaded {
        /// The load's id.
        id: u32,
        /// Weight chunks found in the page's Cache Storage / fetched.
        #[serde(default)]
        cache_hits: u32,
        /// Weight chunks fetched from the bridge.
        #[serde(default)]
        cache_misses: u32,
    },
    /// A `run` finished; the outputs follow as binary frames.
    Result {
        /// The run's id.
        id: u32,
        /// The outputs, in frame order.
        outputs: Vec<TensorDesc>,
    },
    /// A request failed.
    Error {
        /// The failed request's id.
        id: u32,
        /// What went wrong, in the page's words.
        message: String,
    },
    /// Liveness check from the page.
    Ping {
        /// Request id.
        id: u32,
    },
    /// Answer to the host's `ping`.
    Pong {
        /// The ping's id.
        id: u32,
    },
    /// The page is closing.
    Bye,
}

impl PageMessage {
    /// The id of the host request this message answers, if it is an answer.
    pub fn answer_id(&self) -> Option<u32> {
        match self {
            PageMessage::Loaded { id, .. }
            | PageMessage::Result { id, .. }
            | PageMessage::Error { id, .. }
            | PageMessage::Pong { id } => Some(*id),
            PageMessage::Hello { .. } | PageMessage::Ping { .. } | PageMessage::Bye => None,
        }
    }
}

/// Splits a binary frame into (request id, tensor index, data); `None` when
/// it is shorter than the header.
pub fn parse_frame(frame: &[u8]) -> Option<(u32, u32, &[u8])> {
    if frame.len() < FRAME_HEADER {
        return None;
    }
    let id = u32::from_le_bytes(frame[0..4].try_into().ok()?);
    let index = u32::from_le_bytes(frame[4..8].try_into().ok()?);
    Some((id, index, &frame[FRAME_HEADER..]))
}

/// A binary frame for tensor `index` of request `id`.
pub fn frame(id: u32, index: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER + data.len());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_the_documented_json_shape() {
        let run = HostMessage::Run {
            id: 7,
            model: "m".into(),
            inputs: vec![TensorDesc { name: "x".into(), dtype: DType::Int32, shape: vec![2, 3] }],
        };
        let json = serde_json::to_value(&run).unwrap();
        assert_eq!(json["type"], "run");
        assert_eq!(json["inputs"][0]["dtype"], "int32");
        let hello: PageMessage =
            serde_json::from_str(r#"{"type":"hello","version":1,"capabilities":{"webgpu":null}}"#).unwrap();
        assert!(matches!(hello, PageMessage::Hello { version: 1, .. }));
        assert!(serde_json::from_str::<PageMessage>(r#"{"type":"nonsense"}"#).is_err());
    }

    #[test]
    fn frames_round_trip_and_short_ones_are_refused() {
        let f = frame(3, 1, &[9, 8, 7]);
        assert_eq!(parse_frame(&f), Some((3, 1, &[9u8, 8, 7][..])));
        assert_eq!(parse_frame(&f[..7]), None);
    }
}
