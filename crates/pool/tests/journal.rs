//! The SQLite journal: every method round trips, statistics on known
//! latencies, reopening, refusal of foreign / corrupt / newer files (left
//! byte-identical), and concurrent writers.

use ipfs_accelerate_pool::journal::{
    InferenceRecord, Journal, JournalError, LatencyRow, Outcome, StatsFilter, WorkerRecord, APPLICATION_ID,
    SCHEMA_VERSION,
};
use serde_json::json;
use std::path::Path;

fn worker(id: &str, state: &str) -> WorkerRecord {
    WorkerRecord {
        id: id.into(),
        kind: "browser-webgpu".into(),
        browser: Some("chromium".into()),
        capabilities: json!({"shader_f16": false, "max_buffer": 1073741824u64}),
        state: state.into(),
    }
}

#[test]
fn every_method_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/dir/journal.sqlite3");
    let journal = Journal::open(&path).unwrap();
    assert_eq!(journal.path(), path);

    // Workers.
    journal.register_worker(&worker("w1", "ready")).unwrap();
    journal.register_worker(&WorkerRecord { kind: "cpu".into(), browser: None, ..worker("w0", "ready") }).unwrap();
    let workers = journal.workers().unwrap();
    assert_eq!(workers.len(), 2);
    assert_eq!(workers[0].worker.id, "w0");
    assert_eq!(workers[0].worker.browser, None);
    assert_eq!(workers[1].worker, worker("w1", "ready"));
    let registered = workers[1].registered_at;
    assert!(registered > 1_600_000_000_000, "ms since the epoch: {registered}");

    std::thread::sleep(std::time::Duration::from_millis(5));
    journal.worker_seen("w1").unwrap();
    journal.set_worker_state("w1", "dead").unwrap();
    // Re-registering keeps registered_at and replaces the rest.
    journal.register_worker(&WorkerRecord { capabilities: json!({"webnn": true}), ..worker("w0", "busy") }).unwrap();
    let workers = journal.workers().unwrap();
    assert_eq!(workers[1].worker.state, "dead");
    assert!(workers[1].last_seen_at > registered);
    assert_eq!(workers[1].registered_at, registered);
    assert_eq!(workers[0].worker.capabilities, json!({"webnn": true}));
    assert_eq!(workers[0].worker.state, "busy");
    assert!(matches!(journal.worker_seen("nobody"), Err(JournalError::UnknownWorker { .. })));
    assert!(matches!(journal.set_worker_state("nobody", "x"), Err(JournalError::UnknownWorker { .. })));

    // Placements: once per (worker, model); unplace; place again.
    assert!(journal.place("w1", "minilm", Some("bafyminilm")).unwrap());
    assert!(!journal.place("w1", "minilm", Some("bafyminilm")).unwrap());
    assert!(journal.place("w0", "minilm", None).unwrap());
    let placements = journal.placements().unwrap();
    assert_eq!(placements.len(), 2);
    assert_eq!((placements[1].worker_id.as_str(), placements[1].cid.as_deref()), ("w1", Some("bafyminilm")));
    assert_eq!(placements[1].unloaded_at, None);
    assert!(journal.unplace("w1", "minilm").unwrap());
    assert!(!journal.unplace("w1", "minilm").unwrap());
    assert_eq!(journal.placements().unwrap().len(), 1);
    assert!(journal.place("w1", "minilm", Some("bafyminilm")).unwrap());
    assert_eq!(journal.placements().unwrap().len(), 2);
    assert!(matches!(journal.place("nobody", "minilm", None), Err(JournalError::UnknownWorker { .. })));

    // Requests: accepted, pending, completed exactly once.
    let a = journal.accept_request("minilm").unwrap();
    let b = journal.accept_request("minilm").unwrap();
    let c = journal.accept_request("smollm").unwrap();
    assert!(a < b && b < c);
    let pending: Vec<_> = journal.pending_requests().unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(pending, vec![a, b, c]);
    journal.complete_request(a, Outcome::Ok, None).unwrap();
    journal.complete_request(c, Outcome::Busy, Some("queue full")).unwrap();
    assert!(
        matches!(journal.complete_request(a, Outcome::Error, Some("again")), Err(JournalError::AlreadyCompleted { id, .. }) if id == a.0)
    );
    let missing = ipfs_accelerate_pool::journal::RequestId(999_999);
    assert!(matches!(journal.complete_request(missing, Outcome::Ok, None), Err(JournalError::UnknownRequest { .. })));
    let pending: Vec<_> = journal.pending_requests().unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(pending, vec![b]);
    let ra = journal.request(a).unwrap().unwrap();
    assert_eq!((ra.model.as_str(), ra.status, ra.error.as_deref()), ("minilm", Some(Outcome::Ok), None));
    assert!(ra.completed_at.unwrap() >= ra.accepted_at);
    let rc = journal.request(c).unwrap().unwrap();
    assert_eq!((rc.status, rc.error.as_deref()), (Some(Outcome::Busy), Some("queue full")));
    assert_eq!(journal.request(missing).unwrap(), None);
    let rb = journal.request(b).unwrap().unwrap();
    assert_eq!((rb.completed_at, rb.status), (None, None));

    // Inferences: every field back.
    let record = InferenceRecord {
        request_id: Some(a),
        cid: Some("bafyminilm".into()),
        worker_id: Some("w1".into()),
        browser: Some("chromium".into()),
        precision: "f16".into(),
        latency_ms: 12.25,
        items: 32,
        tokens: Some(410),
        ..InferenceRecord::new("minilm", "browser-webgpu")
    };
    let id = journal.record_inference(&record).unwrap();
    let failed = InferenceRecord {
        status: Outcome::Error,
        error: Some("worker died".into()),
        latency_ms: 3.0,
        ..InferenceRecord::new("minilm", "cpu")
    };
    journal.record_inference(&failed).unwrap();
    let rows = journal.inferences(&StatsFilter::default()).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].id, id);
    assert_eq!(rows[0].record, record);
    assert_eq!(rows[1].record, failed);
    assert!(rows[0].at > 1_600_000_000_000);
    let only_cpu = StatsFilter { backend: Some("cpu".into()), ..Default::default() };
    assert_eq!(journal.inferences(&only_cpu).unwrap().len(), 1);
    let future = StatsFilter { since: Some(rows[1].at + 60_000), ..Default::default() };
    assert!(journal.inferences(&future).unwrap().is_empty());

    // A worker or request the journal never saw is refused (foreign keys).
    let orphan = InferenceRecord { worker_id: Some("ghost".into()), ..InferenceRecord::new("minilm", "cpu") };
    assert!(matches!(journal.record_inference(&orphan), Err(JournalError::Sql { .. })));
    assert_eq!(journal.inferences(&StatsFilter::default()).unwrap().len(), 2);

    // Stats of that.
    let stats = journal.stats(&StatsFilter::default()).unwrap();
    assert_eq!(stats.len(), 2);
    assert_eq!((stats[0].model.as_str(), stats[0].backend.as_str()), ("minilm", "browser-webgpu"));
    assert_eq!((stats[0].count, stats[0].errors, stats[0].p50_ms), (1, 0, Some(12.25)));
    assert_eq!((stats[1].backend.as_str(), stats[1].count, stats[1].errors), ("cpu", 1, 1));
    assert_eq!((stats[1].p50_ms, stats[1].p99_ms, stats[1].items_per_s), (None, None, None));
}

