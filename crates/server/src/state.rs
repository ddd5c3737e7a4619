//! What every handler shares: the models by name (embedding models and
//! text generators), the pool, the limits and the metrics.

use crate::errors::{ApiError, Flavor};
use crate::generation::{GenerationMetrics, ServedGenerator};
use crate::metrics::Metrics;
use crate::transcription::ServedSpeech;
use crate::{Error, ModelSpec, ServerConfig};
use axum::http::StatusCode;
use ipfs_accelerate_models::config::BertVariant;
use ipfs_accelerate_models::sentence_transformers::SentencePipeline;
use ipfs_accelerate_models::{Architecture, ModelConfig, TextTokenizer};
use ipfs_accelerate_pool::queue::Priority;
use ipfs_accelerate_pool::{Pool, PoolError};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Texts are tokenized up to this many tokens to count them: far past any
/// model's limit, so an over-long text is reported with its real length.
const COUNT_LIMIT: usize = 1 << 24;

/// A model the server serves, described from its files without loading
/// its weights (the pool's workers load those).
pub struct ServedModel {
    /// The name clients use.
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Width of its embeddings.
    pub dim: usize,
    /// The most tokens (special tokens included) one input may have.
    pub max_input_length: usize,
    /// Whether its pipeline normalizes the embeddings.
    pub normalize: bool,
    /// Pooling mode, for `/info`.
    pub pooling: String,
    /// Shared with the blocking threads that count tokens.
    tokenizer: Arc<TextTokenizer>,
}

impl ServedModel {
    /// Reads the model's config, sentence-transformers pipeline and
    /// tokenizer, computing its input limit as the embedder does.
    pub fn load(spec: &ModelSpec) -> Result<Self, Error> {
        let fail = |e: ipfs_accelerate_models::Error| Error::Model { name: spec.name.clone(), message: e.to_string() };
        let config = ModelConfig::load(&spec.dir).map_err(fail)?;
        let bert = config.bert(&spec.dir).map_err(fail)?;
        let Architecture::BertFamily(variant) = config.architecture;
        let offset = match variant {
            BertVariant::Bert => 0,
            BertVariant::Roberta => bert.pad_token_id.unwrap_or(1) + 1,
        };
        let pipeline = SentencePipeline::load(&spec.dir).map_err(fail)?;
        let max_input_length =
            pipeline.max_seq_length.unwrap_or(512).min(bert.max_position_embeddings.saturating_sub(offset));
        let tokenizer = Arc::new(TextTokenizer::load(&spec.dir, COUNT_LIMIT).map_err(fail)?);
        Ok(ServedModel {
            name: spec.name.clone(),
            dir: spec.dir.clone(),
            dim: bert.hidden_size,
            max_input_length,
            normalize: pipeline.normalize,
            pooling: format!("{:?}", pipeline.pooling).to_lowercase(),
            tokenizer,
        })
    }

    /// Tokens of each text, special tokens included, before truncation;
    /// counted on a blocking thread (a body of megabytes takes a while),
    /// handing the texts back.
    pub async fn count_tokens(
        &self,
        texts: Vec<String>,
        flavor: Flavor,
    ) -> Result<(Vec<String>, Vec<usize>), ApiError> {
        let tokenizer = self.tokenizer.clone();
        let counted = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let counts = tokenizer.encode_batch(&refs).map(|e| e.iter().map(|e| e.ids.len()).collect::<Vec<_>>());
            (texts, counts)
        })
        .await;
        let tokenize_error = |e: String| {
            ApiError::new(flavor, StatusCode::UNPROCESSABLE_ENTITY, format!("cannot tokenize the input: {e}"))
        };
        match counted {
            Ok((texts, Ok(counts))) => Ok((texts, counts)),
            Ok((_, Err(e))) => Err(tokenize_error(e.to_string())),
            Err(e) => Err(tokenize_error(e.to_string())),
        }
    }
}

/// The state behind every route.
pub struct AppState {
    /// The embedding models, in the order given (the first is TEI's model).
    pub models: Vec<ServedModel>,
    /// The text-generation models, in the order given.
    pub generators: Vec<ServedGenerator>,
    /// The speech-recognition models, in the order given.
    pub speech: Vec<ServedSpeech>,
    /// The workers.
    pub pool: Arc<Pool>,
    /// The bearer token clients must send, if any.
    pub api_key: Option<String>,
    /// Requests running inference now; one permit each.
    pub inference_slots: Arc<Semaphore>,
    /// `--max-concurrency`.
    pub max_concurrency: usize,
    /// Most texts in one request.
    pub max_batch_size: usize,
    /// Request counts and latencies.
    pub metrics: Metrics,
    /// Generations running, finished and cancelled.
    pub generation_metrics: Arc<GenerationMetrics>,
}

