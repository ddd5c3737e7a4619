//! `kind = "remote"` workers in `pool.toml`: the documented examples (the
//! config module's and docs/pool.md's) parse into the worker they describe,
//! defaults fill the rest, and every kind of mistake is an error naming the
//! field.

use ipfs_accelerate_pool::config::{ConfigError, PoolFile};
use ipfs_accelerate_pool::{RemoteProtocol, Worker, WorkerKind};
use std::path::Path;
use std::time::Duration;

fn invalid(text: &str) -> String {
    match PoolFile::parse(text, "test.toml") {
        Err(e @ ConfigError::Invalid { .. }) => e.to_string(),
        other => panic!("expected an error for {text:?}, got {other:?}"),
    }
}

/// The first ```toml block of `doc`, with any `//! ` comment prefix removed.
fn toml_block(doc: &str) -> String {
    let lines: Vec<&str> =
        doc.lines().map(|l| l.strip_prefix("//!").map_or(l, |rest| rest.strip_prefix(' ').unwrap_or(rest))).collect();
    let start = lines.iter().position(|l| l.trim() == "```toml").expect("a ```toml block") + 1;
    let len = lines[start..].iter().position(|l| l.trim() == "```").expect("the block ends");
    lines[start..start + len].join("\n")
}

fn remote(text: &str) -> serde_json::Value {
    let file = PoolFile::parse(text, "test.toml").unwrap();
    let workers = file.build_workers(Path::new("/tmp/data"));
    let worker = workers.iter().find(|w| w.kind() == WorkerKind::Remote).expect("a remote worker");
    worker.info().capabilities
}

#[test]
fn the_documented_examples_parse_with_their_remote_worker() {
    // The examples read the key from REMOTE_KEY.
    std::env::set_var("REMOTE_KEY", "secret");
    for (origin, doc) in
        [("src/config.rs", include_str!("../src/config.rs")), ("docs/pool.md", include_str!("../../../docs/pool.md"))]
    {
        let text = toml_block(doc);
        let file = PoolFile::parse(&text, origin).unwrap_or_else(|e| panic!("{origin}: {e}"));
        assert!(file.worker_ids().contains(&"remote-0".to_string()), "{origin}: {:?}", file.worker_ids());
        let spec = file.workers.iter().find(|w| w.url.is_some()).unwrap();
        assert_eq!(spec.url.as_deref(), Some("http://127.0.0.1:8001"), "{origin}");
        assert_eq!(spec.protocol, Some(RemoteProtocol::OpenAi), "{origin}");
        assert_eq!(spec.timeout, Some(60.0), "{origin}");
        let caps = remote(&text);
        assert_eq!(caps["url"], "http://127.0.0.1:8001", "{origin}");
        assert_eq!(caps["protocol"], "openai", "{origin}");
        assert_eq!(caps["models"]["all-MiniLM-L6-v2"], "minilm", "{origin}");
        assert!(!caps.to_string().contains("secret"), "the key is never shown: {caps}");
    }
}

#[test]
fn a_remote_worker_needs_only_a_url() {
    let file = PoolFile::parse("[[worker]]\nkind = \"remote\"\nurl = \"https://embed.example/\"\n", "min").unwrap();
    let spec = &file.workers[0];
    assert_eq!(spec.protocol, None, "openai is the default");
    let workers = file.build_workers(Path::new("/tmp/data"));
    let worker = &workers[0];
    assert_eq!(worker.id(), "remote-0");
    assert_eq!(worker.kind(), WorkerKind::Remote);
    assert_eq!(worker.info().capabilities["protocol"], "openai");
    assert_eq!(worker.info().capabilities["url"], "https://embed.example", "trailing slash dropped");
    // Without a models map every model is sent, under its directory's name.
    assert_eq!(worker.unsupported(Path::new("/models/all-MiniLM-L6-v2")), None);
    assert!(!worker.has_loaded(Path::new("/models/all-MiniLM-L6-v2")));
}

#[test]
fn tei_with_a_models_map_refuses_models_outside_it() {
    let text = "[[worker]]\nkind = \"remote\"\nid = \"tei\"\nurl = \"http://127.0.0.1:8080\"\nprotocol = \"tei\"\n\
                timeout = 2.5\nconnect_timeout = 0.5\napi_key = \"k\"\nmodels = { \"all-MiniLM-L6-v2\" = \"minilm\" }\n";
    let caps = remote(text);
    assert_eq!(caps["protocol"], "tei");
    let workers = PoolFile::parse(text, "t").unwrap().build_workers(Path::new("/tmp/data"));
    let worker = &workers[0];
    assert_eq!(worker.id(), "tei");
    assert_eq!(worker.unsupported(Path::new("/m/all-MiniLM-L6-v2")), None);
    let why = worker.unsupported(Path::new("/m/bge-small")).expect("not in the map");
    assert!(why.contains("/m/bge-small") && why.contains("all-MiniLM-L6-v2"), "{why}");
}

