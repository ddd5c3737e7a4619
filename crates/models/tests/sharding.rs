//! Pipeline sharding: all-MiniLM-L6-v2 split into stages, each on its own
//! `TextEmbedder` (as on different workers), gives the unsharded embeddings;
//! a CPU stage feeds a WebGPU stage and back (packed <-> padded); bad stage
//! input is a clear error.

mod common;

use ipfs_accelerate_models::{split_layers, BackendChoice, LayerRange, StageOutput, TextEmbedder};
use ipfs_accelerate_tensor::Tensor;
use std::path::Path;

const TEXTS: [&str; 4] = [
    "Hi",
    "The quick brown fox jumps over the lazy dog.",
    "Content-addressed weights are verified against their hash on every load, natively and in browsers.",
    "short one",
];

fn range(start: usize, end: usize) -> LayerRange {
    LayerRange { start, end }
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs())).fold(0.0, f32::max)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Runs the stages in order, stage `i` on `workers[i]`, passing the packed
/// hidden states through the host as the pool does.
fn run_pipeline(workers: &[&TextEmbedder], ranges: &[LayerRange], texts: &[&str]) -> Vec<Vec<f32>> {
    assert_eq!(workers.len(), ranges.len());
    let mut hidden: Option<Tensor> = None;
    for (i, (worker, &r)) in workers.iter().zip(ranges).enumerate() {
        match worker.embed_stage(texts, r, hidden.as_ref()).unwrap() {
            StageOutput::Hidden(t) => {
                assert!(i + 1 < ranges.len(), "the last stage {r} returned hidden states");
                assert_eq!(t.shape().dims()[1], worker.dim());
                hidden = Some(t);
            }
            StageOutput::Embeddings(v) => {
                assert_eq!(i + 1, ranges.len(), "stage {r} of {} returned embeddings early", ranges.len());
                return v;
            }
        }
    }
    unreachable!("no stage ended at the last layer")
}

fn load_cpu(dir: &Path) -> TextEmbedder {
    TextEmbedder::load(dir, BackendChoice::Cpu).expect("the test model loads")
}

#[test]
fn split_layers_makes_even_contiguous_stages() {
    let r = |v: &[(usize, usize)]| v.iter().map(|&(s, e)| range(s, e)).collect::<Vec<_>>();
    assert_eq!(split_layers(6, 1).unwrap(), r(&[(0, 6)]));
    assert_eq!(split_layers(6, 2).unwrap(), r(&[(0, 3), (3, 6)]));
    assert_eq!(split_layers(6, 3).unwrap(), r(&[(0, 2), (2, 4), (4, 6)]));
    assert_eq!(split_layers(6, 4).unwrap(), r(&[(0, 2), (2, 4), (4, 5), (5, 6)]));
    assert_eq!(split_layers(6, 6).unwrap(), (0..6).map(|i| range(i, i + 1)).collect::<Vec<_>>());
    assert_eq!(split_layers(12, 5).unwrap(), r(&[(0, 3), (3, 6), (6, 8), (8, 10), (10, 12)]));
    let zero = split_layers(6, 0).unwrap_err().to_string();
    assert!(zero.contains("0 shards"), "{zero}");
    let seven = split_layers(6, 7).unwrap_err().to_string();
    assert!(seven.contains("6 encoder layers into 7 shards") && seven.contains("at most 6"), "{seven}");
    assert_eq!(range(2, 4).to_string(), "2..4");
}

#[test]
fn cpu_stages_on_separate_embedders_match_unsharded() {
    let Some(dir) = common::test_model("all-MiniLM-L6-v2") else { return };
    let whole = load_cpu(&dir);
    assert_eq!(whole.num_layers(), 6);
    let want = whole.embed(&TEXTS, TEXTS.len()).unwrap();

    // One stage over all layers is the unsharded model, bit for bit.
    let StageOutput::Embeddings(all) = whole.embed_stage(&TEXTS, range(0, 6), None).unwrap() else {
        panic!("a stage over all layers returns embeddings")
    };
    assert_eq!(all, want);

    let workers = [load_cpu(&dir), load_cpu(&dir), load_cpu(&dir)];
    for shards in [2, 3] {
        let ranges = workers[0].shard_ranges(shards).unwrap();
        let refs: Vec<&TextEmbedder> = workers.iter().take(shards).collect();
        let got = run_pipeline(&refs, &ranges, &TEXTS);
        let diff = max_abs_diff(&got, &want);
        assert!(diff <= 1e-5, "{shards} shards: max abs diff {diff}");
    }
}

