//! Times Whisper's encoder and a decode step on the CPU backend (a
//! measurement aid, not a benchmark of record: see benchmarks/whisper/).
//!
//! cargo run --release -p ipfs-accelerate-models --example whisper_profile -- MODEL_DIR

use ipfs_accelerate_models::llm::cpu_ops::CpuOps;
use ipfs_accelerate_models::llm::ops::DecoderOps;
use ipfs_accelerate_models::llm::weights::{WeightBits, WeightFile};
use ipfs_accelerate_models::whisper::encoder::WhisperEncoder;
use ipfs_accelerate_models::whisper::model::WhisperModel;
use ipfs_accelerate_models::whisper::WhisperConfig;
use ipfs_accelerate_models::{CpuEngine, Engine, SafetensorsFile};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).ok_or("usage: whisper_profile MODEL_DIR")?);
    let config = WhisperConfig::load(&dir)?;
    let safetensors = SafetensorsFile::open(&dir.join("model.safetensors"))?;
    let encoder = WhisperEncoder::load(&safetensors, &config)?;
    let file = WeightFile::Safetensors { file: safetensors, bits: WeightBits::AsStored };
    let mut ops = CpuOps;
    let model = WhisperModel::load(&mut ops, &file, &config)?;
    let engine = Engine::Cpu(CpuEngine::new());
    let mel: Vec<f32> = (0..config.num_mel_bins * 3000).map(|i| ((i % 97) as f32 / 97.0) - 0.5).collect();
    for round in 0..3 {
        let t = Instant::now();
        let encoded = encoder.encode(&engine, &mel)?;
        let encode = t.elapsed();
        let encoded = ops.upload(&encoded, config.max_source_positions, config.d_model)?;
        let t = Instant::now();
        let mut state = model.start_window(&mut ops, &encoded)?;
        let start = t.elapsed();
        let t = Instant::now();
        model.decode(&mut ops, &mut state, &[config.decoder_start_token_id])?;
        let steps = 20;
        for _ in 0..steps {
            model.decode(&mut ops, &mut state, &[220])?;
        }
        let step = t.elapsed() / (steps + 1);
        println!("round {round}: encode {encode:.2?}, cross K/V {start:.2?}, decode step {step:.2?}");
    }
    // What the engine's plan cache saves each window after the first:
    // building the encoder graph and compiling it (weights already packed).
    let Engine::Cpu(cpu) = &engine else { unreachable!("a CPU engine") };
    let (mut build, mut compile) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let t = Instant::now();
        let (graph, weights) = encoder.graph()?;
        build.push(t.elapsed());
        let t = Instant::now();
        cpu.backend().compile(&graph, &weights)?;
        compile.push(t.elapsed());
    }
    build.sort();
    compile.sort();
    println!(
        "encoder graph (median of 5): build {:.2?}, compile {:.2?}; cached plans {}",
        build[2],
        compile[2],
        engine.cached_plans()
    );
    Ok(())
}