#[test]
fn stats_percentiles_on_known_latencies() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path().join("j.sqlite3")).unwrap();
    // 1..=100 ms in a shuffled order, 10 items each, on cpu.
    for i in 0..100u32 {
        let latency = f64::from((i * 37) % 100 + 1);
        let record = InferenceRecord { latency_ms: latency, items: 10, ..InferenceRecord::new("minilm", "cpu") };
        journal.record_inference(&record).unwrap();
    }
    // Two failures that must not move the percentiles.
    for _ in 0..2 {
        let record = InferenceRecord {
            latency_ms: 10_000.0,
            status: Outcome::Error,
            error: Some("boom".into()),
            ..InferenceRecord::new("minilm", "cpu")
        };
        journal.record_inference(&record).unwrap();
    }
    // Another backend and another model.
    for latency in [4.0, 2.0, 6.0] {
        journal
            .record_inference(&InferenceRecord { latency_ms: latency, ..InferenceRecord::new("minilm", "wgpu") })
            .unwrap();
    }
    journal.record_inference(&InferenceRecord { latency_ms: 8.0, ..InferenceRecord::new("smollm", "cpu") }).unwrap();

    let stats = journal.stats(&StatsFilter::default()).unwrap();
    let keys: Vec<_> = stats.iter().map(|s| (s.model.as_str(), s.backend.as_str())).collect();
    assert_eq!(keys, vec![("minilm", "cpu"), ("minilm", "wgpu"), ("smollm", "cpu")]);
    let cpu = &stats[0];
    assert_eq!((cpu.count, cpu.errors), (102, 2));
    assert_eq!(cpu.p50_ms, Some(50.0));
    assert_eq!(cpu.p99_ms, Some(99.0));
    assert_eq!(cpu.mean_ms, Some(50.5));
    // 1000 items in 5050 ms.
    let ips = cpu.items_per_s.unwrap();
    assert!((ips - 1000.0 / 5.05).abs() < 1e-9, "{ips}");
    let wgpu = &stats[1];
    assert_eq!((wgpu.count, wgpu.errors, wgpu.p50_ms, wgpu.p99_ms), (3, 0, Some(4.0), Some(6.0)));

    let filtered = journal.stats(&StatsFilter { model: Some("smollm".into()), ..Default::default() }).unwrap();
    assert_eq!(filtered.len(), 1);
    assert_eq!((filtered[0].count, filtered[0].p50_ms, filtered[0].p99_ms), (1, Some(8.0), Some(8.0)));
    let by_backend = journal.stats(&StatsFilter { backend: Some("cpu".into()), ..Default::default() }).unwrap();
    assert_eq!(by_backend.len(), 2);
    assert!(journal.stats(&StatsFilter { model: Some("none".into()), ..Default::default() }).unwrap().is_empty());
}

