//! Sharded requests: a model's encoder layers split into stages run as a
//! pipeline on several workers, the activations passing through this host.
//!
//! Each stage keeps the worker it last ran on (so that worker loads only
//! that stage's layers, once), and stages prefer workers that run no other
//! stage of the model. When a stage's worker fails, the stage is re-placed
//! on another worker and the request goes on from the activations it
//! already has: finished stages are not run again.

use crate::dispatch::{call, choose, failed, garbage, note_placement, record_inference, succeeded, Choice, Job};
use crate::pool::{Answer, Inner, PoolError};
use crate::worker::WorkerKind;
use ipfs_accelerate_models::config::ModelConfig;
use ipfs_accelerate_models::{split_layers, LayerRange, StageOutput};
use ipfs_accelerate_tensor::Tensor;
use std::path::Path;
use std::time::Duration;

/// The encoder layers of the model in `dir`, read from its `config.json`.
fn layer_count(dir: &Path) -> Result<usize, String> {
    let config = ModelConfig::load(dir).map_err(|e| e.to_string())?;
    Ok(config.bert(dir).map_err(|e| e.to_string())?.num_hidden_layers)
}

pub(crate) fn handle(inner: &Inner, mut job: Job) {
    let shards = job.shards.unwrap_or(1);
    let ranges = match layer_count(&job.model).and_then(|n| split_layers(n, shards).map_err(|e| e.to_string())) {
        Ok(r) => r,
        Err(e) => {
            let error = PoolError::BadRequest(format!("cannot shard {}: {e}", job.model_key));
            return job.answer(inner, Err(error));
        }
    };
    let mut hidden: Option<Tensor> = None;
    let mut stages = Vec::with_capacity(ranges.len());
    let mut latency = Duration::ZERO;
    let mut calls = 0;
    for (index, &range) in ranges.iter().enumerate() {
        match run_stage(inner, &mut job, &ranges, index, range, hidden.as_ref()) {
            Ok((worker, kind, output, took)) => {
                calls += 1 + job.tried.len();
                job.tried.clear();
                latency += took;
                stages.push(worker.clone());
                match output {
                    StageOutput::Hidden(t) => hidden = Some(t),
                    StageOutput::Embeddings(embeddings) => {
                        let answer = Answer { embeddings, worker, kind, latency, attempts: calls, stages };
                        return job.answer(inner, Ok(answer));
                    }
                }
            }
            Err(error) => return job.answer(inner, Err(error)),
        }
    }
    let error = PoolError::Failed {
        model: job.model_key.clone(),
        attempts: calls,
        failures: vec!["the last stage returned activations instead of embeddings".into()],
    };
    job.answer(inner, Err(error))
}

/// Runs stage `index` on the best worker, moving it to another one when
/// that fails; returns the worker's id and kind, its output and its latency.
fn run_stage(
    inner: &Inner,
    job: &mut Job,
    ranges: &[LayerRange],
    index: usize,
    range: LayerRange,
    hidden: Option<&Tensor>,
) -> Result<(String, WorkerKind, StageOutput, Duration), PoolError> {
    let key = (job.model.clone(), ranges.len(), index);
    let last = index + 1 == ranges.len();
    loop {
        let (placed, others) = {
            let placement = inner.stage_placement.lock().unwrap_or_else(|p| p.into_inner());
            let placed = placement.get(&key).cloned();
            let others: Vec<String> = (0..ranges.len())
                .filter(|&i| i != index)
                .filter_map(|i| placement.get(&(job.model.clone(), ranges.len(), i)).cloned())
                .collect();
            (placed, others)
        };
        // Workers of other stages go last (with those that failed this one).
        let mut avoid = job.tried.clone();
        avoid.extend(others.into_iter().filter(|o| Some(o) != placed.as_ref()));
        let (slot, permit) = match choose(inner, &job.model, &job.model_key, &avoid, placed.as_deref()) {
            Choice::Run(slot, permit) => (slot, permit),
            Choice::Never(reason) => return Err(PoolError::NoWorker { model: job.model_key.clone(), reason }),
            Choice::Wait(reason) => {
                let waited = job.accepted.elapsed();
                if waited >= inner.config.request_timeout || inner.queue.is_closed() {
                    return Err(PoolError::Timeout { model: job.model_key.clone(), waited, reason });
                }
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let texts: Vec<&str> = job.texts.iter().map(String::as_str).collect();
        let (result, took) = call(inner, &slot, || slot.worker.embed_stage(&job.model, &texts, range, hidden));
        let result = match result {
            Ok(StageOutput::Hidden(_)) if last => Err("the last stage returned activations, not embeddings".into()),
            Ok(StageOutput::Embeddings(_)) if !last => Err("a middle stage returned embeddings".into()),
            Ok(StageOutput::Embeddings(v)) => match garbage(&v, job.texts.len()) {
                None => Ok(StageOutput::Embeddings(v)),
                Some(what) => {
                    slot.needs_recovery.store(true, std::sync::atomic::Ordering::SeqCst);
                    Err(format!("garbage ({what}); the worker will be restarted"))
                }
            },
            Ok(output) => Ok(output),
            Err(e) => Err(e.to_string()),
        };
        record_inference(inner, job, &slot, took, result.as_ref().err());
        match result {
            Ok(output) => {
                succeeded(inner, &slot, permit, &stage_key(&job.model_key, ranges.len(), range), took);
                note_placement(inner, &slot, &job.model);
                let worker = slot.worker.id().to_string();
                inner.stage_placement.lock().unwrap_or_else(|p| p.into_inner()).insert(key, worker.clone());
                return Ok((worker, slot.worker.kind(), output, took));
            }
            Err(message) => {
                let message = format!("stage {} (layers {}..{}): {message}", index + 1, range.start, range.end);
                failed(inner, &slot, permit, &message);
                inner.stage_placement.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                job.failures.push(message);
                job.tried.push(slot.worker.id().to_string());
                if job.tried.len() >= inner.config.max_attempts {
                    return Err(PoolError::Failed {
                        model: job.model_key.clone(),
                        attempts: job.tried.len(),
                        failures: std::mem::take(&mut job.failures),
                    });
                }
            }
        }
    }
}

/// The latency table's key of one stage: a stage costs less than the model.
fn stage_key(model: &str, shards: usize, range: LayerRange) -> String {
    format!("{model}#stage{}-{}of{shards}", range.start, range.end)
}
