//! Text generation from Python: loading a decoder (a `.gguf` file or a
//! model directory), running one generation with the GIL released, streaming
//! each piece of text to an optional Python callable, and Ctrl-C.
//!
//! The generation runs on the calling thread inside `allow_threads`; its
//! per-piece callback takes the GIL back only briefly: to call `on_text`
//! (every piece) and to let Python handle signals (every piece when there is
//! a callable, else at most every 100 ms).

use crate::errors::{Error, Result};
use crate::model;
use crate::wait::{run_interruptible, WaitError};
use ipfs_accelerate_models::llm::chat_template::ChatMessage;
use ipfs_accelerate_models::llm::generate::{FinishReason, GenerationOptions};
use ipfs_accelerate_models::llm::sampler::SamplingOptions;
use ipfs_accelerate_models::llm::text::{Prompt, TextGeneration, TextGenerator, TextOptions};
use ipfs_accelerate_models::llm::weights::WeightBits;
use ipfs_accelerate_models::Error as ModelError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often signals are checked when no `on_text` callable takes the GIL
/// on every piece anyway.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// One generation as the Python layer asks for it (values already checked
/// there; the model crate checks them again).
pub struct Request {
    /// Plain text to continue, or a conversation (role, content) to render
    /// with the model's chat template.
    pub prompt: PromptArg,
    /// Most new tokens.
    pub max_tokens: usize,
    /// 0 = greedy.
    pub temperature: f32,
    /// 0 = all tokens.
    pub top_k: usize,
    /// 1.0 = all tokens.
    pub top_p: f32,
    /// 1.0 = off.
    pub repetition_penalty: f32,
    /// `None`: a seed from the operating system.
    pub seed: Option<u64>,
    /// Strings that end the generation (not included in the text).
    pub stop: Vec<String>,
}

/// What to continue.
pub enum PromptArg {
    /// Plain text.
    Text(String),
    /// (role, content) pairs.
    Chat(Vec<(String, String)>),
}

/// The path generation loads for `name`: a `.gguf` file, or a directory
/// (holding `config.json` + `model.safetensors`, or one `.gguf` file) found
/// as [`model::resolve`] finds embedding models.
pub fn locate(name: &str, enable_ipfs: bool) -> Result<PathBuf> {
    let path = Path::new(name);
    let is_gguf = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    if path.is_file() {
        if !is_gguf {
            return Err(Error::ModelNotFound(format!(
                "{name} is a file but not a .gguf model: pass a .gguf file or a model directory"
            )));
        }
        return Ok(path.to_path_buf());
    }
    if is_gguf {
        return Err(Error::ModelNotFound(format!("{name} does not exist: pass the path of an existing .gguf file")));
    }
    let dir = model::resolve(name, enable_ipfs)?.dir;
    // An embedding model's directory: say so instead of a config error.
    if dir.join("config.json").is_file() && ipfs_accelerate_pool::worker::model_support(&dir).is_none() {
        return Err(Error::UnsupportedModelType(format!(
            "{} is a text-embedding model, not a text-generation model: run it with embed(); generate() needs a \
             decoder-only language model (a .gguf file, or a Hugging Face llama, mistral, qwen2 or gpt2 directory)",
            dir.display()
        )));
    }
    Ok(dir)
}

/// Loads the generator at `path` with the GIL released (Ctrl-C interrupts
/// the wait; the load then finishes in the background and is dropped).
pub fn load(py: Python<'_>, path: &Path) -> PyResult<Arc<TextGenerator>> {
    let owned = path.to_path_buf();
    let loaded = match run_interruptible(py, None, move || TextGenerator::load(&owned, WeightBits::AsStored)) {
        Ok(loaded) => loaded,
        Err(WaitError::Python(e)) => return Err(e),
        Err(WaitError::TimedOut | WaitError::Lost) => {
            return Err(Error::Inference(format!("loading {} ended without an answer", path.display())).into())
        }
    };
    loaded.map(Arc::new).map_err(|e| load_error(e, path).into())
}

/// A model-crate error met while loading `path`, as the package's error.
fn load_error(e: ModelError, path: &Path) -> Error {
    let shown = path.display();
    match e {
        ModelError::InvalidOption(m) => Error::InvalidInput(m),
        ModelError::MissingFile { .. } | ModelError::ModelDirMissing(_) | ModelError::Io { .. } => {
            Error::ModelNotFound(format!("cannot load {shown}: {e}"))
        }
        ModelError::Config { ref message, .. }
            if message.contains("text-generation architecture") || message.contains("for text generation") =>
        {
            Error::UnsupportedModelType(format!("{shown} is not a text-generation model this version runs: {e}"))
        }
        other => Error::Inference(format!("cannot load {shown}: {other}")),
    }
}

