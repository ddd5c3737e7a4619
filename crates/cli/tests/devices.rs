//! `devices` (CPU and GPU adapters) and `bench matmul` end to end.
//!
//! The GPU parts run on whatever adapter wgpu finds (Mesa's llvmpipe in CI);
//! without one they print a skip notice and pass, unless `CI=true`.

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
    let rows = v["results"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (row, n) in rows.iter().zip([8u64, 33]) {
        assert_eq!(row["size"], n);
        assert_eq!(row["flops"].as_f64().unwrap(), 2.0 * (n as f64).powi(3));
        assert!(row["cpu"]["gflops"].as_f64().unwrap() > 0.0, "{row}");
        if gpu {
            assert!(row["webgpu"]["end_to_end_gflops"].as_f64().unwrap() > 0.0, "{row}");
            assert!(row["webgpu_vs_cpu"].as_f64().unwrap() > 0.0, "{row}");
            assert!(row["max_rel_diff"].as_f64().unwrap() < 1e-4, "gpu and cpu products differ: {row}");
        }
    }
    assert_eq!(v["f16"]["available"], false);
    if gpu {
        assert!(v["webgpu_adapter"]["name"].is_string());
        let table = support::stdout(&run(&["bench", "matmul", "--sizes", "8", "--seconds", "0.05"], &[]));
        assert!(table.contains("GFLOP/s") && table.contains("f16: not available in this build"), "{table}");
    }
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
