//! `embed --pool` and `pool status` end to end with a CPU pool: the
//! embeddings equal a direct CPU run (sharded or not), the journal gets the
//! workers, placements and inferences, and a bad config is one clear error.

#[path = "../../models/tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::process::{Command, Output};
use support::{assert_clear_error, stdout};

fn run(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipfs-accelerate"))
        .args(args)
        .env("IPFS_ACCELERATE_DATA_DIR", data_dir)
        .output()
        .expect("the binary starts")
}

fn embeddings(out: &Output) -> (Vec<Vec<f32>>, serde_json::Value) {
    let json: serde_json::Value = serde_json::from_str(stdout(out).trim()).unwrap();
    let vectors = serde_json::from_value(json["embeddings"].clone()).unwrap();
    (vectors, json)
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs())).fold(0.0, f32::max)
}

#[test]
fn embed_through_a_cpu_pool_equals_the_cpu_backend_and_is_journaled() {
    let Some(model) = common::test_model("all-MiniLM-L6-v2") else { return };
    let model = model.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pool.toml");
    std::fs::write(&config, "[pool]\nhealth_interval = 0.2\n\n[[worker]]\nkind = \"cpu\"\ncount = 2\n").unwrap();
    let config = config.to_str().unwrap();
    let texts = ["first text", "a second, longer text about pools of browsers", "third"];
    let mut args = vec!["embed", "--model", model, "--json", "--batch-size", "2"];
    args.extend(texts);

    let mut direct_args = args.clone();
    direct_args.extend(["--backend", "cpu"]);
    let (want, _) = embeddings(&run(dir.path(), &direct_args));

    let mut pooled_args = args.clone();
    pooled_args.extend(["--pool", config]);
    let (got, json) = embeddings(&run(dir.path(), &pooled_args));
    assert_eq!(json["backend"], "pool");
    assert!(max_diff(&got, &want) < 1e-5);

    let mut sharded_args = args.clone();
    sharded_args.extend(["--pool", config, "--shards", "2"]);
    let (sharded, json) = embeddings(&run(dir.path(), &sharded_args));
    assert_eq!(json["shards"], 2);
    assert!(
        json["workers"][0].as_str().unwrap().contains("cpu-0 -> cpu-1")
            || json["workers"][0].as_str().unwrap().contains("cpu-1 -> cpu-0"),
        "{json}"
    );
    assert!(max_diff(&sharded, &want) < 1e-5);

    // The journal (the data dir's default) saw both workers and the model.
    let status = stdout(&run(dir.path(), &["pool", "status"]));
    assert!(status.contains("cpu-0") && status.contains("cpu-1"), "{status}");
    assert!(status.contains(model), "placements are listed: {status}");
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&run(dir.path(), &["pool", "status", "--json"]))).unwrap();
    assert_eq!(json["workers"].as_array().unwrap().len(), 2, "{json}");
    assert!(!json["latencies"].as_array().unwrap().is_empty(), "latencies were saved: {json}");
    let stats = stdout(&run(dir.path(), &["stats", "--json"]));
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    let count: u64 = stats["stats"].as_array().unwrap().iter().map(|r| r["count"].as_u64().unwrap()).sum();
    // 2 batches unsharded + 2 batches × 2 stages.
    assert_eq!(count, 6, "{stats}");

    // Live status starts the pool from the file.
    let live: serde_json::Value =
        serde_json::from_str(&stdout(&run(dir.path(), &["pool", "status", "--config", config, "--json"]))).unwrap();
    let workers = live["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    assert!(workers.iter().all(|w| w["health"] == "ready" && w["circuit"]["state"] == "closed"), "{live}");
}

#[test]
fn bad_pool_configs_and_options_are_one_clear_error() {
    let Some(model) = common::test_model("all-MiniLM-L6-v2") else { return };
    let model = model.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pool.toml");
    std::fs::write(&config, "[[worker]]\nkind = \"quantum\"\n").unwrap();
    let config = config.to_str().unwrap();
    assert_clear_error(&run(dir.path(), &["embed", "--model", model, "--pool", config, "x"]), "unknown variant");
    assert_clear_error(&run(dir.path(), &["pool", "status", "--config", config]), "quantum");
    let missing = dir.path().join("missing.toml");
    let missing = missing.to_str().unwrap();
    assert_clear_error(&run(dir.path(), &["embed", "--model", model, "--pool", missing, "x"]), "missing.toml");
    std::fs::write(dir.path().join("ok.toml"), "[[worker]]\nkind = \"cpu\"\n").unwrap();
    let ok = dir.path().join("ok.toml");
    let ok = ok.to_str().unwrap();
    assert_clear_error(
        &run(dir.path(), &["embed", "--model", model, "--pool", ok, "--shards", "9", "x"]),
        "into 9 shards",
    );
    let out = run(dir.path(), &["embed", "--model", model, "--shards", "2", "x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--pool"), "--shards needs --pool");
    let empty = tempfile::tempdir().unwrap();
    let status = stdout(&run(empty.path(), &["pool", "status"]));
    assert!(status.contains("no pool has recorded anything yet"), "{status}");
    assert!(!empty.path().join("journal.sqlite3").exists(), "status never creates a journal");
}