/// A model-crate error met while generating, as the package's error.
fn generation_error(e: ModelError) -> Error {
    match e {
        ModelError::InvalidOption(m) => Error::InvalidInput(m),
        other => Error::Inference(format!("generation failed: {other}")),
    }
}

/// Runs `request` on `generator`, calling `on_text` (when given) with each
/// piece of text. A callable that raises cancels the generation and its
/// exception is raised; one that returns `False` cancels it (the result says
/// `"cancelled"`). Ctrl-C cancels it and raises KeyboardInterrupt.
pub fn run(
    py: Python<'_>,
    generator: &TextGenerator,
    request: Request,
    on_text: Option<Py<PyAny>>,
) -> PyResult<TextGeneration> {
    let prompt = match request.prompt {
        PromptArg::Text(text) => Prompt::Text(text),
        PromptArg::Chat(messages) => {
            if !generator.has_chat_template() {
                return Err(Error::InvalidInput(
                    "this model has no chat template: pass the text to continue as prompt= instead of messages=".into(),
                )
                .into());
            }
            Prompt::Chat(messages.into_iter().map(|(role, content)| ChatMessage::new(role, content)).collect())
        }
    };
    let options = TextOptions {
        generation: GenerationOptions {
            max_tokens: request.max_tokens,
            sampling: SamplingOptions {
                temperature: request.temperature,
                top_k: request.top_k,
                top_p: request.top_p,
                repetition_penalty: request.repetition_penalty,
                seed: request.seed,
            },
            eos_ids: Vec::new(),
            truncate_prompt: false,
        },
        stop: request.stop,
        ignore_eos: false,
    };
    options.generation.sampling.validate().map_err(generation_error)?;
    // The exception that ended the generation (Ctrl-C, or raised by on_text).
    let mut raised: Option<PyErr> = None;
    let mut last_check = Instant::now();
    let mut on_piece = |piece: &str| -> ControlFlow<()> {
        if on_text.is_none() && last_check.elapsed() < SIGNAL_POLL {
            return ControlFlow::Continue(());
        }
        last_check = Instant::now();
        Python::with_gil(|py| match deliver(py, on_text.as_ref(), piece) {
            Ok(flow) => flow,
            Err(e) => {
                raised = Some(e);
                ControlFlow::Break(())
            }
        })
    };
    let outcome = py.allow_threads(|| generator.generate(&prompt, &options, &mut on_piece));
    if let Some(e) = raised {
        return Err(e);
    }
    let generation = outcome.map_err(generation_error)?;
    // The last piece may have been the one before a Ctrl-C.
    py.check_signals()?;
    Ok(generation)
}

/// Checks signals, then hands `piece` to `on_text`: Break when it returns
/// `False`, its exception when it raises.
fn deliver(py: Python<'_>, on_text: Option<&Py<PyAny>>, piece: &str) -> PyResult<ControlFlow<()>> {
    py.check_signals()?;
    let Some(callable) = on_text else { return Ok(ControlFlow::Continue(())) };
    let answer = callable.call1(py, (piece,))?;
    let answer = answer.bind(py);
    if answer.is_instance_of::<PyBool>() && !answer.is_truthy()? {
        return Ok(ControlFlow::Break(()));
    }
    Ok(ControlFlow::Continue(()))
}

/// The result as the dict the Python layer returns.
pub fn to_dict<'py>(py: Python<'py>, generation: &TextGeneration) -> PyResult<Bound<'py, PyDict>> {
    let tokens = &generation.tokens;
    let finish_reason = match tokens.finish_reason {
        FinishReason::Length => "length",
        FinishReason::Stop => "stop",
        FinishReason::Cancelled => "cancelled",
    };
    let d = PyDict::new(py);
    d.set_item("text", &generation.text)?;
    d.set_item("token_ids", &tokens.token_ids)?;
    d.set_item("prompt_tokens", tokens.prompt_tokens)?;
    d.set_item("completion_tokens", tokens.token_ids.len())?;
    d.set_item("finish_reason", finish_reason)?;
    d.set_item("tokens_per_second", tokens.tokens_per_second())?;
    d.set_item("prefill_tokens_per_second", tokens.prefill_tokens_per_second())?;
    d.set_item("decode_tokens_per_second", tokens.decode_tokens_per_second())?;
    Ok(d)
}
