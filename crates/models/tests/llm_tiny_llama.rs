//! Tiny random Hugging Face Llama-family checkpoints against transformers
//! (goldens by `scripts/make-tiny-llama-goldens.py`): `rotate_half` RoPE,
//! grouped-query attention (4 query heads over 2 key/value heads),
//! `rope_scaling` llama3 and linear, Qwen2's q/k/v biases, tied and untied
//! lm_head. The weights are regenerated here from the seeds in the golden
//! and written as safetensors next to a `config.json`, so the whole Hugging
//! Face loading path runs; none are committed.
//!
//! Each model's golden carries its `config.json` twice: as transformers 5
//! writes it (`rope_theta` and the scaling inside `rope_parameters`) and in
//! the layout transformers 4 wrote and most Hub checkpoints have (top-level
//! `rope_theta` and `rope_scaling`); the script checks transformers loads
//! both to the same model.

#[path = "common/lcg_weights.rs"]
mod lcg_weights;

use ipfs_accelerate_models::llm::generate::{generate_tokens, GenerationOptions};
use ipfs_accelerate_models::llm::model::{LoadedDecoder, ModelSource};
use ipfs_accelerate_models::llm::weights::WeightBits;
use lcg_weights::{write_safetensors, TensorSpec};
use serde::Deserialize;
use std::ops::ControlFlow;

/// Logits must match transformers' float32 ones this closely.
const LOGIT_TOLERANCE: f32 = 1e-4;
/// Greedy steps whose top-2 margin in transformers is at most this are
/// near-ties that float rounding may flip; the comparison stops there.
const TIE_MARGIN: f32 = 1e-3;
/// Q8_0 against transformers run on the same Q8_0-rounded weights (the
/// golden script's emulation of the load-time quantization): only float
/// summation order differs (worst seen 1.4e-5; the bound leaves room for a
/// block value rounding the other way on a different platform).
const Q8_EMULATED_TOLERANCE: f32 = 1e-3;
/// Q8_0 against the float32 logits: the quantization error itself. With
/// these uniform ±0.5 weights it reaches 0.287 (logits span about ±8), as
/// the emulation in transformers gives too; the bound is a sanity check.
const Q8_FLOAT_TOLERANCE: f32 = 0.5;

#[derive(Deserialize)]
struct Case {
    input_ids: Vec<u32>,
    last_logits: Vec<f32>,
    greedy_new_token_ids: Vec<u32>,
    greedy_margins: Vec<f32>,
    last_logits_q8_0: Vec<f32>,
}

#[derive(Deserialize)]
struct Model {
    name: String,
    config: serde_json::Value,
    config_legacy_layout: serde_json::Value,
    tensors: Vec<TensorSpec>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Golden {
    models: Vec<Model>,
}

fn golden() -> Golden {
    serde_json::from_str(include_str!("goldens/tiny-llama.json")).unwrap()
}

/// Writes `model`'s weights with `config` into a temporary directory and
/// loads it at `bits`.
fn load(model: &Model, config: &serde_json::Value, bits: WeightBits) -> (tempfile::TempDir, LoadedDecoder) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    write_safetensors(&model.tensors, &dir.path().join("model.safetensors"));
    let loaded = LoadedDecoder::open(&ModelSource::locate(dir.path()).unwrap(), bits)
        .unwrap_or_else(|e| panic!("{}: {e}", model.name));
    (dir, loaded)
}

fn worst_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max)
}

/// Runs every case of `model` with `config` at float32: the worst logit
/// difference per case, and the greedy mismatches (empty when all agree).
fn compare(model: &Model, config: &serde_json::Value) -> (Vec<f32>, Vec<String>) {
    let (_dir, loaded) = load(model, config, WeightBits::AsStored);
    let mut worst = Vec::new();
    let mut mismatches = Vec::new();
    for case in &model.cases {
        let logits = loaded.sequence(case.input_ids.len()).unwrap().feed(&case.input_ids).unwrap();
        worst.push(worst_difference(&logits, &case.last_logits));

        let options = GenerationOptions { max_tokens: case.greedy_new_token_ids.len(), ..GenerationOptions::default() };
        let out = generate_tokens(&loaded, &case.input_ids, &options, &mut |_| ControlFlow::Continue(())).unwrap();
        // Compare up to the first near-tie (none in the current golden).
        let checked = case.greedy_margins.iter().position(|m| *m <= TIE_MARGIN).unwrap_or(case.greedy_margins.len());
        if checked < case.greedy_margins.len() {
            eprintln!(
                "{} len {}: greedy checked for {checked} steps (near-tie after)",
                model.name,
                case.input_ids.len()
            );
        }
        if out.token_ids.len() < checked || out.token_ids[..checked] != case.greedy_new_token_ids[..checked] {
            mismatches.push(format!(
                "{} len {}: greedy {:?}, transformers {:?}",
                model.name,
                case.input_ids.len(),
                out.token_ids,
                case.greedy_new_token_ids
            ));
        }
    }
    (worst, mismatches)
}

