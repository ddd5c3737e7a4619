//! A tiny random GPT-2 against transformers' `GPT2LMHeadModel` (goldens by
//! `scripts/make-tiny-gpt2-goldens.py`). The weights are regenerated here
//! from the seeds in the golden and written as safetensors with the golden's
//! `config.json`, so the whole Hugging Face loading path runs; none are
//! committed.

#[path = "common/lcg_weights.rs"]
mod lcg_weights;

use ipfs_accelerate_models::llm::generate::{generate_tokens, GenerationOptions};
use ipfs_accelerate_models::llm::model::{LoadedDecoder, ModelSource};
use ipfs_accelerate_models::llm::weights::WeightBits;
use lcg_weights::{write_safetensors, TensorSpec};
use serde::Deserialize;
use std::ops::ControlFlow;

#[derive(Deserialize)]
struct Case {
    input_ids: Vec<u32>,
    last_logits: Vec<f32>,
    greedy_new_token_ids: Vec<u32>,
}

#[derive(Deserialize)]
struct Golden {
    config: serde_json::Value,
    tensors: Vec<TensorSpec>,
    cases: Vec<Case>,
}

/// Writes the model into a temporary directory and loads it at `bits`.
fn load(g: &Golden, bits: WeightBits) -> (tempfile::TempDir, LoadedDecoder) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), g.config.to_string()).unwrap();
    write_safetensors(&g.tensors, &dir.path().join("model.safetensors"));
    let model = LoadedDecoder::open(&ModelSource::locate(dir.path()).unwrap(), bits).unwrap();
    (dir, model)
}

fn golden() -> Golden {
    serde_json::from_str(include_str!("goldens/tiny-gpt2.json")).unwrap()
}

#[test]
fn logits_and_greedy_tokens_equal_transformers() {
    let g = golden();
    let (_dir, model) = load(&g, WeightBits::AsStored);
    for case in &g.cases {
        let logits = model.sequence(case.input_ids.len()).unwrap().feed(&case.input_ids).unwrap();
        let worst = logits.iter().zip(&case.last_logits).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{:?}: logits differ from transformers by {worst}", case.input_ids);

        let options = GenerationOptions { max_tokens: case.greedy_new_token_ids.len(), ..GenerationOptions::default() };
        let out = generate_tokens(&model, &case.input_ids, &options, &mut |_| ControlFlow::Continue(())).unwrap();
        assert_eq!(out.token_ids, case.greedy_new_token_ids, "{:?}", case.input_ids);
    }
}

#[test]
fn float16_weights_stay_close_to_float32() {
    let g = golden();
    let (_dir, model) = load(&g, WeightBits::Sixteen);
    for case in &g.cases {
        let logits = model.sequence(case.input_ids.len()).unwrap().feed(&case.input_ids).unwrap();
        let worst = logits.iter().zip(&case.last_logits).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 2e-2, "{:?}: float16 logits differ by {worst}", case.input_ids);
    }
}

#[test]
fn positions_beyond_the_context_are_refused() {
    let g = golden();
    let (_dir, model) = load(&g, WeightBits::AsStored);
    let context = model.config().context_length;
    assert_eq!(context, 64);
    let e = model.sequence(65).err().unwrap().to_string();
    assert!(e.contains("exceed the model's context of 64"), "{e}");
    // A generation that would run past the context stops at its end.
    let options = GenerationOptions { max_tokens: 100, ..GenerationOptions::default() };
    let out = generate_tokens(&model, &[1; 60], &options, &mut |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(out.token_ids.len(), 4);
}

/// A word-level `tokenizer.json` whose tokens are `t0` … `t99`, so the
/// Hugging Face text path (tokenizer files, chat template, streaming) runs
/// on the tiny model.
fn write_tokenizer(dir: &std::path::Path) {
    let vocab: serde_json::Map<String, serde_json::Value> = (0..100).map(|i| (format!("t{i}"), i.into())).collect();
    let tokenizer = serde_json::json!({
        "version": "1.0",
        "added_tokens": [{"id": 99, "content": "t99", "single_word": false, "lstrip": false, "rstrip": false,
                          "normalized": false, "special": true}],
        "pre_tokenizer": {"type": "Whitespace"},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": false},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "t0"}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let config = serde_json::json!({
        "eos_token": "t99",
        "chat_template": "{% for m in messages %}t1 {{ m['content'] }} t2 {% endfor %}{% if add_generation_prompt %}t3{% endif %}"
    });
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
}

#[test]
fn a_hugging_face_directory_generates_text_end_to_end() {
    use ipfs_accelerate_models::llm::chat_template::ChatMessage;
    use ipfs_accelerate_models::llm::text::{Prompt, TextGenerator, TextOptions};
    let g = golden();
    let (dir, _) = load(&g, WeightBits::AsStored);
    write_tokenizer(dir.path());
    let generator = TextGenerator::load(dir.path(), WeightBits::AsStored).unwrap();
    let case = &g.cases[0];
    let prompt: Vec<String> = case.input_ids.iter().map(|id| format!("t{id}")).collect();
    let options = TextOptions {
        generation: GenerationOptions { max_tokens: case.greedy_new_token_ids.len(), ..GenerationOptions::default() },
        ignore_eos: true,
        ..TextOptions::default()
    };
    let mut streamed = String::new();
    let out = generator
        .generate(&Prompt::Text(prompt.join(" ")), &options, &mut |piece| {
            streamed.push_str(piece);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(out.tokens.token_ids, case.greedy_new_token_ids);
    let words: Vec<String> = case.greedy_new_token_ids.iter().map(|id| format!("t{id}")).collect();
    assert_eq!(out.text.split_whitespace().collect::<Vec<_>>(), words);
    assert_eq!(streamed, out.text);

    // The chat template from tokenizer_config.json frames the message.
    let chat = Prompt::Chat(vec![ChatMessage::new("user", "t5 t6")]);
    assert_eq!(generator.encode(&chat).unwrap(), [1, 5, 6, 2, 3]);
    // The end-of-sequence token (t99) is never part of the text.
    let stop = TextOptions { ignore_eos: false, ..options };
    let out = generator.generate(&chat, &stop, &mut |_| ControlFlow::Continue(())).unwrap();
    assert!(!out.tokens.token_ids.contains(&99));
}
