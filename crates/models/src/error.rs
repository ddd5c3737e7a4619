//! The one error type of this crate.

use std::path::PathBuf;

/// What can go wrong loading or running a model. Every message says what is
/// wrong and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model directory does not exist.
    #[error("model directory {0} does not exist: pass a directory holding config.json, tokenizer.json and the weights (scripts/fetch-test-models.sh fetches the test model)")]
    ModelDirMissing(PathBuf),
    /// A file the model needs is missing.
    #[error("{path} is missing: {hint}")]
    MissingFile {
        /// The missing file.
        path: PathBuf,
        /// What to do.
        hint: &'static str,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A JSON configuration file is malformed.
    #[error("{path} is not a valid {what}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What the file should be.
        what: &'static str,
        /// The parse error.
        message: String,
    },
    /// `config.json` names an architecture this build cannot run.
    #[error("unknown architecture {architecture} (model_type {model_type:?}): supported text-embedding architectures are {supported}")]
    UnknownArchitecture {
        /// `architectures[0]` from config.json.
        architecture: String,
        /// `model_type` from config.json.
        model_type: String,
        /// What is supported.
        supported: &'static str,
    },
    /// The weights file is corrupt or not safetensors.
    #[error("{path} is not a valid safetensors file ({message}); download it again")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A GGUF file is malformed: what is wrong and the byte offset where it
    /// was found, so a corrupt download can be told from an unsupported file.
    #[error("{} is not a valid GGUF file: {message} (at byte offset {offset})", .path.display())]
    Gguf {
        /// The file (`<memory>` for bytes parsed in memory).
        path: PathBuf,
        /// Where in the file the problem was found.
        offset: u64,
        /// What is wrong.
        message: String,
    },
    /// A weight the architecture needs is absent or has the wrong shape.
    #[error(
        "weight {name}: {message}; the weights do not match the model's configuration (config.json or GGUF metadata)"
    )]
    Weight {
        /// The tensor name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A weight is stored in a dtype this build cannot load.
    #[error("weight {name} is stored as {dtype}, which cannot be loaded; use a float32 or float16 safetensors model, or a GGUF in a supported type")]
    WeightDType {
        /// The tensor name.
        name: String,
        /// The stored dtype.
        dtype: String,
    },
    /// The tokenizer failed to load or encode.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The caller gave no input.
    #[error("no input texts were given: pass at least one text (or `-` to read lines from stdin)")]
    EmptyInput,
    /// An option is out of range.
    #[error("{0}")]
    InvalidOption(String),
    /// An audio file or buffer cannot be decoded or turned into features:
    /// what is wrong with it (empty, truncated, corrupt, unsupported codec,
    /// too long for one-shot decoding).
    #[error("audio: {0}")]
    Audio(String),
    /// The WebGPU backend failed (no adapter, a device error, an op it cannot run).
    #[error("{0}")]
    Backend(String),
    /// An image could not be decoded (empty, corrupt, truncated, unsupported
    /// or over the size limit); the message says which and what to do.
    #[error("{0}")]
    Image(String),
    /// The backend failed.
    #[error(transparent)]
    Tensor(#[from] ipfs_accelerate_tensor::Error),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}
