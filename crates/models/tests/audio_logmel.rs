//! Whisper's log-mel features and mel filterbank against transformers'
//! WhisperFeatureExtractor (goldens from scripts/make-audio-goldens.py).

use std::path::PathBuf;

use ipfs_accelerate_models::audio::{load_audio, LogMelSpectrogram, MelFilterBank, WINDOW_FRAMES};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/audio")
}

fn read_f32(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(golden_dir().join(name)).expect("golden file");
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn meta() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(golden_dir().join("meta.json")).unwrap()).unwrap()
}

fn check_filters(n_mels: usize) {
    let ours = MelFilterBank::new(n_mels, 400, 16_000).unwrap();
    let reference = read_f32(&format!("mel_filters_{n_mels}.bin")); // [201][n_mels]
    assert_eq!(reference.len(), 201 * n_mels);
    assert_eq!((ours.n_mels(), ours.n_freqs()), (n_mels, 201));
    let mut max_diff = 0f32;
    for f in 0..201 {
        for m in 0..n_mels {
            max_diff = max_diff.max((ours.weights()[m * 201 + f] - reference[f * n_mels + m]).abs());
        }
    }
    eprintln!("mel filters {n_mels}: max abs diff {max_diff:e}");
    assert!(max_diff <= 1e-6, "mel filters {n_mels} differ by {max_diff}");
}

#[test]
fn mel_filters_80_match_transformers() {
    check_filters(80);
}

#[test]
fn mel_filters_128_match_transformers() {
    check_filters(128);
}

fn check_features(n_mels: usize) {
    let meta = meta();
    let stored = meta["frames_stored"].as_u64().unwrap() as usize;
    let pad = meta["features"][n_mels.to_string()]["padding_value"].as_f64().unwrap() as f32;
    let audio = load_audio(&golden_dir().join("signal16k.wav")).unwrap();
    assert_eq!(audio.source_rate, 16_000);
    assert_eq!(audio.samples_16k.len(), meta["signal"]["samples"].as_u64().unwrap() as usize);
    let mel = LogMelSpectrogram::new(n_mels).unwrap();
    let ours = mel.compute(&audio.samples_16k).unwrap();
    assert_eq!(ours.len(), n_mels * WINDOW_FRAMES);
    let reference = read_f32(&format!("features_{n_mels}.bin")); // [n_mels][stored]
    let mut max_diff = 0f32;
    for m in 0..n_mels {
        for t in 0..WINDOW_FRAMES {
            let want = if t < stored { reference[m * stored + t] } else { pad };
            max_diff = max_diff.max((ours[m * WINDOW_FRAMES + t] - want).abs());
        }
    }
    eprintln!("log-mel {n_mels}: max abs diff {max_diff:e} over {n_mels}x{WINDOW_FRAMES}");
    assert!(max_diff <= 1e-4, "log-mel {n_mels} differs by {max_diff}");
}

#[test]
fn log_mel_80_matches_transformers() {
    check_features(80);
}

#[test]
fn log_mel_128_matches_transformers() {
    check_features(128);
}

#[test]
fn silence_and_long_input_are_handled() {
    let mel = LogMelSpectrogram::new(80).unwrap();
    // All silence: every value is log10(1e-10) clamped, scaled: (-10 + 4) / 4.
    let silent = mel.compute(&[]).unwrap();
    assert!(silent.iter().all(|&v| (v - -1.5).abs() < 1e-6));
    // Longer than 30 s: truncated, same shape.
    let long: Vec<f32> = (0..700_000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
    assert_eq!(mel.compute(&long).unwrap().len(), 80 * WINDOW_FRAMES);
    // Non-finite samples are an error, not garbage features.
    assert!(mel.compute(&[0.0, f32::NAN]).is_err());
    assert!(LogMelSpectrogram::new(0).is_err());
}
