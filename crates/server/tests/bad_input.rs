//! Bad requests get the right status and a JSON error in the route's API
//! shape, and the server keeps serving: malformed JSON, wrong types, empty
//! input, unknown models, too many tokens, oversized bodies, API keys,
//! unknown routes; and a seeded fuzz run over mutated bodies never gets a
//! 5xx or a dropped connection.

mod support;

use ipfs_accelerate_server::Server;
use serde_json::json;
use support::{get, post, post_bytes, post_to, Answer};

/// Asserts `answer` is an OpenAI-shaped error with `status`.
fn openai_error(answer: &Answer, status: u16, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
    assert!(answer.content_type.starts_with("application/json"), "{what}: {}", answer.content_type);
    let json = answer.json();
    let error = &json["error"];
    assert!(!error["message"].as_str().unwrap().is_empty(), "{what}: {json}");
    assert!(error["type"].is_string(), "{what}: {json}");
    assert!(error.get("param").is_some() && error.get("code").is_some(), "{what}: {json}");
}

/// Asserts `answer` is a TEI-shaped error with `status`.
fn tei_error(answer: &Answer, status: u16, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
    let json = answer.json();
    assert!(!json["error"].as_str().unwrap().is_empty(), "{what}: {json}");
    assert!(json["error_type"].is_string(), "{what}: {json}");
}

#[test]
fn bad_requests_get_json_errors_and_the_server_keeps_serving() {
    let Some(dir) = support::minilm() else { return };
    let mut config = support::config(&dir, support::cpu_pool());
    config.max_body_bytes = 64 * 1024;
    let server = Server::start(config).unwrap();
    let good = json!({ "model": "minilm", "input": ["a good request"] }).to_string();
    let long = "word ".repeat(600);
    let huge = json!({ "model": "minilm", "input": "x ".repeat(40_000) }).to_string();
    let openai_cases: Vec<(String, u16, Option<&str>)> = vec![
        ("{".into(), 400, None),
        ("".into(), 400, None),
        ("[]".into(), 400, None),
        ("\"text\"".into(), 400, None),
        (json!({ "model": "minilm", "input": 5 }).to_string(), 400, None),
        (json!({ "model": "minilm", "input": [1, 2, 3] }).to_string(), 400, None),
        (json!({ "model": "minilm", "input": [[1, 2], [3]] }).to_string(), 400, None),
        (json!({ "model": "minilm", "input": ["ok", null] }).to_string(), 400, None),
        (json!({ "model": "minilm", "input": "" }).to_string(), 400, None),
        (json!({ "model": "minilm", "input": ["ok", ""] }).to_string(), 400, None),
        (json!({ "model": "minilm", "input": [] }).to_string(), 400, None),
        (json!({ "model": "minilm" }).to_string(), 400, None),
        (json!({ "input": "x" }).to_string(), 400, None),
        (json!({ "model": 7, "input": "x" }).to_string(), 400, None),
        (json!({ "model": "nope", "input": "x" }).to_string(), 404, Some("model_not_found")),
        (json!({ "model": "minilm", "input": long }).to_string(), 400, Some("context_length_exceeded")),
        (json!({ "model": "minilm", "input": "x", "encoding_format": "hex" }).to_string(), 400, None),
        (json!({ "model": "minilm", "input": "x", "encoding_format": 1 }).to_string(), 400, None),
        (json!({ "model": "minilm", "input": "x", "dimensions": 128 }).to_string(), 400, None),
        (huge.clone(), 413, None),
    ];
    for (body, status, code) in &openai_cases {
        let what = format!("/v1/embeddings {:.60}", body);
        let answer = post(&server, "/v1/embeddings", body);
        openai_error(&answer, *status, &what);
        if let Some(code) = code {
            assert_eq!(answer.json()["error"]["code"], *code, "{what}");
        }
        assert_eq!(post(&server, "/v1/embeddings", &good).status, 200, "after {what}");
    }
    let tei_cases: Vec<(String, u16)> = vec![
        ("{".into(), 400),
        ("[1]".into(), 422),
        (json!({ "inputs": 5 }).to_string(), 422),
        (json!({ "inputs": "" }).to_string(), 422),
        (json!({ "inputs": [] }).to_string(), 400),
        (json!({}).to_string(), 422),
        (json!({ "inputs": "x", "truncate": "yes" }).to_string(), 422),
        (json!({ "inputs": "x", "normalize": false }).to_string(), 422),
        (json!({ "inputs": "x", "model": "nope" }).to_string(), 404),
        (json!({ "inputs": long }).to_string(), 413),
        (json!({ "inputs": "x ".repeat(40_000) }).to_string(), 413),
    ];
    for (body, status) in &tei_cases {
        let what = format!("/embed {:.60}", body);
        tei_error(&post(&server, "/embed", body), *status, &what);
        assert_eq!(post(&server, "/embed", &json!({ "inputs": "fine" }).to_string()).status, 200, "after {what}");
    }
    // Routes and methods that do not exist, and models that are not loaded.
    openai_error(&get(&server, "/v1/nothing", None), 404, "unknown /v1 route");
    tei_error(&get(&server, "/nothing", None), 404, "unknown route");
    openai_error(&get(&server, "/v1/embeddings", None), 405, "GET /v1/embeddings");
    for path in ["/v1/chat/completions", "/v1/completions", "/v1/audio/transcriptions"] {
        let answer = post(&server, path, &json!({ "model": "x", "messages": [] }).to_string());
        openai_error(&answer, 404, path);
        assert!(answer.json()["error"]["message"].as_str().unwrap().contains("model is loaded"), "{path}");
    }
    for path in ["/generate", "/generate_stream"] {
        let answer = post(&server, path, &json!({ "inputs": "x" }).to_string());
        tei_error(&answer, 404, path);
        assert!(answer.json()["error"].as_str().unwrap().contains("no text-generation model"), "{path}");
    }
    assert_eq!(post(&server, "/v1/embeddings", &good).status, 200);
    server.shutdown().unwrap();
}