#[test]
fn the_api_key_can_come_from_the_environment() {
    std::env::set_var("IPFS_ACCELERATE_TEST_REMOTE_KEY", "from-env");
    let text = "[[worker]]\nkind = \"remote\"\nurl = \"http://127.0.0.1:1\"\napi_key_env = \"IPFS_ACCELERATE_TEST_REMOTE_KEY\"\n";
    assert!(PoolFile::parse(text, "t").is_ok());
    let unset = text.replace("IPFS_ACCELERATE_TEST_REMOTE_KEY", "IPFS_ACCELERATE_TEST_UNSET_KEY");
    let e = invalid(&unset);
    assert!(e.contains("IPFS_ACCELERATE_TEST_UNSET_KEY") && e.contains("not set"), "{e}");
}

#[test]
fn remote_mistakes_are_errors_naming_what_is_wrong() {
    let r = |extra: &str| format!("[[worker]]\nkind = \"remote\"\n{extra}\n");
    let url = "url = \"http://127.0.0.1:8001\"\n";
    assert!(invalid(&r("")).contains("needs url"));
    assert!(invalid(&r("url = \"ftp://host\"")).contains("\"ftp\""));
    assert!(invalid(&r("url = \"127.0.0.1:8001\"")).contains("http://host:port"));
    assert!(invalid(&r("url = \"http:///v1\"")).contains("no host"));
    assert!(invalid(&r("url = \"http://h:1/v1\"")).contains("ends in /v1"));
    assert!(invalid(&r("url = \"http://h:1/?a=b\"")).contains("query"));
    let e = invalid(&r(&format!("{url}protocol = \"grpc\"")));
    assert!(e.contains("unknown variant") && e.contains("grpc") && e.contains("line"), "{e}");
    assert!(invalid(&r(&format!("{url}timeout = 0"))).contains("timeout = 0"));
    assert!(invalid(&r(&format!("{url}connect_timeout = -1"))).contains("connect_timeout"));
    assert!(invalid(&r(&format!("{url}timeout = inf"))).contains("timeout"));
    assert!(invalid(&r(&format!("{url}api_key = \"a\"\napi_key_env = \"B\""))).contains("not both"));
    assert!(invalid(&r(&format!("{url}models = {{}}"))).contains("maps nothing"));
    assert!(invalid(&r(&format!("{url}models = {{ a = \"\" }}"))).contains("empty name"));
    // Fields of local and browser workers make no sense on a remote one …
    for field in
        ["browser = \"chromium\"", "ephemeral = true", "headless = false", "precision = 16", "memory_budget_mb = 1"]
    {
        let e = invalid(&r(&format!("{url}{field}")));
        let name = field.split(' ').next().unwrap();
        assert!(e.contains(name) && e.contains("remote worker"), "{field}: {e}");
    }
    // … and a remote's fields make no sense on them.
    for kind in ["cpu", "webgpu", "browser-webgpu", "browser-webnn"] {
        let e = invalid(&format!("[[worker]]\nkind = \"{kind}\"\n{url}"));
        assert!(e.contains("url applies to remote workers") && e.contains(kind), "{e}");
        let e = invalid(&format!("[[worker]]\nkind = \"{kind}\"\nmodels = {{ a = \"b\" }}\n"));
        assert!(e.contains("models applies to remote workers"), "{e}");
    }
}

#[test]
fn a_remote_worker_made_by_hand_with_a_bad_url_refuses_every_model() {
    let config = ipfs_accelerate_pool::RemoteConfig::new("localhost:8000");
    let worker = ipfs_accelerate_pool::RemoteWorker::new("r", config);
    let why = worker.unsupported(Path::new("/m/x")).expect("refused");
    assert!(why.contains("http://host:port"), "{why}");
    let e = worker.embed(Path::new("/m/x"), &["a"]).unwrap_err();
    assert!(e.message.contains("localhost:8000"), "{e}");
    assert!(worker.health(Duration::from_secs(1)).is_err());
}