impl AppState {
    /// Loads the models' descriptions and sets up the limits.
    pub fn new(config: &ServerConfig) -> Result<Self, Error> {
        if config.models.is_empty() && config.generators.is_empty() && config.speech.is_empty() {
            return Err(Error::Config("at least one model is required".into()));
        }
        let mut models: Vec<ServedModel> = Vec::new();
        let names = config
            .models
            .iter()
            .map(|m| &m.name)
            .chain(config.generators.iter().map(|g| &g.name))
            .chain(config.speech.iter().map(|s| &s.name));
        let mut seen: Vec<&String> = Vec::new();
        for name in names {
            if seen.contains(&name) {
                return Err(Error::Config(format!("two models are named {name:?}: give each a name of its own")));
            }
            seen.push(name);
        }
        for spec in &config.models {
            if models.iter().any(|m| m.name == spec.name) {
                return Err(Error::Config(format!(
                    "two models are named {:?}: give each a name of its own",
                    spec.name
                )));
            }
            models.push(ServedModel::load(spec)?);
        }
        if config.max_concurrency == 0 {
            return Err(Error::Config("the concurrency limit must be at least 1".into()));
        }
        let generators = config.generators.iter().map(ServedGenerator::new).collect();
        Ok(AppState {
            models,
            generators,
            speech: config.speech.iter().map(ServedSpeech::new).collect(),
            pool: config.pool.clone(),
            api_key: config.api_key.clone().filter(|k| !k.is_empty()),
            inference_slots: Arc::new(Semaphore::new(config.max_concurrency)),
            max_concurrency: config.max_concurrency,
            max_batch_size: config.max_batch_size.max(1),
            metrics: Metrics::default(),
            generation_metrics: Arc::new(GenerationMetrics::default()),
        })
    }

    /// The embedding model called `name` (`None`: the first), or 404
    /// naming the ones served (400 when `name` is a text-generation model).
    pub fn model(&self, name: Option<&str>, flavor: Flavor) -> Result<&ServedModel, ApiError> {
        let found = match name {
            None => self.models.first(),
            Some(name) => self.models.iter().find(|m| m.name == name),
        };
        if found.is_none() {
            let generator = match name {
                None => self.generators.first(),
                Some(name) => self.generators.iter().find(|g| g.name == name),
            };
            if let Some(generator) = generator {
                let names: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
                let others = if names.is_empty() {
                    "this server serves no embedding model".to_string()
                } else {
                    format!("the embedding models here are: {}", names.join(", "))
                };
                let route = match flavor {
                    Flavor::OpenAi => "/v1/chat/completions or /v1/completions",
                    Flavor::Tei => "/generate",
                };
                return Err(ApiError::bad_request(
                    flavor,
                    format!(
                        "`{}` is a text-generation model, not an embedding model: use it with {route}; {others}",
                        generator.name
                    ),
                )
                .param("model")
                .code("model_not_supported"));
            }
        }
        found.ok_or_else(|| {
            let names: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
            ApiError::new(
                flavor,
                StatusCode::NOT_FOUND,
                format!(
                    "the model `{}` does not exist on this server; it serves: {}",
                    name.unwrap_or_default(),
                    names.join(", ")
                ),
            )
            .param("model")
            .code("model_not_found")
        })
    }

    /// The text generator called `name` (`None`: the first), or 404 naming
    /// the ones served (400 when `name` is an embedding model).
    pub fn generator(&self, name: Option<&str>, flavor: Flavor) -> Result<&ServedGenerator, ApiError> {
        let found = match name {
            None => self.generators.first(),
            Some(name) => self.generators.iter().find(|g| g.name == name),
        };
        if let Some(found) = found {
            return Ok(found);
        }
        let names: Vec<&str> = self.generators.iter().map(|g| g.name.as_str()).collect();
        let served = format!("the text-generation models here are: {}", names.join(", "));
        if let Some(embedder) = name.and_then(|n| self.models.iter().find(|m| m.name == n)) {
            let route = match flavor {
                Flavor::OpenAi => "/v1/embeddings",
                Flavor::Tei => "/embed",
            };
            return Err(ApiError::bad_request(
                flavor,
                format!(
                    "`{}` is an embedding model and cannot generate text: use it with {route}; {served}",
                    embedder.name
                ),
            )
            .param("model")
            .code("model_not_supported"));
        }
        Err(ApiError::new(
            flavor,
            StatusCode::NOT_FOUND,
            format!("the model `{}` does not exist on this server; {served}", name.unwrap_or_default()),
        )
        .param("model")
        .code("model_not_found"))
    }

    /// Embeds `texts` with `model` through the pool, waiting on a blocking
    /// thread so the event loop keeps serving.
    pub async fn embed(
        &self,
        model: &ServedModel,
        texts: Vec<String>,
        flavor: Flavor,
    ) -> Result<Vec<Vec<f32>>, ApiError> {
        let pool = self.pool.clone();
        let dir = model.dir.clone();
        let waited = tokio::task::spawn_blocking(move || pool.submit(&dir, texts, Priority::Normal)?.wait()).await;
        match waited {
            Ok(Ok(answer)) => Ok(answer.embeddings),
            Ok(Err(e)) => Err(ApiError::from_pool(flavor, &e)),
            Err(e) => Err(ApiError::from_pool(
                flavor,
                &PoolError::Failed {
                    model: model.dir.display().to_string(),
                    attempts: 0,
                    failures: vec![e.to_string()],
                },
            )),
        }
    }
}