#[test]
fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite3");
    let request = {
        let journal = Journal::open(&path).unwrap();
        journal.register_worker(&worker("w1", "ready")).unwrap();
        journal.place("w1", "minilm", Some("bafy")).unwrap();
        let request = journal.accept_request("minilm").unwrap();
        journal
            .record_inference(&InferenceRecord {
                request_id: Some(request),
                latency_ms: 5.0,
                ..InferenceRecord::new("minilm", "cpu")
            })
            .unwrap();
        request
    };
    let journal = Journal::open(&path).unwrap();
    assert_eq!(journal.workers().unwrap().len(), 1);
    assert_eq!(journal.placements().unwrap().len(), 1);
    assert_eq!(journal.pending_requests().unwrap()[0].id, request);
    journal.complete_request(request, Outcome::Ok, None).unwrap();
    assert!(journal.pending_requests().unwrap().is_empty());
    assert_eq!(journal.stats(&StatsFilter::default()).unwrap()[0].count, 1);
    // New ids continue after the old ones.
    assert!(journal.accept_request("minilm").unwrap() > request);
    drop(journal);

    // The header says what it is.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let app: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0)).unwrap();
    let version: i32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
    assert_eq!((app, version, mode.as_str()), (APPLICATION_ID, SCHEMA_VERSION, "wal"));
}

#[test]
fn an_empty_file_gets_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.sqlite3");
    std::fs::write(&path, b"").unwrap();
    let journal = Journal::open(&path).unwrap();
    journal.accept_request("m").unwrap();
}

