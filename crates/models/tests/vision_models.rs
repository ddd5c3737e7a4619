//! Tiny random ViT and CLIP models against transformers (goldens by
//! scripts/make-tiny-vision-goldens.py): the whole pipeline, from the
//! committed test images through the image processor and the graphs to
//! logits, embeddings and zero-shot probabilities, on the CPU and (where an
//! adapter exists) on the WebGPU backend. The weights are regenerated from
//! the seeds in the golden, so none are committed.

#[path = "common/lcg_weights.rs"]
mod lcg_weights;
#[path = "common/tiny_vision.rs"]
mod tiny_vision;

use image::RgbImage;
use ipfs_accelerate_models::vision::ImageClassifier;
use ipfs_accelerate_models::{BackendChoice, BackendKind};
use lcg_weights::{write_safetensors, TensorSpec};
use std::path::Path;
use tiny_vision::{clip_dir, golden, vit_dir, Golden};

fn images(model: &ImageClassifier, g: &Golden) -> Vec<RgbImage> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/vision");
    g.images.iter().map(|name| model.read_image(&root.join(name)).unwrap()).collect()
}

fn max_diff(got: &[Vec<f32>], want: &[Vec<f32>]) -> f32 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .flat_map(|(g, w)| {
            assert_eq!(g.len(), w.len());
            g.iter().zip(w).map(|(a, b)| (a - b).abs())
        })
        .fold(0.0, f32::max)
}

/// The backends to check: the CPU, and WebGPU where an adapter exists
/// (required under CI).
fn backends() -> Vec<BackendChoice> {
    let mut out = vec![BackendChoice::Cpu];
    match ipfs_accelerate_gpu::GpuContext::new() {
        Ok(_) => out.push(BackendChoice::WebGpu),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => panic!("CI=true and no webgpu backend: {e}"),
        Err(e) => eprintln!("SKIPPED the webgpu half: {e}"),
    }
    out
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

#[test]
fn tiny_vit_classifies_like_transformers() {
    let g = golden();
    let dir = vit_dir(&g);
    for backend in backends() {
        let model = ImageClassifier::load(dir.path(), backend).unwrap();
        assert_eq!(model.model_type(), "vit");
        assert_eq!(model.labels(), ["cat", "dog", "red car", "tree", "house"]);
        let imgs = images(&model, &g);
        let got = model.classify(&imgs, 5).unwrap();
        // Compare the probabilities of every label, in label order.
        let got: Vec<Vec<f32>> = got
            .iter()
            .map(|scored| model.labels().iter().map(|l| scored.iter().find(|(n, _)| n == l).unwrap().1).collect())
            .collect();
        let want: Vec<Vec<f32>> = g.vit.logits.iter().map(|l| softmax(l)).collect();
        let diff = max_diff(&got, &want);
        eprintln!("ViT {}: max abs diff of probabilities {diff:e}", model.backend_description());
        assert!(diff <= 1e-4, "{}: max abs diff {diff}", model.backend_description());
        // top-k: sorted, truncated.
        let top2 = model.classify(&imgs[..1], 2).unwrap();
        assert_eq!(top2[0].len(), 2);
        assert_eq!(top2[0][0].0, "red car");
        assert!(top2[0][0].1 >= top2[0][1].1);
    }
}

#[test]
fn tiny_clip_embeds_and_zero_shots_like_transformers() {
    let g = golden();
    let dir = clip_dir(&g);
    for backend in backends() {
        let mut model = ImageClassifier::load(dir.path(), backend).unwrap();
        assert_eq!(model.model_type(), "clip");
        assert!(model.is_zero_shot());
        if backend == BackendChoice::WebGpu {
            assert_eq!(model.backend(), BackendKind::WebGpu);
        }
        let desc = model.backend_description();
        let imgs = images(&model, &g);
        let image_embeds = model.embed_images(&imgs).unwrap();
        let d_img = max_diff(&image_embeds, &g.clip.image_embeds);
        let prompts: Vec<String> = g.clip.labels.iter().map(|l| g.clip.template.replace("{}", l)).collect();
        let prompts: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let text_embeds = model.embed_texts(&prompts).unwrap();
        let d_txt = max_diff(&text_embeds, &g.clip.text_embeds);
        let labels: Vec<&str> = g.clip.labels.iter().map(String::as_str).collect();
        model.set_template(&g.clip.template.replace("{}", "{label}")).unwrap();
        let scored = model.zero_shot(&imgs, &labels).unwrap();
        let probs: Vec<Vec<f32>> =
            scored.iter().map(|s| labels.iter().map(|l| s.iter().find(|(n, _)| n == l).unwrap().1).collect()).collect();
        let d_probs = max_diff(&probs, &g.clip.probs);
        eprintln!("CLIP {desc}: max abs diff image {d_img:e}, text {d_txt:e}, zero-shot {d_probs:e}");
        assert!(d_img <= 1e-4 && d_txt <= 1e-4 && d_probs <= 1e-4, "{desc}: {d_img} {d_txt} {d_probs}");
        // Sorted most probable first, all labels.
        assert_eq!(scored[0].len(), labels.len());
        assert!(scored[0].windows(2).all(|w| w[0].1 >= w[1].1));
    }
}

#[test]
fn webgpu_matches_cpu_on_texts_of_other_lengths() {
    let g = golden();
    let dir = clip_dir(&g);
    if !backends().contains(&BackendChoice::WebGpu) {
        return;
    }
    let cpu = ImageClassifier::load(dir.path(), BackendChoice::Cpu).unwrap();
    let gpu = ImageClassifier::load(dir.path(), BackendChoice::WebGpu).unwrap();
    // Lengths that pad differently on the GPU (bucketed), one batch each.
    let texts = ["cat", "a dog .", "a photo of an red car tree dog cat picture of a tree"];
    let diff = max_diff(&gpu.embed_texts(&texts).unwrap(), &cpu.embed_texts(&texts).unwrap());
    eprintln!("CLIP text, webgpu vs cpu: max abs diff {diff:e}");
    assert!(diff <= 1e-4, "{diff}");
}

#[test]
fn bad_input_is_refused_clearly() {
    let g = golden();
    // A ViT whose preprocessing makes 16×16 images for a 32×32 model.
    let dir = vit_dir(&g);
    let mut pre = g.vit.preprocessor_config.clone();
    pre["size"] = serde_json::json!({"height": 16, "width": 16});
    std::fs::write(dir.path().join("preprocessor_config.json"), pre.to_string()).unwrap();
    let model = ImageClassifier::load(dir.path(), BackendChoice::Cpu).unwrap();
    let img = [RgbImage::new(20, 20)];
    let err = model.classify(&img, 1).unwrap_err().to_string();
    assert!(err.contains("32×32") && err.contains("16×16"), "{err}");
    assert!(model.zero_shot(&img, &["cat"]).unwrap_err().to_string().contains("CLIP"));
    assert!(model.classify(&img, 0).is_err());
    assert!(model.classify(&[], 1).is_err());

    // CLIP without labels, or with a template lacking the placeholder.
    let dir = clip_dir(&g);
    let mut model = ImageClassifier::load(dir.path(), BackendChoice::Cpu).unwrap();
    let err = model.classify(&img, 1).unwrap_err().to_string();
    assert!(err.contains("labels"), "{err}");
    assert!(model.zero_shot(&img, &[]).unwrap_err().to_string().contains("label"));
    assert!(model.set_template("no placeholder").is_err());

    // Broken or unknown configs, and a missing tokenizer.
    std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
    let err = ImageClassifier::load(dir.path(), BackendChoice::Cpu).err().unwrap().to_string();
    assert!(err.contains("config.json"), "{err}");
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "bert"}"#).unwrap();
    let err = ImageClassifier::load(dir.path(), BackendChoice::Cpu).err().unwrap().to_string();
    assert!(err.contains("vit") && err.contains("clip"), "{err}");
    let mut cfg = g.clip.config.clone();
    cfg["vision_config"]["patch_size"] = serde_json::json!(5);
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let err = ImageClassifier::load(dir.path(), BackendChoice::Cpu).err().unwrap().to_string();
    assert!(err.contains("patch_size"), "{err}");
    std::fs::write(dir.path().join("config.json"), g.clip.config.to_string()).unwrap();
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let err = ImageClassifier::load(dir.path(), BackendChoice::Cpu).err().unwrap().to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
    // Weights that do not match the config.
    let mut cfg = g.vit.config.clone();
    cfg["hidden_size"] = serde_json::json!(40);
    let dir = vit_dir(&g);
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let err = ImageClassifier::load(dir.path(), BackendChoice::Cpu).err().unwrap().to_string();
    assert!(err.contains("weight"), "{err}");
}

