//! all-MiniLM-L6-v2 against sentence-transformers' own output (goldens made by
//! scripts/make-goldens.py): token ids equal, cosine ≥ 0.99999, max |Δ| ≤ 1e-4.

mod common;

use ipfs_accelerate_models::{BackendChoice, TextEmbedder};
use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    max_seq_length: usize,
    texts: Vec<String>,
    token_ids: Vec<Vec<u32>>,
    embeddings: Vec<Vec<f32>>,
}

fn golden() -> Golden {
    let text = include_str!("goldens/all-MiniLM-L6-v2.json");
    serde_json::from_str(text).expect("golden file parses")
}

fn load() -> Option<TextEmbedder> {
    let dir = common::test_model("all-MiniLM-L6-v2")?;
    Some(TextEmbedder::load(&dir, BackendChoice::Cpu).expect("the test model loads"))
}

#[test]
fn token_ids_match_sentence_transformers() {
    let Some(model) = load() else { return };
    let g = golden();
    assert_eq!(model.max_seq_length(), g.max_seq_length);
    let texts: Vec<&str> = g.texts.iter().map(String::as_str).collect();
    let encoded = model.tokenize(&texts).unwrap();
    for (i, (e, want)) in encoded.iter().zip(&g.token_ids).enumerate() {
        assert_eq!(&e.ids, want, "token ids of text {i} ({:?})", g.texts[i]);
    }
}

fn check_against_golden(batch_size: usize) {
    let Some(model) = load() else { return };
    let g = golden();
    let texts: Vec<&str> = g.texts.iter().map(String::as_str).collect();
    let ours = model.embed(&texts, batch_size).unwrap();
    assert_eq!(ours.len(), g.embeddings.len());
    for (i, (a, b)) in ours.iter().zip(&g.embeddings).enumerate() {
        assert_eq!(a.len(), 384);
        let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let cosine = dot / (na * nb);
        let max_diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(cosine >= 0.99999, "text {i} ({:?}): cosine {cosine}", g.texts[i]);
        assert!(max_diff <= 1e-4, "text {i} ({:?}): max abs diff {max_diff}", g.texts[i]);
    }
}

#[test]
fn embeddings_match_sentence_transformers_batch_1() {
    check_against_golden(1);
}

#[test]
fn embeddings_match_sentence_transformers_batch_5() {
    check_against_golden(5);
}

#[test]
fn embeddings_match_sentence_transformers_one_batch() {
    check_against_golden(32);
}
