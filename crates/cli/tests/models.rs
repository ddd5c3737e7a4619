//! `ipfs-accelerate models` end to end: add/ls/rm with the registry and pins,
//! CAR export/import (a truncated or lying CAR pins nothing), get, and
//! `embed --model NAME`.

#[path = "../../models/tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use support::{assert_clear_error, run, stdout};

/// A small model-like directory: `dir/config.json` and `dir/weights.bin`.
fn sample_dir(root: &Path) -> std::path::PathBuf {
    let dir = root.join("tiny-model");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), "{\"hidden_size\": 4}\n").unwrap();
    let weights: Vec<u8> = (0..700_000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    std::fs::write(dir.join("weights.bin"), weights).unwrap();
    dir
}

#[test]
fn every_models_command_has_help_with_an_example() {
    let tmp = tempfile::tempdir().unwrap();
    for cmd in ["add", "ls", "rm", "export", "import", "get", "pull"] {
        let out = run(tmp.path(), &["models", cmd, "--help"]);
        let text = stdout(&out);
        assert!(text.contains("Example"), "{cmd}: {text}");
    }
}

#[test]
fn add_names_pins_and_matches_ipfs_add() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let dir = sample_dir(tmp.path());
    let d = dir.to_str().unwrap();
    let cid = stdout(&run(&repo, &["models", "add", d])).trim().to_string();
    let kubo = stdout(&run(&repo, &["ipfs", "add", "-r", "-Q", d])).trim().to_string();
    assert_eq!(cid, kubo);

    let ls = stdout(&run(&repo, &["models", "ls"]));
    assert!(ls.starts_with(&format!("tiny-model\t{cid}\t")) && ls.trim_end().ends_with("\tpinned"), "{ls}");
    let json: serde_json::Value = serde_json::from_str(&stdout(&run(&repo, &["models", "ls", "--json"]))).unwrap();
    assert_eq!(json[0]["name"], "tiny-model");
    assert_eq!(json[0]["cid"], cid.as_str());
    assert_eq!(json[0]["pinned"], true);
    assert!(json[0]["size"].as_u64().unwrap() > 700_000);

    // get by name writes the same files.
    let copy = tmp.path().join("copy");
    stdout(&run(&repo, &["models", "get", "tiny-model", copy.to_str().unwrap()]));
    assert_eq!(std::fs::read(copy.join("weights.bin")).unwrap(), std::fs::read(dir.join("weights.bin")).unwrap());

    // rm forgets the name and unpins; gc then removes the blocks.
    stdout(&run(&repo, &["ipfs", "pin", "rm", &kubo])); // drop the pin `ipfs add` also made (same root)
    stdout(&run(&repo, &["models", "add", d, "--name", "again"]));
    stdout(&run(&repo, &["models", "rm", "tiny-model"]));
    assert!(stdout(&run(&repo, &["ipfs", "pin", "ls"])).contains(&cid), "still named `again`, still pinned");
    stdout(&run(&repo, &["models", "rm", &cid]));
    assert_eq!(stdout(&run(&repo, &["models", "ls"])), "");
    assert_eq!(stdout(&run(&repo, &["ipfs", "pin", "ls"])), "");
    stdout(&run(&repo, &["ipfs", "gc"]));
    assert_clear_error(&run(&repo, &["models", "get", &cid, tmp.path().join("x").to_str().unwrap()]), &cid);
    assert_clear_error(&run(&repo, &["models", "rm", "tiny-model"]), "no model named");
}

#[test]
fn car_export_import_round_trip_and_bad_cars_pin_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let dir = sample_dir(tmp.path());
    let cid = stdout(&run(&repo, &["models", "add", dir.to_str().unwrap(), "--name", "tiny"])).trim().to_string();
    let car = tmp.path().join("tiny.car");
    stdout(&run(&repo, &["models", "export", "tiny", car.to_str().unwrap()]));
    let bytes = std::fs::read(&car).unwrap();

    let other = tmp.path().join("other-repo");
    // Truncated: the root block arrives, the rest does not.
    let cut = tmp.path().join("cut.car");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert_clear_error(&run(&other, &["models", "import", cut.to_str().unwrap(), "--name", "x"]), "nothing was pinned");
    // Lying: one byte of block data flipped near the end.
    let mut lie = bytes.clone();
    let n = lie.len();
    lie[n - 10] ^= 0xff;
    let lying = tmp.path().join("lie.car");
    std::fs::write(&lying, &lie).unwrap();
    assert_clear_error(
        &run(&other, &["models", "import", lying.to_str().unwrap(), "--name", "x"]),
        "nothing was pinned",
    );
    assert_eq!(stdout(&run(&other, &["ipfs", "pin", "ls"])), "");
    assert_eq!(stdout(&run(&other, &["models", "ls"])), "");

    let imported = stdout(&run(&other, &["models", "import", car.to_str().unwrap(), "--name", "tiny2"]));
    assert_eq!(imported.trim(), cid);
    assert!(stdout(&run(&other, &["models", "ls"])).contains(&format!("tiny2\t{cid}")));
    assert!(stdout(&run(&other, &["ipfs", "pin", "ls"])).contains(&cid));
}

#[test]
fn bad_names_and_keys_give_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let dir = sample_dir(tmp.path());
    assert_clear_error(&run(&repo, &["models", "add", dir.to_str().unwrap(), "--name", "a/b"]), "invalid model name");
    assert_clear_error(&run(&repo, &["models", "add", "/nonexistent/dir"]), "cannot read");
    assert_clear_error(&run(&repo, &["models", "get", "nope", "out"]), "neither a model name nor a CID");
}

#[test]
fn embed_accepts_a_registry_name() {
    let Some(model) = common::test_model("all-MiniLM-L6-v2") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    stdout(&run(&repo, &["models", "add", model.to_str().unwrap(), "--name", "minilm"]));
    let by_name = stdout(&run(&repo, &["embed", "--model", "minilm", "--json", "hello"]));
    let by_dir = stdout(&run(&repo, &["embed", "--model", model.to_str().unwrap(), "--json", "hello"]));
    let a: serde_json::Value = serde_json::from_str(&by_name).unwrap();
    let b: serde_json::Value = serde_json::from_str(&by_dir).unwrap();
    assert_eq!(a["embeddings"].as_array().unwrap().len(), 1);
    assert_eq!(a["embeddings"], b["embeddings"]);
}
