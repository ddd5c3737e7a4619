//! Tiny random BERT and RoBERTa encoders against transformers
//! (goldens by scripts/make-tiny-goldens.py). The weights are regenerated
//! here from the seeds in the golden, so none are committed. This checks the
//! architecture on shapes MiniLM does not have (head_dim 8), token types,
//! RoBERTa's position offset, and packing several sequences in one batch.

#[path = "common/lcg_weights.rs"]
mod lcg_weights;

use ipfs_accelerate_models::config::Architecture;
use ipfs_accelerate_models::engine::{CpuEngine, Engine, GpuEngine};
use ipfs_accelerate_models::{BertModel, Encoded, ModelConfig, SafetensorsFile};
use lcg_weights::{write_safetensors, TensorSpec};
use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    config: serde_json::Value,
    tensors: Vec<TensorSpec>,
    input_ids: Vec<Vec<u32>>,
    token_type_ids: Vec<Vec<u32>>,
    last_hidden_state: Vec<Vec<Vec<f32>>>,
}

fn check(golden_text: &str) {
    let g: Golden = serde_json::from_str(golden_text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), g.config.to_string()).unwrap();
    let weights = dir.path().join("model.safetensors");
    write_safetensors(&g.tensors, &weights);

    let config = ModelConfig::load(dir.path()).unwrap();
    let Architecture::BertFamily(variant) = config.architecture;
    let model =
        BertModel::load(config.bert(dir.path()).unwrap(), variant, &SafetensorsFile::open(&weights).unwrap()).unwrap();
    let batch: Vec<Encoded> = g
        .input_ids
        .iter()
        .zip(&g.token_type_ids)
        .map(|(ids, types)| Encoded { ids: ids.clone(), type_ids: types.clone() })
        .collect();
    let want: Vec<f32> = g.last_hidden_state.iter().flatten().flatten().copied().collect();
    // All sequences in one packed batch, on the CPU and (where an adapter
    // exists) on the WebGPU backend.
    let mut engines = vec![Engine::Cpu(CpuEngine::new())];
    match GpuEngine::new(ipfs_accelerate_models::Precision::F32) {
        Ok(gpu) => engines.push(Engine::WebGpu(Box::new(gpu))),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => panic!("CI=true and no webgpu backend: {e}"),
        Err(e) => eprintln!("SKIPPED the webgpu half: {e}"),
    }
    for engine in &engines {
        let hidden = model.forward(engine, &batch).unwrap();
        let hidden = hidden.as_f32().unwrap();
        assert_eq!(hidden.len(), want.len());
        let max_diff = hidden.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(max_diff <= 1e-4, "{}: max abs diff {max_diff}", engine.describe());
    }
}

#[test]
fn tiny_bert_matches_transformers() {
    check(include_str!("goldens/tiny-bert.json"));
}

#[test]
fn tiny_roberta_matches_transformers() {
    check(include_str!("goldens/tiny-roberta.json"));
}
