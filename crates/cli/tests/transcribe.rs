//! `ipfs-accelerate transcribe` end to end on the real Whisper tiny.en (from
//! `scripts/fetch-test-models.sh`): the espeak-ng clip's transcript equals
//! transformers' (golden `whisper_tiny_en.json`), `--json` and
//! `--timestamps` output, and one-line errors for bad files.

mod support;

#[path = "../../models/tests/common/test_models.rs"]
mod test_models;

use std::path::{Path, PathBuf};
use support::{assert_clear_error, run, stdout};

fn speech(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/goldens/speech").join(name)
}

fn golden_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/goldens/whisper_tiny_en.json");
    let golden: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    golden["clip"]["no_timestamps"]["text"].as_str().unwrap().trim().to_string()
}

#[test]
fn the_clip_is_transcribed_as_transformers_does() {
    let Some(model) = test_models::test_model("whisper-tiny.en") else { return };
    let repo = tempfile::tempdir().unwrap();
    let (model, clip) = (model.to_str().unwrap().to_string(), speech("clip.wav"));
    let clip = clip.to_str().unwrap();
    let out = run(repo.path(), &["transcribe", "--backend", "cpu", "--model", &model, clip]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout(&out).trim(), golden_text());
    assert!(String::from_utf8_lossy(&out.stderr).contains("real-time factor"));

    let out = run(repo.path(), &["transcribe", "--backend", "cpu", "--model", &model, "--json", clip]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["text"], golden_text());
    assert_eq!(v["language"], "en");
    assert!((v["duration"].as_f64().unwrap() - 3.99).abs() < 0.01);
    assert!(v["real_time_factor"].as_f64().unwrap() > 0.0);

    let out = run(repo.path(), &["transcribe", "--backend", "cpu", "--model", &model, "--timestamps", clip]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout(&out).trim(), format!("[00:00.00 --> 00:03.80] {}", golden_text()));
}

#[test]
fn bad_files_and_options_are_one_line_errors() {
    let Some(model) = test_models::test_model("whisper-tiny.en") else { return };
    let repo = tempfile::tempdir().unwrap();
    let model = model.to_str().unwrap();
    let not_audio = repo.path().join("notes.wav");
    std::fs::write(&not_audio, b"these are not audio samples").unwrap();
    let out = run(repo.path(), &["transcribe", "--backend", "cpu", "--model", model, not_audio.to_str().unwrap()]);
    assert_clear_error(&out, "audio");
    let out = run(repo.path(), &["transcribe", "--model", model, "/nonexistent/speech.wav"]);
    assert_clear_error(&out, "not a file");
    let clip = speech("clip.wav");
    let out =
        run(repo.path(), &["transcribe", "--backend", "cpu", "--model", model, "--translate", clip.to_str().unwrap()]);
    assert_clear_error(&out, "English-only");
    // A model directory that is not Whisper.
    let out = run(repo.path(), &["transcribe", "--model", repo.path().to_str().unwrap(), clip.to_str().unwrap()]);
    assert_clear_error(&out, "config.json");
}
