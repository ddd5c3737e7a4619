//! `devices` (CPU and GPU adapters), `bench matmul` and `bench embed`'s device line end to end.
//!
//! The GPU parts run on whatever adapter wgpu finds (Mesa's llvmpipe in CI);
//! without one they print a skip notice and pass, unless `CI=true`.

#[path = "../../models/tests/common/mod.rs"]
mod common;
mod support;

use std::process::{Command, Output};

/// Runs the binary; `XDG_RUNTIME_DIR` is set so Mesa stays quiet on stderr.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipfs-accelerate"));
    cmd.args(args).env("XDG_RUNTIME_DIR", std::env::temp_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary starts")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&support::stdout(out)).expect("one JSON object")
}

/// Whether a GPU adapter exists; without one, GPU checks skip (fail with CI=true).
fn have_adapter(v: &serde_json::Value) -> bool {
    let any = !v["gpu_adapters"].as_array().expect("gpu_adapters array").is_empty();
    if !any {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true and no GPU adapter");
        eprintln!("SKIPPED: no GPU adapter");
    }
    any
}

#[test]
fn devices_json_lists_cpu_and_every_adapter() {
    let v = json(&run(&["devices", "--json"], &[]));
    assert_eq!(v["devices"][0]["backend"], "cpu");
    if !have_adapter(&v) {
        assert!(v["webgpu"]["adapter"].is_null());
        return;
    }
    let adapters = v["gpu_adapters"].as_array().unwrap();
    for (i, a) in adapters.iter().enumerate() {
        assert_eq!(a["index"], i);
        for key in ["name", "backend", "device_type", "driver", "driver_info"] {
            assert!(a[key].is_string(), "{key} in {a}");
        }
        assert!(a["shader_f16"].is_boolean());
        assert!(a["features"].is_array());
        assert!(a["limits"]["max_storage_buffer_binding_size"].as_u64().unwrap() > 0);
    }
    let selected: Vec<_> = adapters.iter().filter(|a| a["selected"] == true).collect();
    assert_eq!(selected.len(), 1, "exactly one adapter is what --backend webgpu picks: {v}");
    assert_eq!(v["webgpu"]["adapter"], selected[0]["index"]);
    // On the CI machine (no GPU, Mesa installed) the software adapter is there.
    if let Some(pipe) = adapters.iter().find(|a| a["name"].as_str().unwrap().contains("llvmpipe")) {
        assert_eq!(pipe["backend"], "vulkan");
    }
}

#[test]
fn devices_table_shows_adapters_and_the_selection() {
    let text = support::stdout(&run(&["devices"], &[]));
    assert!(text.starts_with("cpu (available)"), "{text}");
    let v = json(&run(&["devices", "--json"], &[]));
    if !have_adapter(&v) {
        assert!(text.contains("no GPU adapter found"), "{text}");
        return;
    }
    let first = &v["gpu_adapters"][0];
    assert!(text.contains(first["name"].as_str().unwrap()), "{text}");
    assert!(text.contains(&format!("backend:      {}", first["backend"].as_str().unwrap())), "{text}");
    assert!(text.contains("<- --backend webgpu"), "{text}");
    assert!(text.contains("shader-f16:") && text.contains("storage binding"), "{text}");

    // Selecting by name moves the mark, without opening a device.
    let name = first["name"].as_str().unwrap().to_string();
    let by_name = json(&run(&["devices", "--json"], &[("IPFS_ACCELERATE_ADAPTER", &name)]));
    assert_eq!(by_name["webgpu"]["adapter"], 0);
    let missing = run(&["devices"], &[("IPFS_ACCELERATE_ADAPTER", "no-such-adapter-anywhere")]);
    assert!(support::stdout(&missing).contains("matches no adapter"));
}

