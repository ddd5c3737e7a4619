//! The HTTP API of ipfs-accelerate: OpenAI- and Hugging Face
//! text-embeddings-inference-compatible embeddings over the resource pool,
//! OpenAI- and text-generation-inference-compatible text generation
//! (streamed or not), the trustless gateway, Prometheus metrics and an
//! OpenAPI description.
//!
//! Handlers parse and check a request on the event loop, then wait for the
//! pool's answer on a blocking thread; every error is a JSON body in the
//! shape of the API the route belongs to ([`errors`]).
//!
//! * [`state`]: the models by name (described from their files; the pool's
//!   workers load the weights), the pool, the limits.
//! * [`openai`], [`tei`]: the two APIs. [`openapi`]: `/openapi.json`.
//! * [`generation`]: the served text generators, the request checks both
//!   generation APIs share and the streaming of generated text;
//!   [`chat`] (OpenAI's completions) and [`tgi`] (TGI's `/generate`) on it.
//! * [`transcription`]: OpenAI's speech routes on the served Whisper models.
//! * [`auth`], [`limits`]: the API key, the concurrency limit and request
//!   metrics, as middleware. [`metrics`]: the Prometheus text.
//! * [`router`]: the one list of routes; add new ones there.
//!
//! ```no_run
//! use ipfs_accelerate_pool::{LocalWorker, Pool, PoolConfig};
//! use ipfs_accelerate_server::{ModelSpec, Server, ServerConfig};
//! use std::sync::Arc;
//! let pool = Arc::new(Pool::new(PoolConfig::default()));
//! pool.add_worker(Arc::new(LocalWorker::cpu("cpu-0")));
//! let model = ModelSpec { name: "minilm".into(), dir: "models/all-MiniLM-L6-v2".into() };
//! let server = Server::start(ServerConfig::new("127.0.0.1:0".parse()?, vec![model], pool))?;
//! println!("listening on http://{}", server.addr());
//! server.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod auth;
pub mod body;
pub mod chat;
pub mod dashboard;
pub mod errors;
pub mod generation;
pub mod limits;
pub mod metrics;
pub mod openai;
pub mod openapi;
pub mod router;
mod server;
pub mod state;
pub mod tei;
pub mod tgi;
pub mod transcription;

pub use server::{RunningServer, Server, ShutdownHandle};
pub use state::AppState;
pub use transcription::SpeechSpec;

use ipfs_accelerate_ipfs::BlockSource;
use ipfs_accelerate_models::llm::text::TextGenerator;
use ipfs_accelerate_models::llm::weights::WeightBits;
use ipfs_accelerate_pool::Pool;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// A model to serve: the name clients use and its directory.
#[derive(Clone, Debug)]
pub struct ModelSpec {
    /// The name in `model` fields and `/v1/models`.
    pub name: String,
    /// The model directory (config.json, tokenizer.json, model.safetensors).
    pub dir: PathBuf,
}

/// A text-generation model to serve: the name clients use and the loaded
/// generator (loading takes a while, so callers load once and may share
/// one generator between servers).
#[derive(Clone)]
pub struct GeneratorSpec {
    /// The name in `model` fields and `/v1/models`.
    pub name: String,
    /// The model, ready to generate.
    pub generator: Arc<TextGenerator>,
}

impl GeneratorSpec {
    /// Loads `path` (a `.gguf` file, a directory holding one, or a Hugging
    /// Face directory of a Llama, Mistral, Qwen2 or GPT-2 model) with its
    /// weights at `bits`, on the CPU.
    pub fn load(name: impl Into<String>, path: &std::path::Path, bits: WeightBits) -> Result<Self, Error> {
        let name = name.into();
        let generator = TextGenerator::load(path, bits).map_err(|e| Error::Model {
            name: name.clone(),
            message: format!("cannot load the text-generation model {}: {e}", path.display()),
        })?;
        Ok(GeneratorSpec { name, generator: Arc::new(generator) })
    }
}

impl std::fmt::Debug for GeneratorSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratorSpec").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Everything the server needs.
pub struct ServerConfig {
    /// Where to listen; port 0 picks a free one ([`RunningServer::addr`]).
    pub addr: SocketAddr,
    /// The embedding models; the first is the one TEI routes use by default.
    /// May be empty when `generators` is not.
    pub models: Vec<ModelSpec>,
    /// The text-generation models (OpenAI's completions, TGI's `/generate`).
    pub generators: Vec<GeneratorSpec>,
    /// The speech-recognition models (`/v1/audio/transcriptions`).
    pub speech: Vec<SpeechSpec>,
    /// The workers that run them.
    pub pool: Arc<Pool>,
    /// Bearer token every route but `/health` requires, when set.
    pub api_key: Option<String>,
    /// Inference requests (embeddings and generations, streamed ones until
    /// their stream ends) running at once; more are answered 429.
    pub max_concurrency: usize,
    /// Largest request body, in bytes; larger ones are answered 413.
    pub max_body_bytes: usize,
    /// Largest body of the audio routes (an uploaded recording), in bytes.
    pub max_audio_bytes: usize,
    /// Most texts in one request.
    pub max_batch_size: usize,
    /// The block store `/ipfs/{cid}` serves, if any.
    pub blocks: Option<Arc<dyn BlockSource + Send + Sync>>,
    /// Shut down gracefully on Ctrl-C and SIGTERM (the CLI sets this; tests
    /// use [`RunningServer::shutdown`]).
    pub handle_signals: bool,
}

impl ServerConfig {
    /// A config with the default limits: 512 concurrent inference
    /// requests, 2 MiB bodies, 2048 texts per request, no key, no gateway,
    /// no generation or speech models, 25 MiB audio uploads.
    pub fn new(addr: SocketAddr, models: Vec<ModelSpec>, pool: Arc<Pool>) -> Self {
        ServerConfig {
            addr,
            models,
            generators: Vec::new(),
            speech: Vec::new(),
            pool,
            api_key: None,
            max_concurrency: 512,
            max_body_bytes: 2 * 1024 * 1024,
            // OpenAI's limit for an uploaded recording.
            max_audio_bytes: 25 * 1024 * 1024,
            max_batch_size: 2048,
            blocks: None,
            handle_signals: false,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model's files could not be read.
    #[error("model {name}: {message}")]
    Model {
        /// Its name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source} (is the port in use? try --addr 127.0.0.1:0)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The async runtime or the server loop failed.
    #[error("the server stopped: {0}")]
    Io(#[from] std::io::Error),
}