/// Opens `path`, expects a refusal whose message names the file and says
/// it is never overwritten, and checks the file is byte-identical.
fn assert_refused_untouched(path: &Path, needle: &str) -> JournalError {
    let before = std::fs::read(path).unwrap();
    let err = Journal::open(path).expect_err("must be refused");
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "names the file: {message}");
    assert!(message.contains("never overwritten"), "says what to do: {message}");
    assert!(message.contains(needle), "expected {needle:?} in {message}");
    assert_eq!(std::fs::read(path).unwrap(), before, "the file was modified");
    // Refused again the same way, still untouched.
    assert_eq!(Journal::open(path).unwrap_err().to_string(), message);
    assert_eq!(std::fs::read(path).unwrap(), before);
    err
}

#[test]
fn a_foreign_sqlite_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "application_id", 0x1234_5678).unwrap();
        conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me');").unwrap();
    }
    let err = assert_refused_untouched(&path, "not an ipfs-accelerate journal");
    assert!(matches!(err, JournalError::Foreign { .. }), "{err:?}");
    assert!(err.to_string().contains("0x12345678"), "{err}");

    // A plain SQLite file (application_id 0) with tables is someone else's too.
    let plain = dir.path().join("plain.db");
    {
        let conn = rusqlite::Connection::open(&plain).unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);").unwrap();
    }
    assert!(matches!(assert_refused_untouched(&plain, "application_id 0"), JournalError::Foreign { .. }));
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite3");
    std::fs::write(&path, b"not a database").unwrap();
    let err = assert_refused_untouched(&path, "is not a SQLite database");
    assert!(matches!(err, JournalError::NotADatabase { .. }), "{err:?}");

    // A bigger file of garbage (several pages).
    let big = dir.path().join("big.sqlite3");
    std::fs::write(&big, (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>()).unwrap();
    assert!(matches!(assert_refused_untouched(&big, "is not a SQLite database"), JournalError::NotADatabase { .. }));

    // A journal whose header was clobbered.
    let clobbered = dir.path().join("clobbered.sqlite3");
    Journal::open(&clobbered).unwrap().accept_request("m").unwrap();
    let mut bytes = std::fs::read(&clobbered).unwrap();
    bytes[..16].copy_from_slice(b"garbage garbage!");
    std::fs::write(&clobbered, &bytes).unwrap();
    let _ = std::fs::remove_file(clobbered.with_extension("sqlite3-wal"));
    let _ = std::fs::remove_file(clobbered.with_extension("sqlite3-shm"));
    assert!(matches!(assert_refused_untouched(&clobbered, "not a SQLite"), JournalError::NotADatabase { .. }));
}

#[test]
fn a_newer_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite3");
    {
        let journal = Journal::open(&path).unwrap();
        journal.accept_request("m").unwrap();
    }
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        // Fold the WAL back so the byte comparison sees the whole database.
        conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    }
    let err = assert_refused_untouched(&path, "newer than this ipfs-accelerate reads");
    assert!(
        matches!(err, JournalError::NewerSchema { found, supported, .. } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err:?}"
    );
}

#[test]
fn a_version_1_journal_is_upgraded_in_place_keeping_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite3");
    let request = {
        let journal = Journal::open(&path).unwrap();
        journal.accept_request("m").unwrap()
    };
    {
        // What a version 1 journal looked like: no latency table.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("DROP TABLE latency").unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
    }
    let journal = Journal::open(&path).unwrap();
    assert_eq!(journal.request(request).unwrap().unwrap().model, "m");
    assert!(journal.latencies().unwrap().is_empty());
    let row = LatencyRow {
        model: "m".into(),
        worker_kind: "native-cpu".into(),
        browser: String::new(),
        ms: 3.5,
        samples: 4,
        updated_at: 0,
    };
    journal.save_latencies(std::slice::from_ref(&row)).unwrap();
    journal.save_latencies(&[LatencyRow { ms: 2.5, samples: 5, ..row.clone() }]).unwrap();
    let saved = journal.latencies().unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!((saved[0].ms, saved[0].samples), (2.5, 5));
    assert!(saved[0].updated_at > 0);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

