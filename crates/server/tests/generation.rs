//! Text generation over HTTP with the real SmolLM2-135M-Instruct (Q4_1
//! GGUF): OpenAI's chat and completions, whole and streamed, TGI's
//! `/generate` and `/generate_stream`, greedy answers equal to
//! transformers', bad requests, the API key, cancellation when a streaming
//! client disconnects, and the official `openai` Python client streaming a
//! chat. Servers run in-process on 127.0.0.1:0 and are shut down at the end
//! of each test.

mod support;

#[path = "../../models/tests/common/smollm2.rs"]
mod smollm2;

#[path = "../../models/tests/common/client_venv.rs"]
mod client_venv;

use ipfs_accelerate_models::llm::chat_template::ChatMessage;
use ipfs_accelerate_models::llm::text::Prompt;
use ipfs_accelerate_models::llm::weights::WeightBits;
use ipfs_accelerate_pool::{Pool, PoolConfig};
use ipfs_accelerate_server::{GeneratorSpec, ModelSpec, RunningServer, Server, ServerConfig};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::{get, post, post_to, Answer};

const MODEL: &str = "smollm2";
const QUESTION: &str = "What is the capital of France?";
/// transformers' greedy answer to [`QUESTION`].
const ANSWER: &str = "The capital of France is Paris.";
const PROMPT: &str = "The capital of France is";
/// transformers' first 6 greedy tokens after [`PROMPT`] (" Paris", ".",
/// "\n", "\n", "The", " answer").
const CONTINUATION: &str = " Paris.\n\nThe answer";

/// The model, loaded once for every test of this binary.
fn smollm2() -> Option<GeneratorSpec> {
    static LOADED: OnceLock<Option<GeneratorSpec>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let path = smollm2::smollm2_gguf()?;
            Some(GeneratorSpec::load(MODEL, &path, WeightBits::AsStored).expect("SmolLM2 loads"))
        })
        .clone()
}

/// A config serving only the generator, over an empty pool.
fn config(spec: GeneratorSpec) -> ServerConfig {
    let pool = std::sync::Arc::new(Pool::new(PoolConfig::default()));
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), Vec::new(), pool);
    config.generators = vec![spec];
    config
}

fn start(spec: GeneratorSpec) -> RunningServer {
    Server::start(config(spec)).expect("the server starts")
}

/// The `data:` payloads of a Server-Sent Events body.
fn events(answer: &Answer) -> Vec<String> {
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.content_type.starts_with("text/event-stream"), "{}", answer.content_type);
    answer
        .body
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| e.strip_prefix("data: ").unwrap_or_else(|| panic!("not an SSE data event: {e:?}")).to_string())
        .collect()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

