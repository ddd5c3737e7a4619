//! `pool.toml`: the documented example parses into the settings it says,
//! worker ids are numbered and unique, and every kind of mistake is an
//! error naming the field.

use ipfs_accelerate_pool::config::{ConfigError, PoolFile};
use ipfs_accelerate_pool::WorkerKind;
use std::time::Duration;

const EXAMPLE: &str = r#"
journal = "/tmp/j.sqlite3"

[pool]
queue_capacity = 64
dispatchers = 4
max_attempts = 2
request_timeout = 30.0
health_interval = 0.5
shards = 2

[browsers]
min_warm = 2
idle_timeout = 60

[circuit]
failure_threshold = 3
open_for = 5.0

[[worker]]
kind = "cpu"
memory_budget_mb = 512

[[worker]]
kind = "browser-webgpu"
count = 2
browser = "chromium"
ephemeral = true

[[worker]]
kind = "browser-webnn"
id = "edge"

[[prior]]
kind = "browser-webnn"
browser = "edge"
model_type = "text-embedding"
latency_ms = 5.0

[[prior]]
kind = "cpu"
latency_ms = 40
"#;

fn invalid(text: &str) -> String {
    match PoolFile::parse(text, "test.toml") {
        Err(e @ ConfigError::Invalid { .. }) => e.to_string(),
        other => panic!("expected an error for {text:?}, got {other:?}"),
    }
}

#[test]
fn the_example_gives_the_settings_it_says() {
    let file = PoolFile::parse(EXAMPLE, "example").unwrap();
    let config = file.pool_config();
    assert_eq!(config.queue_capacity, 64);
    assert_eq!(config.dispatchers, 4);
    assert_eq!(config.max_attempts, 2);
    assert_eq!(config.request_timeout, Duration::from_secs(30));
    assert_eq!(config.health_interval, Duration::from_millis(500));
    assert_eq!(config.min_warm_browsers, 2);
    assert_eq!(config.browser_idle_timeout, Duration::from_secs(60));
    assert_eq!(config.circuit.failure_threshold, 3);
    assert_eq!(config.circuit.open_for, Duration::from_secs(5));
    assert_eq!(file.shards(), 2);
    assert_eq!(file.journal.as_deref(), Some(std::path::Path::new("/tmp/j.sqlite3")));
    assert_eq!(file.worker_ids(), ["cpu-0", "browser-webgpu-0", "browser-webgpu-1", "edge"]);
    assert_eq!(config.priors.len(), 2);
    assert_eq!(config.priors[1].kind, WorkerKind::NativeCpu, "`cpu` is accepted for native-cpu");
    let workers = file.build_workers(std::path::Path::new("/tmp/data"));
    let kinds: Vec<_> = workers.iter().map(|w| w.kind()).collect();
    assert_eq!(
        kinds,
        [WorkerKind::NativeCpu, WorkerKind::BrowserWebgpu, WorkerKind::BrowserWebgpu, WorkerKind::BrowserWebnn]
    );
    assert!(workers[1..].iter().all(|w| !w.is_warm()), "browsers start only when needed");
}

#[test]
fn defaults_fill_everything_but_the_workers() {
    let file = PoolFile::parse("[[worker]]\nkind = \"cpu\"\n", "min").unwrap();
    let config = file.pool_config();
    let default = ipfs_accelerate_pool::PoolConfig::default();
    assert_eq!(config.queue_capacity, default.queue_capacity);
    assert_eq!(config.request_timeout, default.request_timeout);
    assert_eq!(file.shards(), 1);
    assert_eq!(file.worker_ids(), ["cpu-0"]);
}

#[test]
fn mistakes_are_errors_naming_what_is_wrong() {
    assert!(invalid("").contains("no [[worker]]"));
    assert!(invalid("[[worker]]\nkind = \"gpu\"\n").contains("unknown variant"));
    assert!(invalid("[[worker]]\nkind = \"cpu\"\ncolour = 1\n").contains("colour"));
    assert!(invalid("[pool]\ndispatcher = 2\n[[worker]]\nkind = \"cpu\"\n").contains("dispatcher"));
    assert!(invalid("[[worker]]\nkind = \"cpu\"\ncount = 0\n").contains("count = 0"));
    assert!(invalid("[[worker]]\nkind = \"cpu\"\nprecision = 8\n").contains("precision = 8"));
    assert!(invalid("[[worker]]\nkind = \"cpu\"\nbrowser = \"edge\"\n").contains("browser workers"));
    assert!(invalid("[[worker]]\nkind = \"browser-webgpu\"\nmemory_budget_mb = 1\n").contains("memory_budget_mb"));
    assert!(
        invalid("[[worker]]\nkind = \"cpu\"\nid = \"a\"\n[[worker]]\nkind = \"cpu\"\nid = \"a\"\n").contains("\"a\"")
    );
    assert!(invalid("[pool]\nshards = 0\n[[worker]]\nkind = \"cpu\"\n").contains("at least 1"));
    assert!(invalid("[pool]\nrequest_timeout = -1\n[[worker]]\nkind = \"cpu\"\n").contains("request_timeout"));
    assert!(invalid("[pool]\nlatency_smoothing = 0\n[[worker]]\nkind = \"cpu\"\n").contains("latency_smoothing"));
    assert!(invalid("[circuit]\nfailure_threshold = 0\n[[worker]]\nkind = \"cpu\"\n").contains("failure_threshold"));
    assert!(invalid("[[prior]]\nkind = \"cpu\"\nlatency_ms = nan\n[[worker]]\nkind = \"cpu\"\n").contains("latency_ms"));
    assert!(invalid("[[worker]\nkind = \"cpu\"\n").contains("test.toml"));
    let missing = PoolFile::load(std::path::Path::new("/nonexistent/pool.toml")).unwrap_err();
    assert!(missing.to_string().contains("/nonexistent/pool.toml"), "{missing}");
}