#[test]
fn vit_loads_transformers_5_weight_names_too() {
    let g = golden();
    let dir = vit_dir(&g);
    let want = {
        let model = ImageClassifier::load(dir.path(), BackendChoice::Cpu).unwrap();
        model.classify(&images(&model, &g), 5).unwrap()
    };
    // The same weights under the names transformers 5 saves (layers.N, q_proj, mlp.fc1…).
    let renamed: Vec<TensorSpec> = g
        .vit
        .tensors
        .iter()
        .map(|t| {
            let mut name = t.name.replace(".encoder.layer.", ".layers.");
            for (old, new) in [
                ("attention.attention.query", "attention.q_proj"),
                ("attention.attention.key", "attention.k_proj"),
                ("attention.attention.value", "attention.v_proj"),
                ("attention.output.dense", "attention.o_proj"),
                ("intermediate.dense", "mlp.fc1"),
                ("output.dense", "mlp.fc2"),
            ] {
                name = name.replace(old, new);
            }
            TensorSpec { name, shape: t.shape.clone(), ..*t }
        })
        .collect();
    assert!(renamed.iter().any(|t| t.name == "vit.layers.1.mlp.fc2.weight"));
    write_safetensors(&renamed, &dir.path().join("model.safetensors"));
    let model = ImageClassifier::load(dir.path(), BackendChoice::Cpu).unwrap();
    assert_eq!(model.classify(&images(&model, &g), 5).unwrap(), want);
}
