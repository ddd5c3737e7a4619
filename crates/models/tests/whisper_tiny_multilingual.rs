//! The multilingual paths of the Whisper transcriber — language detection, a
//! given language, the translate task, timestamps — on a tiny random
//! multilingual Whisper, against transformers' greedy tokens
//! (`goldens/tiny-whisper.json`, made by `scripts/make-tiny-whisper-goldens.py`;
//! the weights are regenerated from the golden's seeds). The real test
//! model, tiny.en, is English-only and cannot reach these paths.

#[path = "common/lcg_weights.rs"]
mod lcg_weights;

use ipfs_accelerate_models::llm::weights::WeightBits;
use ipfs_accelerate_models::whisper::{Task, TranscribeOptions, Transcriber};
use ipfs_accelerate_models::BackendChoice;
use lcg_weights::{write_safetensors, TensorSpec};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
struct Golden {
    config: serde_json::Value,
    generation_config: serde_json::Value,
    tokenizer: serde_json::Value,
    tensors: Vec<TensorSpec>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    language: Option<String>,
    task: String,
    timestamps: bool,
    detected_language: String,
    prompt: Vec<u32>,
    generated: Vec<u32>,
}

fn golden() -> Golden {
    serde_json::from_str(include_str!("goldens/tiny-whisper.json")).unwrap()
}

fn clip() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/speech/clip.wav")
}

/// The golden's model as a Hugging Face Whisper directory.
fn model_dir(g: &Golden) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write =
        |name: &str, value: &serde_json::Value| std::fs::write(dir.path().join(name), value.to_string()).unwrap();
    write("config.json", &g.config);
    write("generation_config.json", &g.generation_config);
    write("tokenizer.json", &g.tokenizer);
    write_safetensors(&g.tensors, &dir.path().join("model.safetensors"));
    dir
}

fn options(case: &Case) -> TranscribeOptions {
    TranscribeOptions {
        timestamps: case.timestamps,
        language: case.language.clone(),
        task: if case.task == "translate" { Task::Translate } else { Task::Transcribe },
    }
}

/// Checks every golden case on `model`: the prompt (language and task
/// tokens), the generated tokens (transformers leaves out a closing
/// end-of-text) and the language reported.
fn check_cases(model: &Transcriber, g: &Golden) {
    let eos = g.config["eos_token_id"].as_u64().unwrap() as u32;
    for case in &g.cases {
        let transcript = model.transcribe_file(&clip(), &options(case)).unwrap();
        assert_eq!(transcript.windows.len(), 1, "{}: a 4 s clip is one window", case.name);
        let window = &transcript.windows[0];
        let generated = &window[case.prompt.len().min(window.len())..];
        let generated = generated.strip_suffix(&[eos]).unwrap_or(generated);
        assert_eq!(
            &window[..case.prompt.len()],
            case.prompt.as_slice(),
            "{}: prompt on {}",
            case.name,
            model.backend_name()
        );
        assert_eq!(generated, case.generated.as_slice(), "{}: tokens on {}", case.name, model.backend_name());
        assert_eq!(transcript.language, case.detected_language, "{}: language", case.name);
    }
}

#[test]
fn detection_languages_tasks_and_timestamps_equal_transformers() {
    let g = golden();
    let dir = model_dir(&g);
    let (model, _) = Transcriber::load(dir.path(), BackendChoice::Cpu, WeightBits::AsStored).unwrap();
    assert!(model.config().is_multilingual);
    check_cases(&model, &g);
}

#[test]
fn the_webgpu_decoder_gives_the_same_tokens() {
    let g = golden();
    let dir = model_dir(&g);
    let model = match Transcriber::load(dir.path(), BackendChoice::WebGpu, WeightBits::AsStored) {
        Ok((model, _)) => model,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => panic!("CI=true and no WebGPU backend: {e}"),
        Err(e) => {
            eprintln!("SKIPPED: no webgpu adapter here: {e}");
            return;
        }
    };
    check_cases(&model, &g);
}

#[test]
fn unknown_language_codes_are_clear_errors() {
    let g = golden();
    let dir = model_dir(&g);
    let (model, _) = Transcriber::load(dir.path(), BackendChoice::Cpu, WeightBits::AsStored).unwrap();
    let options = TranscribeOptions { language: Some("xx".into()), ..Default::default() };
    let err = model.transcribe_file(&clip(), &options).unwrap_err().to_string();
    assert!(err.contains("unknown language code \"xx\""), "{err}");
}
