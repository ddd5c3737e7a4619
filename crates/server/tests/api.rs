//! The OpenAI and TEI routes against the real all-MiniLM-L6-v2 on a CPU
//! pool: the embeddings equal a direct CPU run, token counts equal the
//! tokenizer's, and /info, /health, /v1/models, /metrics and /openapi.json
//! answer as documented.

mod support;

use base64::Engine as _;
use ipfs_accelerate_ipfs::MemoryStore;
use ipfs_accelerate_models::{BackendChoice, TextEmbedder};
use ipfs_accelerate_server::Server;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use support::{get, max_diff, post};

const TEXTS: [&str; 3] = [
    "Content-addressed weights are verified on load.",
    "A pool of browsers keeps answering when one crashes.",
    "short",
];

fn floats(value: &Value) -> Vec<f32> {
    value.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

#[test]
fn openai_and_tei_embeddings_equal_the_cpu_backend() {
    let Some(dir) = support::minilm() else { return };
    let direct = TextEmbedder::load(&dir, BackendChoice::Cpu).unwrap();
    let want = direct.embed(&TEXTS, 8).unwrap();
    let tokens: Vec<usize> = direct.tokenize(&TEXTS).unwrap().iter().map(|e| e.ids.len()).collect();
    let server = support::start(&dir);

    // Float encoding, array input: order kept, usage from the tokenizer.
    let body = serde_json::json!({ "model": "minilm", "input": TEXTS }).to_string();
    let answer = post(&server, "/v1/embeddings", &body);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.content_type.starts_with("application/json"));
    let json = answer.json();
    assert_eq!(json["object"], "list");
    assert_eq!(json["model"], "minilm");
    let data = json["data"].as_array().unwrap();
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["index"], i);
        assert_eq!(item["object"], "embedding");
    }
    let got: Vec<Vec<f32>> = data.iter().map(|d| floats(&d["embedding"])).collect();
    assert!(max_diff(&got, &want) < 1e-5);
    let total: usize = tokens.iter().sum();
    assert_eq!(json["usage"]["prompt_tokens"], total);
    assert_eq!(json["usage"]["total_tokens"], total);

    // Base64: little-endian float32 bytes.
    let body = serde_json::json!({ "model": "minilm", "input": TEXTS, "encoding_format": "base64" }).to_string();
    let json = post(&server, "/v1/embeddings", &body).json();
    let got: Vec<Vec<f32>> = json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let bytes = base64::engine::general_purpose::STANDARD.decode(d["embedding"].as_str().unwrap()).unwrap();
            bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        })
        .collect();
    assert!(max_diff(&got, &want) < 1e-5);

    // A single string, and `dimensions` equal to the model's.
    let body = serde_json::json!({ "model": "minilm", "input": TEXTS[1], "dimensions": 384 }).to_string();
    let json = post(&server, "/v1/embeddings", &body).json();
    assert_eq!(json["data"].as_array().unwrap().len(), 1);
    assert!(max_diff(&[floats(&json["data"][0]["embedding"])], &want[1..2]) < 1e-5);
    assert_eq!(json["usage"]["prompt_tokens"], tokens[1]);

    // TEI /embed: the same vectors (the model normalizes already).
    let answer = post(&server, "/embed", &serde_json::json!({ "inputs": TEXTS }).to_string());
    assert_eq!(answer.status, 200, "{}", answer.body);
    let got: Vec<Vec<f32>> = answer.json().as_array().unwrap().iter().map(floats).collect();
    assert!(max_diff(&got, &want) < 1e-5);
    // TEI's main route `POST /` is the same.
    let answer = post(&server, "/", &serde_json::json!({ "inputs": TEXTS, "normalize": null }).to_string());
    assert_eq!(answer.status, 200, "{}", answer.body);
    let got: Vec<Vec<f32>> = answer.json().as_array().unwrap().iter().map(floats).collect();
    assert!(max_diff(&got, &want) < 1e-5);
    let answer = post(&server, "/embed", &serde_json::json!({ "inputs": TEXTS[0], "truncate": true }).to_string());
    let got: Vec<Vec<f32>> = answer.json().as_array().unwrap().iter().map(floats).collect();
    assert!(max_diff(&got, &want[..1]) < 1e-5);

    // Truncation equals what the embedder does to an over-long text.
    let long = "word ".repeat(600);
    let want_long = direct.embed(&[long.as_str()], 1).unwrap();
    let answer = post(&server, "/embed", &serde_json::json!({ "inputs": [long], "truncate": true }).to_string());
    assert_eq!(answer.status, 200, "{}", answer.body);
    let got: Vec<Vec<f32>> = answer.json().as_array().unwrap().iter().map(floats).collect();
    assert!(max_diff(&got, &want_long) < 1e-5);

    // /info, /health, /v1/models.
    let info = get(&server, "/info", None).json();
    assert_eq!(info["model_id"], "minilm");
    assert_eq!(info["model_dtype"], "float32");
    assert_eq!(info["max_input_length"], direct.max_seq_length());
    assert_eq!(info["max_concurrent_requests"], 512);
    assert_eq!(info["max_client_batch_size"], 2048);
    assert!(info["version"].is_string());
    let health = get(&server, "/health", None);
    assert_eq!(health.status, 200, "{}", health.body);
    let models = get(&server, "/v1/models", None).json();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "minilm");
    assert_eq!(models["data"].as_array().unwrap().len(), 1);
    server.shutdown().unwrap();
}