#[test]
fn finish_request_writes_the_answer_and_its_inferences_once() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path().join("j.sqlite3")).unwrap();
    journal.register_worker(&worker("w1", "ready")).unwrap();
    let id = journal.accept_request("m").unwrap();
    let tries = [
        InferenceRecord {
            worker_id: Some("w1".into()),
            status: Outcome::Error,
            error: Some("page closed".into()),
            ..InferenceRecord::new("m", "browser-webgpu")
        },
        InferenceRecord { worker_id: Some("w1".into()), latency_ms: 4.0, ..InferenceRecord::new("m", "cpu") },
    ];
    journal.finish_request(id, Outcome::Ok, None, &tries).unwrap();
    let err = journal.finish_request(id, Outcome::Error, Some("again"), &tries).unwrap_err();
    assert!(matches!(err, JournalError::AlreadyCompleted { .. }), "{err:?}");
    let rows = journal.inferences(&StatsFilter::default()).unwrap();
    assert_eq!(rows.len(), 2, "the refused second finish wrote nothing");
    assert!(rows.iter().all(|r| r.record.request_id == Some(id)));
    assert_eq!(journal.request(id).unwrap().unwrap().status, Some(Outcome::Ok));
    assert!(journal.pending_requests().unwrap().is_empty());
}

#[test]
fn two_handles_in_two_threads_write_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite3");
    let first = Journal::open(&path).unwrap();
    let second = Journal::open(&path).unwrap();
    first.register_worker(&worker("w1", "ready")).unwrap();
    const EACH: usize = 300;
    let run = |journal: Journal, backend: &'static str| {
        std::thread::spawn(move || {
            for i in 0..EACH {
                let request = journal.accept_request("minilm").unwrap();
                journal
                    .record_inference(&InferenceRecord {
                        request_id: Some(request),
                        worker_id: Some("w1".into()),
                        latency_ms: (i % 10) as f64 + 1.0,
                        ..InferenceRecord::new("minilm", backend)
                    })
                    .unwrap();
                journal.worker_seen("w1").unwrap();
                journal.complete_request(request, Outcome::Ok, None).unwrap();
            }
            journal
        })
    };
    let a = run(first, "cpu");
    let b = run(second, "wgpu");
    let journal = a.join().unwrap();
    b.join().unwrap();
    let stats = journal.stats(&StatsFilter::default()).unwrap();
    let counts: Vec<_> = stats.iter().map(|s| (s.backend.as_str(), s.count)).collect();
    assert_eq!(counts, vec![("cpu", EACH as u64), ("wgpu", EACH as u64)]);
    assert!(journal.pending_requests().unwrap().is_empty());
    // Also one handle shared by threads.
    let shared = std::sync::Arc::new(journal);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let j = shared.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    j.record_inference(&InferenceRecord::new("minilm", "remote")).unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let remote = shared.stats(&StatsFilter { backend: Some("remote".into()), ..Default::default() }).unwrap();
    assert_eq!(remote[0].count, 200);
}

#[test]
fn handles_opening_a_new_file_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite3");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (path, barrier) = (path.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let journal = Journal::open(&path).unwrap();
                journal.accept_request("m").unwrap();
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(Journal::open(&path).unwrap().pending_requests().unwrap().len(), 4);
}

#[test]
fn the_timeline_buckets_inferences_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path().join("j.sqlite3")).unwrap();
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    for (latency, status) in [(2.0, Outcome::Ok), (4.0, Outcome::Ok), (100.0, Outcome::Error)] {
        let record = InferenceRecord { latency_ms: latency, items: 3, status, ..InferenceRecord::new("m", "cpu") };
        journal.record_inference(&record).unwrap();
    }
    // One bucket wide enough to hold all three.
    let points = journal.timeline(before - 1, 3_600_000).unwrap();
    assert_eq!(points.len(), 1, "{points:?}");
    let p = &points[0];
    assert_eq!((p.count, p.errors, p.items), (3, 1, 6));
    assert_eq!(p.mean_ms, Some(3.0));
    assert_eq!(p.max_ms, Some(4.0), "failed inferences do not count as latencies");
    assert!(journal.timeline(before + 3_600_000, 1000).unwrap().is_empty());
}
