//! `ipfs-accelerate stats`: a journal seeded through the library, shown as a
//! table and as JSON; a missing journal; a file that is not a journal.

mod support;

use ipfs_accelerate_pool::journal::{InferenceRecord, Journal, Outcome};
use std::path::Path;
use std::process::{Command, Output};
use support::{assert_clear_error, stdout};

fn stats(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipfs-accelerate"))
        .arg("stats")
        .args(args)
        .env("IPFS_ACCELERATE_DATA_DIR", data_dir)
        .output()
        .expect("the binary starts")
}

/// minilm on cpu: latencies 1..=100 ms (10 items each) plus one error;
/// minilm on wgpu: 4 ms; smollm on cpu: 8 ms.
fn seed(path: &Path) {
    let journal = Journal::open(path).unwrap();
    for latency in 1..=100 {
        let request = journal.accept_request("minilm").unwrap();
        journal
            .record_inference(&InferenceRecord {
                request_id: Some(request),
                latency_ms: f64::from(latency),
                items: 10,
                ..InferenceRecord::new("minilm", "cpu")
            })
            .unwrap();
        journal.complete_request(request, Outcome::Ok, None).unwrap();
    }
    let failed = InferenceRecord {
        status: Outcome::Error,
        error: Some("worker died".into()),
        latency_ms: 5000.0,
        ..InferenceRecord::new("minilm", "cpu")
    };
    journal.record_inference(&failed).unwrap();
    journal.record_inference(&InferenceRecord { latency_ms: 4.0, ..InferenceRecord::new("minilm", "wgpu") }).unwrap();
    journal.record_inference(&InferenceRecord { latency_ms: 8.0, ..InferenceRecord::new("smollm", "cpu") }).unwrap();
}

#[test]
fn stats_table_and_json_from_a_seeded_journal() {
    let dir = tempfile::tempdir().unwrap();
    // The default location: $IPFS_ACCELERATE_DATA_DIR/journal.sqlite3.
    let path = dir.path().join("journal.sqlite3");
    seed(&path);

    let text = stdout(&stats(dir.path(), &[]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("journal: {}", path.display()), "{text}");
    let header: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(header, ["model", "backend", "count", "errors", "p50", "ms", "p99", "ms", "items/s"]);
    let rows: Vec<Vec<&str>> = lines[2..].iter().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows,
        vec![
            vec!["minilm", "cpu", "101", "1", "50.00", "99.00", "198.0"],
            vec!["minilm", "wgpu", "1", "0", "4.00", "4.00", "250.0"],
            vec!["smollm", "cpu", "1", "0", "8.00", "8.00", "125.0"],
        ],
        "{text}"
    );

    let json: serde_json::Value = serde_json::from_str(&stdout(&stats(dir.path(), &["--json"]))).unwrap();
    assert_eq!(json["journal"], path.display().to_string());
    let rows = json["stats"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["model"], "minilm");
    assert_eq!(rows[0]["backend"], "cpu");
    assert_eq!(rows[0]["count"], 101);
    assert_eq!(rows[0]["errors"], 1);
    assert_eq!(rows[0]["p50_ms"], 50.0);
    assert_eq!(rows[0]["p99_ms"], 99.0);
    assert_eq!(rows[0]["mean_ms"], 50.5);

    // --model, with an explicit --journal elsewhere.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = stats(elsewhere.path(), &["--journal", path.to_str().unwrap(), "--model", "smollm", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let rows = json["stats"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0]["model"].as_str(), rows[0]["count"].as_u64()), (Some("smollm"), Some(1)));
    let text = stdout(&stats(dir.path(), &["--model", "nothing"]));
    assert_eq!(text.trim(), format!("no inferences recorded yet at {} for model nothing", path.display()));
}

#[test]
fn a_missing_journal_is_one_clear_line_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite3");
    let out = stats(dir.path(), &[]);
    assert_eq!(stdout(&out).trim(), format!("no inferences recorded yet at {}", path.display()));
    assert!(!path.exists(), "stats must not create a journal");

    let out = stats(dir.path(), &["--json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["stats"].as_array().unwrap().len(), 0);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no inferences recorded yet at"));
    assert!(!path.exists());
}

#[test]
fn a_file_that_is_not_a_journal_is_a_clear_error_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite3");
    std::fs::write(&path, b"not a database").unwrap();
    let out = stats(dir.path(), &[]);
    assert_clear_error(&out, "is not a SQLite database");
    assert!(String::from_utf8_lossy(&out.stderr).contains("never overwritten"));
    assert_eq!(std::fs::read(&path).unwrap(), b"not a database");
}