/// One sample line of the Prometheus text format: name, labels, value.
fn parse_sample(line: &str) -> (String, HashMap<String, String>, f64) {
    let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
    };
    let (name, labels) = match series.split_once('{') {
        None => (series.to_string(), HashMap::new()),
        Some((name, rest)) => {
            let rest = rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels: {line}"));
            let mut labels = HashMap::new();
            let mut chars = rest.chars().peekable();
            while chars.peek().is_some() {
                let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                assert_eq!(chars.next(), Some('"'), "label value not quoted: {line}");
                let mut value = String::new();
                loop {
                    match chars.next().unwrap_or_else(|| panic!("unterminated label: {line}")) {
                        '\\' => value.push(chars.next().unwrap()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
                if chars.peek() == Some(&',') {
                    chars.next();
                }
                assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "bad label name in {line}");
                labels.insert(key, value);
            }
            (name.to_string(), labels)
        }
    };
    assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'), "bad metric name in {line}");
    (name, labels, value)
}

#[test]
fn metrics_parse_and_count_requests() {
    let Some(dir) = support::minilm() else { return };
    let server = support::start(&dir);
    let body = serde_json::json!({ "model": "minilm", "input": "hello" }).to_string();
    for _ in 0..3 {
        assert_eq!(post(&server, "/v1/embeddings", &body).status, 200);
    }
    assert_eq!(post(&server, "/v1/embeddings", "{").status, 400);
    assert_eq!(get(&server, "/health", None).status, 200);
    let answer = get(&server, "/metrics", None);
    assert_eq!(answer.status, 200);
    assert!(answer.content_type.starts_with("text/plain; version=0.0.4"), "{}", answer.content_type);
    let mut typed = HashMap::new();
    let mut samples = Vec::new();
    for line in answer.body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.insert(name.to_string(), kind.to_string());
        } else if line.starts_with("# HELP ") {
        } else {
            assert!(!line.starts_with('#') && !line.is_empty(), "unexpected line {line:?}");
            samples.push(parse_sample(line));
        }
    }
    for (name, _, _) in &samples {
        let base = name.trim_end_matches("_bucket").trim_end_matches("_sum").trim_end_matches("_count");
        assert!(typed.contains_key(name) || typed.contains_key(base), "{name} has no TYPE line");
    }
    let find = |name: &str, labels: &[(&str, &str)]| -> f64 {
        samples
            .iter()
            .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
            .map(|s| s.2)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{}", answer.body))
    };
    let ok = [("route", "/v1/embeddings"), ("status", "200")];
    assert_eq!(find("ipfs_accelerate_http_requests_total", &ok), 3.0);
    let bad = [("route", "/v1/embeddings"), ("status", "400")];
    assert_eq!(find("ipfs_accelerate_http_requests_total", &bad), 1.0);
    let route = [("route", "/v1/embeddings")];
    assert_eq!(find("ipfs_accelerate_http_request_duration_seconds_count", &route), 4.0);
    assert_eq!(
        find("ipfs_accelerate_http_request_duration_seconds_bucket", &[("route", "/v1/embeddings"), ("le", "+Inf")]),
        4.0
    );
    assert_eq!(find("ipfs_accelerate_pool_queue_depth", &[]), 0.0);
    assert_eq!(find("ipfs_accelerate_pool_worker_state", &[("worker", "cpu-0"), ("kind", "native-cpu")]), 1.0);
    assert_eq!(find("ipfs_accelerate_pool_worker_answered_total", &[("worker", "cpu-0")]), 3.0);
    // This /metrics request itself is in flight while rendering.
    assert_eq!(find("ipfs_accelerate_http_requests_in_flight", &[]), 1.0);
    server.shutdown().unwrap();
}

#[test]
fn every_route_in_the_openapi_document_answers() {
    let Some(dir) = support::minilm() else { return };
    let mut config = support::config(&dir, support::cpu_pool());
    config.blocks = Some(Arc::new(MemoryStore::new()));
    let server = Server::start(config).unwrap();
    let doc = get(&server, "/openapi.json", None).json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 13);
    for (path, ops) in paths {
        let path = path.replace("{cid}", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku");
        for (method, _) in ops.as_object().unwrap() {
            let answer = match method.as_str() {
                "get" => get(&server, &path, None),
                "post" => post(&server, &path, "{}"),
                other => panic!("unexpected method {other}"),
            };
            // Answered by the route itself, never the unknown-route fallback.
            assert_ne!(answer.status, 405, "{method} {path}: {}", answer.body);
            assert!(answer.status < 500 || path == "/health", "{method} {path}: {}", answer.body);
            if answer.status == 404 {
                assert!(!answer.body.contains("there is no route"), "{method} {path} is not routed: {}", answer.body);
            }
        }
    }
    server.shutdown().unwrap();
}