#[test]
fn devices_without_an_adapter_says_how_to_get_one() {
    // No Metal on Linux: wgpu finds nothing, which is not an error.
    if !cfg!(target_os = "linux") {
        return;
    }
    let out = run(&["devices"], &[("WGPU_BACKEND", "metal")]);
    let text = support::stdout(&out);
    assert!(text.contains("no GPU adapter found"), "{text}");
    assert!(text.contains("mesa-vulkan-drivers"), "{text}");
    let v = json(&run(&["devices", "--json"], &[("WGPU_BACKEND", "metal")]));
    assert_eq!(v["gpu_adapters"].as_array().unwrap().len(), 0);
    assert!(v["webgpu"]["adapter"].is_null());
}

#[test]
fn bench_matmul_measures_both_backends() {
    let devices = json(&run(&["devices", "--json"], &[]));
    let gpu = have_adapter(&devices);
    let backend = if gpu { "both" } else { "cpu" };
    let out = run(&["bench", "matmul", "--sizes", "8,33", "--seconds", "0.2", "--json", "--backend", backend], &[]);
    let v = json(&out);
    let f16 = gpu && v["f16"]["adapter_shader_f16"] == true;
    // Default precision: both where the adapter has shader-f16, else 32.
    assert_eq!(v["precisions"]["f32"], gpu);
    assert_eq!(v["precisions"]["f16"], f16);
    assert_eq!(v["f16"]["measured"], f16);
    let rows = v["results"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (row, n) in rows.iter().zip([8u64, 33]) {
        assert_eq!(row["size"], n);
        assert_eq!(row["flops"].as_f64().unwrap(), 2.0 * (n as f64).powi(3));
        assert!(row["cpu"]["gflops"].as_f64().unwrap() > 0.0, "{row}");
        if !gpu {
            assert!(row["webgpu"].is_null());
            continue;
        }
        let f32_row = &row["webgpu"]["f32"];
        assert_eq!(f32_row["weights"], "f32");
        assert!(f32_row["end_to_end_gflops"].as_f64().unwrap() > 0.0, "{row}");
        assert!(f32_row["vs_cpu"].as_f64().unwrap() > 0.0, "{row}");
        assert!(f32_row["max_rel_diff"].as_f64().unwrap() < 1e-4, "gpu and cpu products differ: {row}");
        let f16_row = &row["webgpu"]["f16"];
        if f16 {
            assert_eq!(f16_row["weights"], "f16");
            assert!(f16_row["end_to_end_gflops"].as_f64().unwrap() > 0.0, "{row}");
            assert!(f16_row["vs_cpu"].as_f64().unwrap() > 0.0, "{row}");
            // f16 B: about 2^-11 relative per weight; the product stays well inside 1e-2.
            let diff = f16_row["max_rel_diff"].as_f64().unwrap();
            assert!(diff < 1e-2, "f16-weight product too far from the cpu: {row}");
        } else {
            assert!(f16_row.is_null(), "{row}");
        }
    }
    if gpu {
        assert!(v["webgpu_adapter"]["name"].is_string());
        let table = support::stdout(&run(&["bench", "matmul", "--sizes", "8", "--seconds", "0.05"], &[]));
        assert!(table.contains("GFLOP/s") && !table.contains("not available in this build"), "{table}");
        if f16 {
            assert!(table.contains(" f16 ") && table.contains("f16: B (the weight) stored as float16"), "{table}");
        } else {
            assert!(table.contains("f16: this adapter has no shader-f16"), "{table}");
        }
    }
}

#[test]
fn bench_matmul_precision_picks_the_rows() {
    let devices = json(&run(&["devices", "--json"], &[]));
    if !have_adapter(&devices) {
        return;
    }
    let bench = |precision: &str| {
        let args = ["bench", "matmul", "--backend", "webgpu", "--sizes", "16", "--seconds", "0.05", "--json"];
        json(&run(&[&args[..], &["--precision", precision]].concat(), &[]))
    };
    let only32 = bench("32");
    assert!(only32["results"][0]["webgpu"]["f32"]["end_to_end_gflops"].as_f64().unwrap() > 0.0);
    assert!(only32["results"][0]["webgpu"]["f16"].is_null());
    assert!(only32["results"][0]["cpu"].is_null());
    assert_eq!(only32["f16"]["measured"], false);
    let only16 = bench("16");
    if only16["f16"]["adapter_shader_f16"] == true {
        assert!(only16["results"][0]["webgpu"]["f32"].is_null());
        assert!(only16["results"][0]["webgpu"]["f16"]["end_to_end_gflops"].as_f64().unwrap() > 0.0);
    } else {
        // No shader-f16: f32 instead, and the note says why.
        assert!(only16["results"][0]["webgpu"]["f32"].is_object());
        assert_eq!(only16["f16"]["note"], "f16: this adapter has no shader-f16");
    }
    let bad = run(&["bench", "matmul", "--precision", "8"], &[]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && stderr.contains("--precision") && stderr.contains("32"), "{stderr}");
}

#[test]
fn bench_matmul_rejects_bad_sizes_clearly() {
    support::assert_clear_error(&run(&["bench", "matmul", "--sizes", "0"], &[]), "matrix size 0");
    support::assert_clear_error(&run(&["bench", "matmul", "--sizes", "8", "--seconds", "0"], &[]), "--seconds");
}

#[test]
fn bench_matmul_webgpu_without_an_adapter_is_one_clear_error() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let env = [("WGPU_BACKEND", "metal")];
    let out = run(&["bench", "matmul", "--backend", "webgpu", "--sizes", "8", "--seconds", "0.05"], &env);
    support::assert_clear_error(&out, "no GPU adapter");
    // `both` measures the CPU and says why webgpu is missing.
    let both = run(&["bench", "matmul", "--sizes", "8", "--seconds", "0.05", "--json"], &env);
    let v = json(&both);
    assert!(v["webgpu_error"].as_str().unwrap().contains("no GPU adapter"));
    assert!(v["results"][0]["cpu"]["gflops"].as_f64().unwrap() > 0.0);
    assert!(v["results"][0]["webgpu"].is_null());
}

