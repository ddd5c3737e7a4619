//! `ipfs-accelerate serve`: the HTTP API (crates/server) over a resource
//! pool — the one a `pool.toml` describes, or one local worker — for the
//! embedding models, and text generation and speech recognition in this
//! process for the generation models (GGUF files, Llama/Mistral/Qwen2/GPT-2
//! directories) and Whisper models.

use crate::config::FetchArgs;
use crate::model_ref::{self, ModelArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use ipfs_accelerate_gpu::{GpuContext, ADAPTER_ENV};
use ipfs_accelerate_ipfs::FsBlockstore;
use ipfs_accelerate_models::llm::weights::WeightBits;
use ipfs_accelerate_models::{BackendChoice, Precision};
use ipfs_accelerate_pool::journal::{self, Journal};
use ipfs_accelerate_pool::{LocalWorker, Pool, PoolConfig, Worker};
use ipfs_accelerate_server::{GeneratorSpec, ModelSpec, Server, ServerConfig, SpeechSpec};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Serve OpenAI- and Hugging Face TEI/TGI-compatible embeddings, text generation and
/// transcription over HTTP.
#[derive(Args)]
#[command(after_help = "Examples:
  ipfs-accelerate serve --model ~/.cache/ipfs-accelerate/test-models/all-MiniLM-L6-v2
  ipfs-accelerate serve --addr 127.0.0.1:0 --model minilm=all-MiniLM-L6-v2 --backend cpu
  ipfs-accelerate serve --model minilm=sentence-transformers/all-MiniLM-L6-v2 --pool pool.toml --api-key KEY
  ipfs-accelerate serve --model smollm=SmolLM2-135M-Instruct.Q4_1.gguf --model whisper=whisper-tiny.en
  curl http://127.0.0.1:8000/v1/embeddings -H 'Content-Type: application/json' \\
       -d '{\"model\": \"minilm\", \"input\": [\"Hello, world\"]}'
  curl http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' \\
       -d '{\"model\": \"smollm\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}'
  curl http://127.0.0.1:8000/v1/audio/transcriptions -F model=whisper -F file=@speech.wav

Once the models are resolved and the socket is bound, one line `listening on http://ADDR`
is printed on stdout. Ctrl-C or SIGTERM stops taking connections and exits once the
requests in flight are answered. Routes, limits and error shapes: docs/server.md.")]
pub struct ServeArgs {
    /// Address to listen on. The default serves this machine only; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: SocketAddr,
    /// A model to serve, as NAME=REF or REF (named after REF's last path component). REF is
    /// anything `embed --model` takes: a directory, a name from `models ls`, a CID, or a
    /// Hugging Face id. Repeat for several; the first embedding model is the one TEI's /embed
    /// uses by default. A .gguf file, a directory holding one, or a directory whose
    /// config.json has model_type llama, mistral, qwen2 or gpt2 is a text-generation model
    /// (/v1/chat/completions, /v1/completions, /generate), loaded at start-up and run here; one
    /// whose model_type is whisper serves /v1/audio/transcriptions and /v1/audio/translations.
    #[arg(long = "model", value_name = "[NAME=]REF", required = true)]
    models: Vec<String>,
    /// Run on the resource pool this file describes (docs/pool.md) instead of one local worker.
    #[arg(long, value_name = "POOL.TOML")]
    pool: Option<PathBuf>,
    /// Without --pool, the one worker's backend: auto (native WebGPU when a hardware GPU is
    /// found, else the CPU), cpu, or webgpu (any adapter, software ones included).
    #[arg(long, default_value = "auto")]
    backend: String,
    /// Weight precision of a webgpu worker: 32 or 16.
    #[arg(long, default_value = "32")]
    precision: String,
    /// Weight precision of safetensors generation models: 4, 8, 16 or 32 [default: as
    /// stored, float32]. GGUF weights always run as stored.
    #[arg(long, value_name = "BITS")]
    generation_precision: Option<String>,
    /// Require `Authorization: Bearer KEY` on every route but /health.
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// The pool's journal, which `stats` and `pool status` read [default: the pool file's,
    /// else $IPFS_ACCELERATE_DATA_DIR/journal.sqlite3].
    #[arg(long, value_name = "PATH")]
    journal: Option<PathBuf>,
    /// Inference requests running at once; more are answered 429 at once.
    #[arg(long, value_name = "N", default_value_t = 512)]
    max_concurrency: usize,
    /// Largest request body in bytes; larger ones are answered 413.
    #[arg(long, value_name = "N", default_value_t = 2 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Largest uploaded recording (/v1/audio/*) in bytes; larger ones are answered 413.
    #[arg(long, value_name = "N", default_value_t = 25 * 1024 * 1024)]
    max_audio_bytes: usize,
    /// Most texts in one request.
    #[arg(long, value_name = "N", default_value_t = 2048)]
    max_batch_size: usize,
    #[command(flatten)]
    fetch: FetchArgs,
}

/// Runs `serve` until Ctrl-C or SIGTERM.
pub fn run(args: ServeArgs) -> Result<()> {
    let Resolved { models, generation, speech: speech_dirs } = resolve_models(&args)?;
    let bits = match &args.generation_precision {
        Some(p) => WeightBits::parse(p)?,
        None => WeightBits::AsStored,
    };
    let mut generators = Vec::with_capacity(generation.len());
    for (name, path) in generation {
        eprintln!("loading the text-generation model {name} from {}", path.display());
        generators.push(GeneratorSpec::load(name, &path, bits)?);
    }
    let mut speech = Vec::with_capacity(speech_dirs.len());
    // Speech runs in this process, on --backend (the CPU under a pool, whose
    // workers do not transcribe).
    let speech_backend = match args.pool {
        Some(_) => BackendChoice::Cpu,
        None => BackendChoice::parse(&args.backend)
            .map_err(|_| anyhow::anyhow!("unknown backend {:?} for serve: use auto, cpu or webgpu", args.backend))?,
    };
    for (name, dir) in speech_dirs {
        eprintln!("loading the speech model {name} from {}", dir.display());
        let (spec, notice) = SpeechSpec::load_on(name, &dir, bits, speech_backend)?;
        if let Some(notice) = notice {
            eprintln!("{notice}");
        }
        eprintln!("  {}", spec.transcriber.backend_name());
        speech.push(spec);
    }
    let pool = match &args.pool {
        Some(file) => Arc::new(super::pool::start(file, args.journal.as_deref())?.pool),
        // Generation and speech models run in this process: no worker to start.
        None if models.is_empty() => Arc::new(Pool::new(PoolConfig::default())),
        None => Arc::new(local_pool(&args)?),
    };
    // The gateway serves the local block store, so other hosts can fetch
    // (and verify) the weights of the models served here.
    let blocks = match args.fetch.repo.dir().and_then(|dir| Ok(FsBlockstore::open(dir)?)) {
        Ok(store) => Some(Arc::new(store) as Arc<dyn ipfs_accelerate_ipfs::BlockSource + Send + Sync>),
        Err(e) => {
            eprintln!("warning: /ipfs/ is not served: {e:#}");
            None
        }
    };
    let config = ServerConfig {
        api_key: args.api_key.clone(),
        max_concurrency: args.max_concurrency,
        max_body_bytes: args.max_body_bytes,
        max_audio_bytes: args.max_audio_bytes,
        max_batch_size: args.max_batch_size,
        blocks,
        handle_signals: true,
        generators,
        speech,
        ..ServerConfig::new(args.addr, models, pool)
    };
    let server = Server::start(config)?;
    let addr = server.addr();
    if !addr.ip().is_loopback() {
        eprintln!("warning: serving the API to the network on {addr}");
    }
    if args.api_key.is_none() && !addr.ip().is_loopback() {
        eprintln!("warning: no --api-key: anyone who can reach {addr} can use it");
    }
    println!("listening on http://{addr}");
    std::io::stdout().flush()?;
    server.wait().context("the server stopped")?;
    Ok(())
}

/// A model loaded in this process: its name and path.
type LocalRef = (String, PathBuf);

/// The models of `--model` arguments, by kind.
struct Resolved {
    /// Embedding models (run by the pool's workers).
    models: Vec<ModelSpec>,
    /// Text-generation models.
    generation: Vec<LocalRef>,
    /// Speech-recognition (Whisper) models.
    speech: Vec<LocalRef>,
}

/// `--model [NAME=]REF` → the embedding, generation and speech models,
/// each checked.
fn resolve_models(args: &ServeArgs) -> Result<Resolved> {
    let mut specs: Vec<ModelSpec> = Vec::new();
    let mut generation: Vec<LocalRef> = Vec::new();
    let mut speech: Vec<LocalRef> = Vec::new();
    for arg in &args.models {
        let (name, reference) = split_model_arg(arg)?;
        let taken = specs.iter().any(|s| s.name == name) || generation.iter().chain(&speech).any(|(n, _)| *n == name);
        if taken {
            bail!("two models are named {name:?}: give each its own with --model NAME=REF");
        }
        let local = Path::new(reference);
        if local.is_file() {
            if !is_gguf(local) {
                bail!(
                    "--model {arg}: {reference} is a file but not a .gguf file; pass a model directory or a .gguf file"
                );
            }
            generation.push((name, local.to_path_buf()));
            continue;
        }
        let model = ModelArgs { model: reference.to_string(), fetch: args.fetch.clone() };
        let dir = model_ref::resolve(&model).with_context(|| format!("cannot resolve --model {arg}"))?;
        if !dir.is_dir() {
            bail!(
                "--model {arg}: {} is not a model directory, a .gguf file, a stored name, a CID or a Hugging Face id",
                reference
            );
        }
        match model_kind(&dir)? {
            ModelKind::Generation => generation.push((name, dir)),
            ModelKind::Speech => speech.push((name, dir)),
            ModelKind::Embedding => specs.push(ModelSpec { name, dir }),
        }
    }
    Ok(Resolved { models: specs, generation, speech })
}

fn is_gguf(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// What a model directory serves.
#[derive(Debug, PartialEq, Eq)]
enum ModelKind {
    /// Embeddings, run by the pool's workers.
    Embedding,
    /// Text generation: a config.json whose `model_type` is a decoder this
    /// project runs, or (without config.json) a .gguf file.
    Generation,
    /// Speech recognition: `model_type` whisper.
    Speech,
}

/// Tells the kind of model `dir` holds from its config.json (or .gguf file).
fn model_kind(dir: &Path) -> Result<ModelKind> {
    let config = dir.join("config.json");
    if !config.is_file() {
        let entries = std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
        let gguf = entries.filter_map(|e| e.ok()).any(|e| is_gguf(&e.path()));
        return Ok(if gguf { ModelKind::Generation } else { ModelKind::Embedding });
    }
    let text = std::fs::read_to_string(&config).with_context(|| format!("cannot read {}", config.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", config.display()))?;
    Ok(match json.get("model_type").and_then(|t| t.as_str()).unwrap_or_default() {
        "llama" | "mistral" | "qwen2" | "gpt2" => ModelKind::Generation,
        "whisper" => ModelKind::Speech,
        _ => ModelKind::Embedding,
    })
}

/// Splits `NAME=REF`; a bare REF is named after its last path component.
fn split_model_arg(arg: &str) -> Result<(String, &str)> {
    let (name, reference) = match arg.split_once('=') {
        Some((name, reference)) => (name.to_string(), reference),
        None => {
            let tail = arg.trim_end_matches('/').rsplit('/').next().unwrap_or(arg);
            // A GGUF file is named without its extension.
            let tail = tail.strip_suffix(".gguf").filter(|t| !t.is_empty()).unwrap_or(tail);
            (tail.to_string(), arg)
        }
    };
    if name.is_empty() || reference.is_empty() {
        bail!("--model {arg:?}: expected NAME=REF or REF");
    }
    Ok((name, reference))
}

/// One local worker for `--backend`, with the journal.
fn local_pool(args: &ServeArgs) -> Result<Pool> {
    let precision = Precision::parse(&args.precision)?;
    let worker: Arc<dyn Worker> = match args.backend.as_str() {
        "cpu" => Arc::new(LocalWorker::cpu("cpu-0")),
        "webgpu" => Arc::new(LocalWorker::wgpu("webgpu-0", precision)),
        "auto" if hardware_gpu() => Arc::new(LocalWorker::wgpu("webgpu-0", precision)),
        "auto" => Arc::new(LocalWorker::cpu("cpu-0")),
        other => bail!("unknown backend {other:?} for serve: use auto, cpu or webgpu (browsers: use --pool)"),
    };
    let path = match &args.journal {
        Some(path) => path.clone(),
        None => journal::default_path()?,
    };
    let journal = Arc::new(Journal::open(&path)?);
    let pool = Pool::with_journal(PoolConfig::default(), journal);
    pool.add_worker(worker);
    for (id, why) in pool.warm_up() {
        eprintln!("warning: worker {id} did not start: {why}");
    }
    Ok(pool)
}

/// Whether `auto` should take WebGPU: a hardware adapter exists, or
/// `IPFS_ACCELERATE_ADAPTER` names one (the rule `embed --backend auto` follows).
fn hardware_gpu() -> bool {
    std::env::var_os(ADAPTER_ENV).is_some()
        || GpuContext::adapters()
            .iter()
            .any(|a| matches!(a.device_type.as_str(), "DiscreteGpu" | "IntegratedGpu" | "VirtualGpu"))
}

#[cfg(test)]
mod tests {
    use super::{model_kind, split_model_arg, ModelKind};

    #[test]
    fn generation_and_speech_models_are_told_from_embedding_models() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        for (model_type, kind) in [
            ("llama", ModelKind::Generation),
            ("qwen2", ModelKind::Generation),
            ("gpt2", ModelKind::Generation),
            ("whisper", ModelKind::Speech),
            ("bert", ModelKind::Embedding),
        ] {
            std::fs::write(&config, format!("{{\"model_type\": \"{model_type}\"}}")).unwrap();
            assert_eq!(model_kind(dir.path()).unwrap(), kind, "{model_type}");
        }
        std::fs::write(&config, "not json").unwrap();
        assert!(model_kind(dir.path()).is_err());
        std::fs::remove_file(&config).unwrap();
        assert_eq!(model_kind(dir.path()).unwrap(), ModelKind::Embedding);
        std::fs::write(dir.path().join("model.Q4_1.gguf"), b"").unwrap();
        assert_eq!(model_kind(dir.path()).unwrap(), ModelKind::Generation);
    }

    #[test]
    fn model_arguments_are_named() {
        assert_eq!(split_model_arg("minilm=/m/all-MiniLM-L6-v2").unwrap(), ("minilm".into(), "/m/all-MiniLM-L6-v2"));
        assert_eq!(split_model_arg("/m/all-MiniLM-L6-v2/").unwrap().0, "all-MiniLM-L6-v2");
        assert_eq!(split_model_arg("sentence-transformers/all-MiniLM-L6-v2").unwrap().0, "all-MiniLM-L6-v2");
        assert_eq!(split_model_arg("/m/SmolLM2.Q4_1.gguf").unwrap().0, "SmolLM2.Q4_1");
        assert!(split_model_arg("=x").is_err());
        assert!(split_model_arg("x=").is_err());
    }
}