/// The model on the WebGPU backend, or `None` (skip) without an adapter, as
/// in `tests/webgpu.rs`.
fn load_webgpu(dir: &Path) -> Option<TextEmbedder> {
    match TextEmbedder::load(dir, BackendChoice::WebGpu) {
        Ok(model) => Some(model),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => panic!("CI=true and the webgpu backend fails: {e}"),
        Err(e) => {
            eprintln!("SKIPPED: no webgpu backend here: {e}");
            None
        }
    }
}

#[test]
fn cpu_and_webgpu_stages_pass_packed_hidden_states_both_ways() {
    let Some(dir) = common::test_model("all-MiniLM-L6-v2") else { return };
    let Some(gpu) = load_webgpu(&dir) else { return };
    let cpu = load_cpu(&dir);
    // Few short texts: the software adapter in CI is slow.
    let texts = &TEXTS[..3];
    let want = cpu.embed(texts, texts.len()).unwrap();
    let ranges = cpu.shard_ranges(2).unwrap();
    // CPU (packed) -> WebGPU (pads the incoming rows), then WebGPU (packs its
    // padded output) -> CPU.
    for (order, workers) in [("cpu->webgpu", [&cpu, &gpu]), ("webgpu->cpu", [&gpu, &cpu])] {
        let got = run_pipeline(&workers, &ranges, texts);
        for (i, (g, c)) in got.iter().zip(&want).enumerate() {
            let cos = cosine(g, c);
            assert!(cos >= 0.9999, "{order}, text {i}: cosine to unsharded cpu {cos}");
        }
    }
    // A stage's plan is cached under its own key: the same stage again
    // compiles nothing new, and the full model alongside adds its own plan.
    let plans = gpu.engine().cached_plans();
    run_pipeline(&[&cpu, &gpu], &ranges, texts);
    assert_eq!(gpu.engine().cached_plans(), plans);
    gpu.embed(texts, texts.len()).unwrap();
    assert_eq!(gpu.engine().cached_plans(), plans + 1);
}

#[test]
fn bad_stage_input_is_a_clear_error() {
    let Some(dir) = common::test_model("all-MiniLM-L6-v2") else { return };
    let model = load_cpu(&dir);
    let texts = &TEXTS[..2];
    let err = |r: LayerRange, hidden: Option<&Tensor>| match model.embed_stage(texts, r, hidden) {
        Ok(_) => panic!("stage {r} with hidden {:?} succeeded", hidden.map(|t| t.shape().to_string())),
        Err(e) => e.to_string(),
    };
    let StageOutput::Hidden(good) = model.embed_stage(texts, range(0, 3), None).unwrap() else {
        panic!("a first stage returns hidden states")
    };
    let (total, dim) = (good.shape().dims()[0], good.shape().dims()[1]);
    assert_eq!(total, model.tokenize(texts).unwrap().iter().map(|e| e.ids.len()).sum::<usize>());

    let wrong_rows = Tensor::from_f32([total - 1, dim], &vec![0.0; (total - 1) * dim]).unwrap();
    let e = err(range(3, 6), Some(&wrong_rows));
    assert!(e.contains(&format!("must be float32 [{total}, {dim}]")) && e.contains("got float32"), "{e}");
    let wrong_width = Tensor::from_f32([total, 7], &vec![0.0; total * 7]).unwrap();
    let e = err(range(3, 6), Some(&wrong_width));
    assert!(e.contains(&format!("[{total}, {dim}]")), "{e}");
    let wrong_dtype = Tensor::from_i32([total, dim], &vec![0; total * dim]).unwrap();
    let e = err(range(3, 6), Some(&wrong_dtype));
    assert!(e.contains("must be float32"), "{e}");
    // Hidden states for other texts (another token count) are caught too.
    let e = match model.embed_stage(&TEXTS, range(3, 6), Some(&good)) {
        Ok(_) => panic!("hidden states of other texts were accepted"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("must be float32"), "{e}");

    let e = err(range(0, 3), Some(&good));
    assert!(e.contains("takes no hidden states"), "{e}");
    let e = err(range(3, 6), None);
    assert!(e.contains("pass the previous stage's hidden states"), "{e}");
    let e = err(range(4, 7), Some(&good));
    assert!(e.contains("goes past the model's 6 encoder layers"), "{e}");
    let e = err(range(3, 3), Some(&good));
    assert!(e.contains("is empty"), "{e}");
    let e = err(range(5, 2), None);
    assert!(e.contains("is empty"), "{e}");
    let e = model.embed_stage(&[], range(0, 6), None).expect_err("no texts is an error").to_string();
    assert!(e.contains("no input texts"), "{e}");
    assert!(model.shard_ranges(7).is_err());
    // The good hidden states still finish the pipeline.
    assert!(matches!(model.embed_stage(texts, range(3, 6), Some(&good)).unwrap(), StageOutput::Embeddings(_)));
}
