//! The `ipfs-accelerate` binary end to end: real model, JSON shape, and one
//! clear error line (never a panic) for each kind of bad input.

#[path = "../../models/tests/common/mod.rs"]
mod common;
mod support;

use support::assert_clear_error;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ipfs-accelerate"))
}

fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// A copy of the test model in a temp dir (weights linked, not copied),
/// with `skip` left out.
fn model_copy(model: &Path, skip: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(model, dir.path(), skip);
    dir
}

fn copy_tree(from: &Path, to: &Path, skip: &str) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == skip {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir(&target).unwrap();
            copy_tree(&entry.path(), &target, skip);
        } else if name == "model.safetensors" {
            std::os::unix::fs::symlink(entry.path(), &target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn model() -> Option<PathBuf> {
    common::test_model("all-MiniLM-L6-v2")
}

/// Without `XDG_RUNTIME_DIR` (a headless session), looking for a GPU made
/// Mesa's Vulkan driver print "error: XDG_RUNTIME_DIR is invalid or not set"
/// before the output; the CLI now gives itself a private one.
#[test]
fn a_headless_session_gets_no_xdg_runtime_dir_noise() {
    let Some(m) = model() else { return };
    let out = bin()
        .args(["embed", "--model", m.to_str().unwrap(), "hello world"])
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .expect("the binary starts");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("XDG_RUNTIME_DIR") && !stderr.contains("error"), "{stderr}");
}

#[test]
fn embed_json_is_one_object_with_the_documented_fields() {
    let Some(m) = model() else { return };
    let out = run(
        &["embed", "--model", m.to_str().unwrap(), "--backend", "cpu", "--json", "Hello, world!", "second text"],
        "",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["model_type"], "text_embedding");
    assert_eq!(v["backend"], "cpu");
    assert_eq!(v["dim"], 384);
    assert_eq!(v["model"], m.to_str().unwrap());
    let emb = v["embeddings"].as_array().unwrap();
    assert_eq!(emb.len(), 2);
    let first: Vec<f64> = emb[0].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(first.len(), 384);
    let norm: f64 = first.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "normalized, got {norm}");
    assert!(v["latency_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn embed_reads_stdin_lines_and_matches_arguments() {
    let Some(m) = model() else { return };
    let m = m.to_str().unwrap();
    let from_stdin = run(&["embed", "--model", m, "--json", "-"], "first line\nsecond line\n");
    let from_args = run(&["embed", "--model", m, "--json", "first line", "second line"], "");
    let parse = |o: &Output| -> serde_json::Value { serde_json::from_slice(&o.stdout).unwrap() };
    assert_eq!(parse(&from_stdin)["embeddings"], parse(&from_args)["embeddings"]);
}

#[test]
fn similarity_prints_a_matrix_that_ranks_paraphrases_first() {
    let Some(m) = model() else { return };
    let out = run(
        &[
            "similarity",
            "--model",
            m.to_str().unwrap(),
            "--json",
            "A cat sits on the mat",
            "A kitten rests on a rug",
            "Stock prices fell today",
        ],
        "",
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row =
        |i: usize| -> Vec<f64> { v["matrix"][i].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
    assert!((row(0)[0] - 1.0).abs() < 1e-4);
    assert!(row(0)[1] > row(0)[2] + 0.3, "paraphrase should be much closer: {:?}", row(0));
    let table = run(&["similarity", "--model", m.to_str().unwrap(), "one", "two"], "");
    assert!(String::from_utf8_lossy(&table.stdout).contains("1.0000"));
}

#[test]
fn devices_lists_the_cpu() {
    let out = run(&["devices", "--json"], "");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cpu = &v["devices"][0];
    assert_eq!(cpu["backend"], "cpu");
    assert!(cpu["threads"].as_u64().unwrap() >= 1);
}

#[test]
fn every_command_has_help_with_an_example() {
    for cmd in [&["embed"][..], &["similarity"], &["devices"], &["bench", "embed"]] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = run(&args, "");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("Example"), "{cmd:?}: {text}");
    }
}

#[test]
fn missing_model_dir() {
    let out = run(&["embed", "--model", "/nonexistent/model", "hi"], "");
    assert_clear_error(&out, "does not exist");
}

#[test]
fn empty_input() {
    let out = run(&["embed", "--model", "/nonexistent/model", "-"], "");
    assert_clear_error(&out, "no input texts");
}

#[test]
fn embed_on_webgpu_matches_the_cpu() {
    let Some(m) = model() else { return };
    let m = m.to_str().unwrap();
    let gpu = run(&["embed", "--model", m, "--backend", "webgpu", "--json", "a short text", "and another one"], "");
    if !gpu.status.success() {
        let stderr = String::from_utf8_lossy(&gpu.stderr);
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true and webgpu fails: {stderr}");
        eprintln!("SKIPPED: no webgpu backend here: {stderr}");
        return;
    }
    let cpu = run(&["embed", "--model", m, "--backend", "cpu", "--json", "a short text", "and another one"], "");
    let parse = |o: &Output| -> serde_json::Value { serde_json::from_slice(&o.stdout).unwrap() };
    let (gpu, cpu) = (parse(&gpu), parse(&cpu));
    assert_eq!(gpu["backend"], "webgpu");
    assert!(gpu["device"].as_str().unwrap().starts_with("webgpu ("), "{}", gpu["device"]);
    for (g, c) in gpu["embeddings"].as_array().unwrap().iter().zip(cpu["embeddings"].as_array().unwrap()) {
        let dot: f64 = g
            .as_array()
            .unwrap()
            .iter()
            .zip(c.as_array().unwrap())
            .map(|(x, y)| x.as_f64().unwrap() * y.as_f64().unwrap())
            .sum();
        assert!(dot >= 0.9999, "cosine {dot}");
    }
}

#[test]
fn unknown_backend() {
    let Some(m) = model() else { return };
    let out = run(&["embed", "--model", m.to_str().unwrap(), "--backend", "tpu", "hi"], "");
    assert_clear_error(&out, "unknown backend \"tpu\"");
}

#[test]
fn missing_tokenizer() {
    let Some(m) = model() else { return };
    let dir = model_copy(&m, "tokenizer.json");
    let out = run(&["embed", "--model", dir.path().to_str().unwrap(), "hi"], "");
    assert_clear_error(&out, "tokenizer.json is missing");
}

#[test]
fn missing_config() {
    let Some(m) = model() else { return };
    let dir = model_copy(&m, "config.json");
    let out = run(&["embed", "--model", dir.path().to_str().unwrap(), "hi"], "");
    assert_clear_error(&out, "config.json is missing");
}

#[test]
fn truncated_weights() {
    let Some(m) = model() else { return };
    let dir = model_copy(&m, "model.safetensors");
    let bytes = std::fs::read(m.join("model.safetensors")).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let out = run(&["embed", "--model", dir.path().to_str().unwrap(), "hi"], "");
    assert_clear_error(&out, "not a valid safetensors file");
}

#[test]
fn corrupt_weights() {
    let Some(m) = model() else { return };
    for garbage in [&b"not a safetensors file at all"[..], &[0xff; 8][..], &[]] {
        let dir = model_copy(&m, "model.safetensors");
        std::fs::write(dir.path().join("model.safetensors"), garbage).unwrap();
        let out = run(&["embed", "--model", dir.path().to_str().unwrap(), "hi"], "");
        assert_clear_error(&out, "not a valid safetensors file");
    }
}

#[test]
fn unknown_architecture() {
    let Some(m) = model() else { return };
    let dir = model_copy(&m, "config.json");
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}"#)
        .unwrap();
    let out = run(&["embed", "--model", dir.path().to_str().unwrap(), "hi"], "");
    assert_clear_error(&out, "unknown architecture LlamaForCausalLM");
}

#[test]
fn malformed_config() {
    let Some(m) = model() else { return };
    let dir = model_copy(&m, "config.json");
    std::fs::write(dir.path().join("config.json"), "{ this is not json").unwrap();
    let out = run(&["embed", "--model", dir.path().to_str().unwrap(), "hi"], "");
    assert_clear_error(&out, "config.json is not a valid JSON config");
}

#[test]
fn weights_in_a_dtype_that_cannot_run() {
    let Some(m) = model() else { return };
    let dir = model_copy(&m, "model.safetensors");
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type": "bert", "architectures": ["BertModel"], "vocab_size": 30522, "hidden_size": 8,
            "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16,
            "max_position_embeddings": 32, "type_vocab_size": 2}"#,
    )
    .unwrap();
    // Every weight stored as int8.
    let shapes: Vec<(String, Vec<usize>)> = vec![
        ("embeddings.word_embeddings.weight".into(), vec![30522, 8]),
        ("encoder.layer.0.attention.self.query.weight".into(), vec![8, 8]),
    ];
    let data: Vec<(String, Vec<u8>, Vec<usize>)> =
        shapes.into_iter().map(|(n, s)| (n, vec![1u8; s.iter().product()], s)).collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = data
        .iter()
        .map(|(n, d, s)| {
            (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::I8, s.clone(), d).unwrap())
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.path().join("model.safetensors")).unwrap();
    let out = run(&["embed", "--model", dir.path().to_str().unwrap(), "hi"], "");
    assert_clear_error(&out, "is stored as I8");
}