fn check_all(layout: &str, config_of: impl Fn(&Model) -> &serde_json::Value) {
    let g = golden();
    assert_eq!(g.models.len(), 4);
    let mut failures = Vec::new();
    for model in &g.models {
        let (worst, mismatches) = compare(model, config_of(model));
        eprintln!("{layout} {}: worst logit difference per case {worst:?}", model.name);
        for (case, w) in model.cases.iter().zip(&worst) {
            if *w >= LOGIT_TOLERANCE {
                failures.push(format!("{} len {}: logits differ by {w}", model.name, case.input_ids.len()));
            }
        }
        failures.extend(mismatches);
    }
    assert!(failures.is_empty(), "{layout} config.json: {failures:#?}");
}

/// The config.json layout of transformers 4 (top-level `rope_theta`,
/// `rope_scaling`), which most published checkpoints have.
#[test]
fn legacy_config_layout_logits_and_greedy_tokens_equal_transformers() {
    check_all("legacy-layout", |m| &m.config_legacy_layout);
}

/// The config.json exactly as transformers 5 writes it: `rope_theta` and
/// the scaling moved into `rope_parameters` (`llama-untied` alone would pass
/// without reading it, its theta being the default).
#[test]
fn transformers5_config_layout_logits_and_greedy_tokens_equal_transformers() {
    check_all("transformers5-layout", |m| &m.config);
}

/// The rotary frequencies the loader derives for each model: the scaling
/// branches are visible here before any forward pass.
#[test]
fn rotary_frequencies_follow_the_scaling() {
    let g = golden();
    let default: Vec<f32> = (0..8).map(|i| 1.0 / 10000f32.powf((2 * i) as f32 / 16.0)).collect();
    for model in &g.models {
        let (_dir, loaded) = load(model, &model.config_legacy_layout, WeightBits::AsStored);
        let c = loaded.config();
        assert_eq!((c.heads, c.kv_heads, c.head_dim, c.hidden_size, c.context_length), (4, 2, 16, 64, 128));
        let inv_freq = &c.rope.as_ref().unwrap().inv_freq;
        match model.name.as_str() {
            "llama-untied" => assert_eq!(inv_freq, &default),
            "llama-linear" => {
                assert!(inv_freq.iter().zip(&default).all(|(f, d)| (f - d / 2.0).abs() <= 1e-7 * d), "{inv_freq:?}")
            }
            "llama3-tied" => {
                // Wavelengths 2π/f against original 32 / high 4 = 8 and / low 1 = 32:
                // pair 0 (6.3) is kept, pair 1 (19.9) smoothed, pairs 2.. divided by 8.
                assert_eq!(inv_freq[0], default[0]);
                assert!(inv_freq[1] < default[1] && inv_freq[1] > default[1] / 8.0, "{inv_freq:?}");
                assert!(inv_freq[2..].iter().zip(&default[2..]).all(|(f, d)| (f - d / 8.0).abs() <= 1e-7 * d));
            }
            "qwen2" => assert!((inv_freq[7] - 1.0 / 1e6f32.powf(14.0 / 16.0)).abs() < 1e-9, "{inv_freq:?}"),
            other => panic!("unexpected model {other}"),
        }
    }
}

/// `--precision 8`: float32 safetensors quantized to Q8_0 at load (every
/// matrix has a multiple of 32 columns, so all of them are, embedding and
/// lm_head included).
#[test]
fn q8_0_quantized_at_load_equals_the_emulation_in_transformers() {
    let g = golden();
    let mut failures = Vec::new();
    for model in &g.models {
        let (_dir, loaded) = load(model, &model.config_legacy_layout, WeightBits::Eight);
        let (mut to_emulation, mut to_float) = (Vec::new(), Vec::new());
        for case in &model.cases {
            let logits = loaded.sequence(case.input_ids.len()).unwrap().feed(&case.input_ids).unwrap();
            to_emulation.push(worst_difference(&logits, &case.last_logits_q8_0));
            to_float.push(worst_difference(&logits, &case.last_logits));
        }
        eprintln!(
            "q8_0 {}: worst logit difference per case to the emulation {to_emulation:?}, to float32 {to_float:?}",
            model.name
        );
        if !to_emulation.iter().all(|w| *w < Q8_EMULATED_TOLERANCE) {
            failures.push(format!("{}: Q8_0 logits differ from the emulation by {to_emulation:?}", model.name));
        }
        if !to_float.iter().all(|w| *w < Q8_FLOAT_TOLERANCE) {
            failures.push(format!("{}: Q8_0 logits differ from float32 by {to_float:?}", model.name));
        }
        // The quantization did happen: the logits are not the float32 ones.
        if !to_float.iter().any(|w| *w > 1e-3) {
            failures.push(format!("{}: Q8_0 looks like float32 ({to_float:?})", model.name));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