#[test]
fn api_key_is_required_except_for_health() {
    let Some(dir) = support::minilm() else { return };
    let mut config = support::config(&dir, support::cpu_pool());
    config.api_key = Some("s3cret-key".into());
    let server = Server::start(config).unwrap();
    let addr = server.addr();
    let body = json!({ "model": "minilm", "input": "hello" }).to_string();
    openai_error(&post_to(addr, "/v1/embeddings", &body, None), 401, "no key");
    openai_error(&post_to(addr, "/v1/embeddings", &body, Some("wrong")), 401, "wrong key");
    openai_error(&post_to(addr, "/v1/embeddings", &body, Some("s3cret-key-longer")), 401, "longer key");
    assert_eq!(post_to(addr, "/v1/embeddings", &body, Some("s3cret-key")).status, 200);
    tei_error(&post_to(addr, "/embed", &json!({ "inputs": "x" }).to_string(), None), 401, "TEI without key");
    assert_eq!(post_to(addr, "/embed", &json!({ "inputs": "x" }).to_string(), Some("s3cret-key")).status, 200);
    openai_error(&get(&server, "/v1/models", None), 401, "models without key");
    assert_eq!(get(&server, "/v1/models", Some("s3cret-key")).status, 200);
    assert_eq!(get(&server, "/metrics", None).status, 401);
    assert_eq!(get(&server, "/health", None).status, 200, "health stays open");
    server.shutdown().unwrap();
}

/// xorshift64*: a fixed seed makes every run send the same bodies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A random JSON value, a few levels deep.
fn random_value(rng: &mut Rng, depth: usize) -> serde_json::Value {
    match rng.below(if depth > 2 { 6 } else { 8 }) {
        0 => json!(null),
        1 => json!(rng.below(2) == 0),
        2 => json!(rng.next() as i64 % 100_000),
        3 => json!(f64::from_bits(rng.next() & 0x7fef_ffff_ffff_ffff) % 1e6),
        4 => json!(""),
        5 => {
            let words = ["minilm", "base64", "float", "hello", "ω", "\u{0}", "[", "384", "inputs"];
            json!((0..rng.below(5)).map(|_| words[rng.below(words.len())]).collect::<Vec<_>>().join(" "))
        }
        6 => json!((0..rng.below(4)).map(|_| random_value(rng, depth + 1)).collect::<Vec<_>>()),
        _ => {
            let keys = ["input", "inputs", "model", "encoding_format", "dimensions", "truncate", "normalize", "x"];
            let map: serde_json::Map<String, serde_json::Value> = (0..rng.below(4))
                .map(|_| (keys[rng.below(keys.len())].to_string(), random_value(rng, depth + 1)))
                .collect();
            serde_json::Value::Object(map)
        }
    }
}

/// A valid body with one field replaced, or its bytes mutated.
fn mutated(rng: &mut Rng, tei: bool) -> Vec<u8> {
    let mut body = if tei {
        json!({ "inputs": ["fuzz me", "again"], "truncate": false, "normalize": true })
    } else {
        json!({ "model": "minilm", "input": ["fuzz me", "again"], "encoding_format": "float" })
    };
    let keys: Vec<String> = body.as_object().unwrap().keys().cloned().collect();
    match rng.below(4) {
        0 => {
            let key = &keys[rng.below(keys.len())];
            body[key] = random_value(rng, 0);
            serde_json::to_vec(&body).unwrap()
        }
        1 => serde_json::to_vec(&random_value(rng, 0)).unwrap(),
        _ => {
            let mut bytes = serde_json::to_vec(&body).unwrap();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(bytes.len().max(1));
                match rng.below(3) {
                    0 => bytes[i] = rng.next() as u8,
                    1 => bytes.truncate(i),
                    _ => {
                        let extra = b"{}[]\",:\\0e-9\xff";
                        bytes.insert(i, extra[rng.below(extra.len())])
                    }
                }
                if bytes.is_empty() {
                    break;
                }
            }
            bytes
        }
    }
}

#[test]
fn fuzzed_bodies_never_get_a_server_error() {
    let Some(dir) = support::minilm() else { return };
    let server = support::start(&dir);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..400 {
        let tei = i % 2 == 1;
        let path = if tei { "/embed" } else { "/v1/embeddings" };
        let body = mutated(&mut rng, tei);
        let shown = String::from_utf8_lossy(&body).into_owned();
        let answer = post_bytes(server.addr(), path, &body).unwrap_or_else(|| panic!("connection dropped on {shown}"));
        assert!(answer.status < 500, "{path} {shown}: {} {}", answer.status, answer.body);
        if answer.status >= 400 {
            let json = answer.json();
            assert!(json.get("error").is_some(), "{path} {shown}: {json}");
        }
    }
    let good = json!({ "model": "minilm", "input": "still serving" }).to_string();
    assert_eq!(post(&server, "/v1/embeddings", &good).status, 200);
    server.shutdown().unwrap();
}