#[test]
fn similarity_needs_two_texts() {
    let out = run(&["similarity", "--model", "/nonexistent", "only one"], "");
    assert_clear_error(&out, "at least two texts");
}

#[test]
fn embed_by_cid_matches_embed_by_directory() {
    let Some(m) = model() else { return };
    let repo = tempfile::tempdir().unwrap();
    let with_repo = |args: &[&str]| {
        bin().args(args).env("IPFS_ACCELERATE_REPO", repo.path()).stdin(Stdio::null()).output().unwrap()
    };
    let added = with_repo(&["ipfs", "add", "-r", "-Q", m.to_str().unwrap()]);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let cid = String::from_utf8(added.stdout).unwrap().trim().to_string();
    let by_dir = with_repo(&["embed", "--model", m.to_str().unwrap(), "--json", "content addressed"]);
    let parse = |o: &Output| -> serde_json::Value { serde_json::from_slice(&o.stdout).unwrap() };
    // First load exports the verified copy; the second reuses it.
    for _ in 0..2 {
        let by_cid = with_repo(&["embed", "--model", &cid, "--json", "content addressed"]);
        assert!(by_cid.status.success(), "{}", String::from_utf8_lossy(&by_cid.stderr));
        assert_eq!(parse(&by_cid)["embeddings"], parse(&by_dir)["embeddings"]);
        assert_eq!(parse(&by_cid)["model"], cid.as_str());
    }
    assert!(repo.path().join("models").join(&cid).join(".complete").exists());
}

#[test]
fn model_cid_not_in_the_store() {
    let repo = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["embed", "--model", "bafkreieyfpmvuxeupeprndlgh5m2hrztl2gjko5l4l4olzolfpux2anyoa", "hi"])
        .env("IPFS_ACCELERATE_REPO", repo.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_clear_error(&out, "is not in the local block store");
}