#[test]
fn bench_matmul_help_has_examples() {
    let text = support::stdout(&run(&["bench", "matmul", "--help"], &[]));
    assert!(text.contains("Example") && text.contains("--sizes"), "{text}");
}

#[test]
fn bench_embed_names_the_device_and_precision() {
    let Some(model) = common::test_model("all-MiniLM-L6-v2") else { return };
    let dir = tempfile::tempdir().unwrap();
    let texts = dir.path().join("texts.txt");
    std::fs::write(&texts, "a short text\nand another one\n").unwrap();
    let bench = |backend: &str, precision: &str| {
        let (m, t) = (model.to_str().unwrap(), texts.to_str().unwrap());
        let args = ["bench", "embed", "--model", m, "--texts-file", t, "--batch-sizes", "2", "--seconds", "0.05"];
        json(&run(&[&args[..], &["--backend", backend, "--precision", precision, "--json"]].concat(), &[]))
    };
    let cpu = bench("cpu", "32");
    assert_eq!(cpu["backend"], "cpu");
    assert!(cpu["device"].as_str().unwrap().starts_with("cpu ("), "{cpu}");
    assert!(cpu["results"][0]["sentences_per_sec"].as_f64().unwrap() > 0.0);
    let devices = json(&run(&["devices", "--json"], &[]));
    if !have_adapter(&devices) {
        return;
    }
    let f16 = bench("webgpu", "16");
    let device = f16["device"].as_str().unwrap();
    assert_eq!(f16["backend"], "webgpu");
    assert_eq!(f16["precision"], "16");
    assert!(device.starts_with("webgpu ("), "{f16}");
    let selected = devices["gpu_adapters"].as_array().unwrap().iter().find(|a| a["selected"] == true).unwrap();
    assert!(device.contains(selected["name"].as_str().unwrap()), "{f16}");
    assert_eq!(device.contains("f16 weights"), selected["shader_f16"] == true, "{f16}");
}