fn chat_body(extra: Value) -> Value {
    let mut body = json!({
        "model": MODEL,
        "messages": [{ "role": "user", "content": QUESTION }],
        "temperature": 0,
        "max_tokens": 40,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn post_json(server: &RunningServer, path: &str, body: &Value) -> Answer {
    post(server, path, &body.to_string())
}

/// The prompt's token count as the model's own tokenizer counts it.
fn prompt_tokens(spec: &GeneratorSpec, prompt: &Prompt) -> u64 {
    spec.generator.encode(prompt).unwrap().len() as u64
}

#[test]
fn greedy_chat_whole_and_streamed_equals_transformers() {
    let Some(spec) = smollm2() else { return };
    let server = start(spec.clone());
    let want_prompt = prompt_tokens(&spec, &Prompt::Chat(vec![ChatMessage::new("user", QUESTION)]));

    let answer = post_json(&server, "/v1/chat/completions", &chat_body(json!({})));
    assert_eq!(answer.status, 200, "{}", answer.body);
    let whole = answer.json();
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["model"], MODEL);
    assert!(whole["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let choice = &whole["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], ANSWER);
    assert_eq!(choice["finish_reason"], "stop");
    let usage = &whole["usage"];
    assert_eq!(usage["prompt_tokens"].as_u64().unwrap(), want_prompt);
    let completion = usage["completion_tokens"].as_u64().unwrap();
    assert!(completion >= 7, "{usage}");
    assert_eq!(usage["total_tokens"].as_u64().unwrap(), want_prompt + completion);

    let streamed = post_json(
        &server,
        "/v1/chat/completions",
        &chat_body(json!({ "stream": true, "stream_options": { "include_usage": true } })),
    );
    let payloads = events(&streamed);
    assert_eq!(payloads.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = payloads[..payloads.len() - 1].iter().map(|p| json(p)).collect();
    assert!(chunks.len() >= 4, "{payloads:?}");
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk" && c["id"] == chunks[0]["id"]));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String =
        chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect::<Vec<_>>().concat();
    assert_eq!(content, ANSWER);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert!(finish["usage"].is_null());
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"], *usage);

    // Without include_usage no chunk carries `usage`.
    let plain = events(&post_json(&server, "/v1/chat/completions", &chat_body(json!({ "stream": true }))));
    assert!(plain[..plain.len() - 1].iter().all(|p| json(p).get("usage").is_none()), "{plain:?}");
    server.shutdown().unwrap();
}

#[test]
fn completions_whole_and_streamed() {
    let Some(spec) = smollm2() else { return };
    let server = start(spec.clone());
    let body = json!({ "model": MODEL, "prompt": PROMPT, "max_tokens": 6, "temperature": 0 });
    let answer = post_json(&server, "/v1/completions", &body);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let whole = answer.json();
    assert_eq!(whole["object"], "text_completion");
    assert_eq!(whole["choices"][0]["text"], CONTINUATION);
    assert_eq!(whole["choices"][0]["finish_reason"], "length");
    let want_prompt = prompt_tokens(&spec, &Prompt::Text(PROMPT.into()));
    assert_eq!(
        whole["usage"],
        json!({ "prompt_tokens": want_prompt, "completion_tokens": 6, "total_tokens": want_prompt + 6 })
    );

    // An array of one prompt is the same request.
    let mut one = body.clone();
    one["prompt"] = json!([PROMPT]);
    assert_eq!(post_json(&server, "/v1/completions", &one).json()["choices"][0]["text"], CONTINUATION);

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let payloads = events(&post_json(&server, "/v1/completions", &streamed));
    assert_eq!(payloads.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = payloads[..payloads.len() - 1].iter().map(|p| json(p)).collect();
    let text: String = chunks.iter().map(|c| c["choices"][0]["text"].as_str().unwrap()).collect();
    assert_eq!(text, CONTINUATION);
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "length");

    // A stop string ends the text before it.
    let mut stopped = body.clone();
    stopped["stop"] = json!("\n");
    let answer = post_json(&server, "/v1/completions", &stopped).json();
    assert_eq!(answer["choices"][0]["text"], " Paris.");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    server.shutdown().unwrap();
}

#[test]
fn tgi_generate_and_generate_stream() {
    let Some(spec) = smollm2() else { return };
    let server = start(spec);
    let body = json!({ "inputs": PROMPT, "parameters": { "max_new_tokens": 6, "details": true } });
    let answer = post_json(&server, "/generate", &body);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let whole = answer.json();
    assert_eq!(whole["generated_text"], CONTINUATION);
    let details = &whole["details"];
    assert_eq!(details["finish_reason"], "length");
    assert_eq!(details["generated_tokens"], 6);
    assert!(details["seed"].is_null(), "greedy: no seed");
    let tokens = details["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 6);
    let text: String = tokens.iter().map(|t| t["text"].as_str().unwrap()).collect();
    assert_eq!(text, CONTINUATION);

    // Without details, only the text.
    let plain = post_json(&server, "/generate", &json!({ "inputs": PROMPT, "parameters": { "max_new_tokens": 6 } }));
    assert_eq!(plain.json(), json!({ "generated_text": CONTINUATION }));

    // A stop sequence, and return_full_text.
    let stop = json!({ "inputs": PROMPT, "parameters": {
        "max_new_tokens": 6, "stop": ["\n"], "details": true, "return_full_text": true } });
    let stopped = post_json(&server, "/generate", &stop).json();
    assert_eq!(stopped["generated_text"], format!("{PROMPT} Paris."));
    assert_eq!(stopped["details"]["finish_reason"], "stop_sequence");

    let payloads = events(&post_json(&server, "/generate_stream", &body));
    let streamed: Vec<Value> = payloads.iter().map(|p| json(p)).collect();
    let text: String = streamed.iter().map(|e| e["token"]["text"].as_str().unwrap()).collect();
    assert_eq!(text, CONTINUATION);
    let (last, rest) = streamed.split_last().unwrap();
    assert!(rest.iter().all(|e| e["generated_text"].is_null() && e["details"].is_null()));
    assert_eq!(last["generated_text"], CONTINUATION);
    assert_eq!(last["details"]["finish_reason"], "length");
    assert_eq!(last["details"]["generated_tokens"], 6);

    // `POST /` on a server of generation models only is TGI's compat route.
    let compat = json!({ "inputs": PROMPT, "parameters": { "max_new_tokens": 6 } });
    assert_eq!(post_json(&server, "/", &compat).json(), json!([{ "generated_text": CONTINUATION }]));
    let mut compat_stream = compat.clone();
    compat_stream["stream"] = json!(true);
    let last = json(events(&post_json(&server, "/", &compat_stream)).last().unwrap());
    assert_eq!(last["generated_text"], CONTINUATION);

    // Sampling with a seed is reproducible and reports the seed.
    let sampled = json!({ "inputs": PROMPT, "parameters": {
        "max_new_tokens": 8, "do_sample": true, "temperature": 0.8, "seed": 42, "details": true } });
    let a = post_json(&server, "/generate", &sampled).json();
    let b = post_json(&server, "/generate", &sampled).json();
    assert_eq!(a["generated_text"], b["generated_text"]);
    assert_eq!(a["details"]["seed"], 42);
    server.shutdown().unwrap();
}

#[test]
fn concurrent_requests_each_get_their_own_sequence() {
    let Some(spec) = smollm2() else { return };
    let server = start(spec);
    let addr = server.addr();
    let threads: Vec<_> = (0..3)
        .map(|i| {
            std::thread::spawn(move || {
                let body = if i == 1 {
                    chat_body(json!({})).to_string()
                } else {
                    json!({ "model": MODEL, "prompt": PROMPT, "max_tokens": 6, "temperature": 0 }).to_string()
                };
                let path = if i == 1 { "/v1/chat/completions" } else { "/v1/completions" };
                post_to(addr, path, &body, None).json()
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let answer = t.join().unwrap();
        if i == 1 {
            assert_eq!(answer["choices"][0]["message"]["content"], ANSWER);
        } else {
            assert_eq!(answer["choices"][0]["text"], CONTINUATION);
        }
    }
    server.shutdown().unwrap();
}

/// Asserts `answer` is an OpenAI error with `status` and, when given, `code`.
fn openai_error(answer: &Answer, status: u16, code: Option<&str>, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
    let body = answer.json();
    let message = body["error"]["message"].as_str().unwrap_or_else(|| panic!("{what}: no message: {body}"));
    assert!(!message.is_empty());
    if let Some(code) = code {
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
    }
}

#[test]
fn bad_requests_get_clear_errors() {
    let Some(spec) = smollm2() else { return };
    let server = start(spec);
    let chat = "/v1/chat/completions";
    let cases: Vec<(&str, Value, u16, Option<&str>)> = vec![
        (chat, json!({ "model": MODEL }), 400, None),
        (chat, json!({ "model": MODEL, "messages": [] }), 400, None),
        (chat, json!({ "messages": [{ "role": "user", "content": "hi" }] }), 400, None),
        (chat, chat_body(json!({ "n": 2 })), 400, Some("unsupported_parameter")),
        (chat, chat_body(json!({ "max_tokens": -1 })), 400, None),
        (chat, chat_body(json!({ "max_tokens": 0 })), 400, None),
        (chat, chat_body(json!({ "temperature": -1 })), 400, None),
        (chat, chat_body(json!({ "temperature": "hot" })), 400, None),
        (chat, chat_body(json!({ "top_p": 1.5 })), 400, None),
        (chat, chat_body(json!({ "frequency_penalty": 0.5 })), 400, Some("unsupported_parameter")),
        (chat, chat_body(json!({ "logprobs": true })), 400, Some("unsupported_parameter")),
        (chat, chat_body(json!({ "stop": [1] })), 400, None),
        (chat, chat_body(json!({ "stream_options": { "include_usage": true } })), 400, None),
        (chat, chat_body(json!({ "messages": [{ "role": "wizard", "content": "hi" }] })), 400, None),
        (chat, chat_body(json!({ "messages": [{ "role": "user", "content": 5 }] })), 400, None),
        (chat, chat_body(json!({ "model": "nope" })), 404, Some("model_not_found")),
        (chat, chat_body(json!({ "max_tokens": 100_000 })), 400, Some("context_length_exceeded")),
        (
            chat,
            chat_body(json!({ "messages": [{ "role": "user", "content": "hello ".repeat(9000) }] })),
            400,
            Some("context_length_exceeded"),
        ),
        ("/v1/completions", json!({ "model": MODEL }), 400, None),
        ("/v1/completions", json!({ "model": MODEL, "prompt": ["a", "b"] }), 400, None),
        ("/v1/completions", json!({ "model": MODEL, "prompt": "x", "echo": true }), 400, Some("unsupported_parameter")),
        ("/v1/embeddings", json!({ "model": MODEL, "input": "hi" }), 400, Some("model_not_supported")),
    ];
    for (path, body, status, code) in &cases {
        let what = format!("{path} {:.80}", body.to_string());
        openai_error(&post_json(&server, path, body), *status, *code, &what);
    }
    let tgi_cases: Vec<(&str, Value, u16)> = vec![
        ("/generate", json!({}), 422),
        ("/generate", json!({ "inputs": "" }), 422),
        ("/generate", json!({ "inputs": "x", "parameters": { "max_new_tokens": 0 } }), 422),
        ("/generate", json!({ "inputs": "x", "parameters": { "temperature": 0 } }), 422),
        ("/generate", json!({ "inputs": "x", "parameters": { "best_of": 2 } }), 422),
        ("/generate_stream", json!({ "inputs": "x", "parameters": { "top_k": 0 } }), 422),
        ("/generate", json!({ "inputs": "hello ".repeat(9000) }), 422),
        ("/embed", json!({ "inputs": "hi" }), 400),
    ];
    for (path, body, status) in &tgi_cases {
        let answer = post_json(&server, path, body);
        assert_eq!(answer.status, *status, "{path} {:.80}: {}", body.to_string(), answer.body);
        assert!(answer.json()["error"].as_str().is_some_and(|m| !m.is_empty()), "{}", answer.body);
    }
    // Nothing above broke the server, and nothing is left running.
    let answer = post_json(
        &server,
        "/v1/completions",
        &json!({ "model": MODEL, "prompt": PROMPT, "max_tokens": 6, "temperature": 0 }),
    );
    assert_eq!(answer.json()["choices"][0]["text"], CONTINUATION);
    let models = get(&server, "/v1/models", None).json();
    assert_eq!(models["data"][0]["id"], MODEL);
    assert_eq!(models["data"][0]["owned_by"], "ipfs-accelerate");
    assert_eq!(models["data"][0]["type"], "text-generation");
    // The names TGI's clients send for "the model" mean the first one.
    for placeholder in ["tgi", "dummy"] {
        let answer = post_json(&server, chat, &chat_body(json!({ "model": placeholder })));
        assert_eq!(answer.json()["choices"][0]["message"]["content"], ANSWER, "{placeholder}");
    }
    assert_eq!(get(&server, "/health", None).status, 200);
    let info = get(&server, "/info", None).json();
    assert_eq!(info["model_id"], MODEL);
    assert_eq!(info["model_pipeline_tag"], "text-generation");
    server.shutdown().unwrap();
}

#[test]
fn embedding_and_generation_models_side_by_side() {
    let Some(spec) = smollm2() else { return };
    let Some(minilm) = support::minilm() else { return };
    let mut config = config(spec);
    config.models = vec![ModelSpec { name: "minilm".into(), dir: minilm }];
    config.pool = support::cpu_pool();
    let server = Server::start(config).unwrap();
    let ids: Vec<String> = get(&server, "/v1/models", None).json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["minilm", MODEL]);
    let chat = post_json(&server, "/v1/chat/completions", &chat_body(json!({ "model": "minilm" })));
    openai_error(&chat, 400, Some("model_not_supported"), "chat with an embedding model");
    assert!(chat.json()["error"]["message"].as_str().unwrap().contains("embedding model"));
    let embed = post_json(&server, "/v1/embeddings", &json!({ "model": MODEL, "input": "hi" }));
    openai_error(&embed, 400, Some("model_not_supported"), "embeddings with a generation model");
    assert!(embed.json()["error"]["message"].as_str().unwrap().contains("text-generation model"));
    assert_eq!(post_json(&server, "/v1/embeddings", &json!({ "model": "minilm", "input": "hi" })).status, 200);
    assert_eq!(post_json(&server, "/v1/chat/completions", &chat_body(json!({}))).status, 200);
    server.shutdown().unwrap();
}

#[test]
fn the_api_key_guards_generation() {
    let Some(spec) = smollm2() else { return };
    let mut config = config(spec);
    config.api_key = Some("gen-key".into());
    let server = Server::start(config).unwrap();
    let body = json!({ "model": MODEL, "prompt": PROMPT, "max_tokens": 6, "temperature": 0 }).to_string();
    openai_error(&post_to(server.addr(), "/v1/completions", &body, None), 401, None, "no key");
    openai_error(&post_to(server.addr(), "/v1/completions", &body, Some("wrong")), 401, None, "wrong key");
    let tgi = json!({ "inputs": PROMPT }).to_string();
    assert_eq!(post_to(server.addr(), "/generate_stream", &tgi, None).status, 401);
    let answer = post_to(server.addr(), "/v1/completions", &body, Some("gen-key"));
    assert_eq!(answer.json()["choices"][0]["text"], CONTINUATION);
    server.shutdown().unwrap();
}

/// The value of an unlabelled metric in the Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_client_that_disconnects_cancels_its_generation() {
    let Some(spec) = smollm2() else { return };
    let server = start(spec);
    let metrics = || get(&server, "/metrics", None).body;
    assert_eq!(metric(&metrics(), "ipfs_accelerate_generations_running"), 0.0);

    // (path, streamed): a whole answer is cancelled too when its client leaves.
    for (path, streamed) in [("/v1/chat/completions", true), ("/generate_stream", true), ("/v1/completions", false)] {
        let cancelled_before = metric(&metrics(), "ipfs_accelerate_generations_cancelled_total");
        // Long enough to run for many seconds if nothing stopped it.
        let body = match path {
            "/generate_stream" => {
                json!({ "inputs": "1, 2, 3, 4, 5, 6, 7,", "parameters": { "max_new_tokens": 4000 } })
            }
            "/v1/completions" => {
                json!({ "model": MODEL, "prompt": PROMPT, "max_tokens": 4000, "ignore_eos": true })
            }
            _ => chat_body(json!({ "stream": true, "max_tokens": 4000, "ignore_eos": true })),
        };
        let body = body.to_string();
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            server.addr(),
            body.len()
        )
        .unwrap();
        if streamed {
            // Read until a second event arrives: generation is under way.
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while String::from_utf8_lossy(&seen).matches("data: ").count() < 2 {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0, "the server closed the stream early: {}", String::from_utf8_lossy(&seen));
                seen.extend_from_slice(&buf[..n]);
            }
            assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
        } else {
            let started = Instant::now();
            while metric(&metrics(), "ipfs_accelerate_generations_running") < 1.0 {
                assert!(started.elapsed() < Duration::from_secs(10), "{path}: the generation never started");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        assert_eq!(metric(&metrics(), "ipfs_accelerate_generations_running"), 1.0, "{path}");
        drop(stream);

        let started = Instant::now();
        loop {
            let text = metrics();
            let running = metric(&text, "ipfs_accelerate_generations_running");
            let cancelled = metric(&text, "ipfs_accelerate_generations_cancelled_total");
            if running == 0.0 && cancelled == cancelled_before + 1.0 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{path}: the generation did not stop after the client left (running {running}, cancelled {cancelled})"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    server.shutdown().unwrap();
}

#[test]
fn the_official_openai_client_streams_a_chat() {
    let Some(spec) = smollm2() else { return };
    let Some(python) = client_venv::client_python() else { return };
    let mut config = config(spec);
    config.api_key = Some("chat-key".into());
    let server = Server::start(config).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_chat_client.py");
    let url = format!("http://{}", server.addr());
    let out = Command::new(&python)
        .arg(&script)
        .args([url.as_str(), MODEL, "chat-key", QUESTION])
        // Loopback never goes through a proxy the environment may name.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .output()
        .expect("python starts");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the openai client failed ({}): {text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let result = json(text.trim());
    assert_eq!(result["streamed"], ANSWER, "{result}");
    assert_eq!(result["whole"], ANSWER, "{result}");
    assert!(result["chunks"].as_u64().unwrap() >= 3, "{result}");
    assert_eq!(result["finish_reason"], "stop");
    assert_eq!(result["role"], "assistant");
    assert!(result["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{result}");
    assert_eq!(result["bad_request"], 400, "{result}");
    server.shutdown().unwrap();
}
