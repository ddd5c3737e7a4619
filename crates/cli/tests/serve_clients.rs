//! `serve` against real clients (issue 7 §7): the official `openai` Python
//! package and `huggingface_hub.InferenceClient` (from the venv
//! scripts/install-client-venv.sh makes), and another server using this one
//! as its remote worker. Every embedding is compared with a direct CPU run
//! of the same texts (max abs diff < 1e-5). Servers are started on
//! 127.0.0.1:0 and killed by PID when a test ends, pass or fail.

#[path = "../../models/tests/common/mod.rs"]
mod common;
mod support;

#[path = "../../models/tests/common/client_venv.rs"]
mod client_venv;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::stdout;

const MODEL: &str = "all-MiniLM-L6-v2";
const TEXTS: [&str; 3] = ["The cat sits on the mat.", "Ünïcödé text, with punctuation — and a dash!", "short"];

/// A running `ipfs-accelerate serve`, killed (by its PID) when dropped.
struct Server {
    child: Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Server {
    /// Starts `serve ARGS --addr 127.0.0.1:0` with a data dir of its own and
    /// waits for its `listening on` line.
    fn start(args: &[&str]) -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ipfs-accelerate"))
            .arg("serve")
            .args(args)
            .args(["--addr", "127.0.0.1:0"])
            .env("IPFS_ACCELERATE_DATA_DIR", data.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the binary starts");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(120)).unwrap_or_default();
        let mut server = Server { child, url: String::new(), _data: data };
        let Some(url) = line.trim().strip_prefix("listening on ") else {
            panic!("serve {args:?} did not print `listening on http://ADDR`: {line:?}");
        };
        server.url = url.to_string();
        server
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Status and JSON body of a request (`body` None: GET).
fn call(url: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build();
    let result = match body {
        Some(b) => agent.post(url).set("Content-Type", "application/json").send_string(&b.to_string()),
        None => agent.get(url).call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{url}: {e}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

/// The CPU backend's embeddings of `texts`, straight from `embed`.
fn direct(model: &Path, texts: &[&str]) -> Vec<Vec<f32>> {
    let mut args = vec!["embed", "--model", model.to_str().unwrap(), "--backend", "cpu", "--json"];
    args.extend(texts);
    let out = Command::new(env!("CARGO_BIN_EXE_ipfs-accelerate")).args(&args).output().unwrap();
    let json: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    serde_json::from_value(json["embeddings"].clone()).unwrap()
}

fn vectors(value: &serde_json::Value) -> Vec<Vec<f32>> {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("not [[number]]: {e}: {value}"))
}

fn assert_close(got: &[Vec<f32>], want: &[Vec<f32>], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: vector count");
    let diff = got
        .iter()
        .zip(want)
        .flat_map(|(a, b)| {
            assert_eq!(a.len(), b.len(), "{what}: dimension");
            a.iter().zip(b).map(|(x, y)| (x - y).abs())
        })
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-5, "{what}: max abs diff {diff}");
}

/// Runs a script of tests/clients with the venv's python.
fn client(python: &Path, script: &str, args: &[&str]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients").join(script);
    Command::new(python)
        .arg(script)
        .args(args)
        // Loopback never goes through a proxy the environment may name.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .output()
        .expect("python starts")
}

fn json_stdout(out: &Output, what: &str) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{what} failed ({}): {text}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{what} printed no JSON ({e}): {text}"))
}

#[test]
fn official_openai_and_huggingface_clients_get_the_cpu_embeddings() {
    let Some(model) = common::test_model(MODEL) else { return };
    let Some(python) = client_venv::client_python() else { return };
    let want = direct(&model, &TEXTS);
    let spec = format!("{MODEL}={}", model.display());
    let server = Server::start(&["--model", &spec, "--backend", "cpu", "--api-key", "right-key"]);
    let url = server.url.as_str();

    for encoding in ["float", "default"] {
        let mut args = vec![url, MODEL, "right-key", encoding];
        args.extend(TEXTS);
        let json = json_stdout(&client(&python, "openai_embeddings.py", &args), "openai client");
        assert_close(&vectors(&json["embeddings"]), &want, &format!("openai client, {encoding} encoding"));
        assert_eq!(json["model"], MODEL);
        assert!(json["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{json}");
    }

    // A wrong key is the client's AuthenticationError (exit 3), not a crash.
    let out = client(&python, "openai_embeddings.py", &[url, MODEL, "wrong-key", "float", "x"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(json["error"], "AuthenticationError");
    assert_eq!(json["status"], 401);
    let out = client(&python, "openai_embeddings.py", &[url, MODEL, "-", "float", "x"]);
    assert_eq!(out.status.code(), Some(3), "no key: {}", String::from_utf8_lossy(&out.stdout));

    let mut args = vec![url, "right-key"];
    args.extend(TEXTS);
    let json = json_stdout(&client(&python, "hf_feature_extraction.py", &args), "huggingface_hub client");
    assert_close(&vectors(&json["embeddings"]), &want, "huggingface_hub feature_extraction");
    for shape in json["shapes"].as_array().unwrap() {
        assert_eq!(shape, &serde_json::json!([1, 384]), "one text in, one 384-vector out");
    }
}

#[test]
fn a_server_using_another_as_its_remote_worker_equals_the_cpu_and_fails_clearly_without_it() {
    let Some(model) = common::test_model(MODEL) else { return };
    let want = direct(&model, &TEXTS);
    let spec = format!("{MODEL}={}", model.display());
    let mut b = Server::start(&["--model", &spec, "--backend", "cpu"]);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pool.toml");
    let toml = format!(
        "[pool]\nrequest_timeout = 3.0\nhealth_interval = 0.2\nhealth_timeout = 1.0\nmax_attempts = 2\n\n\
         [[worker]]\nkind = \"remote\"\nid = \"server-b\"\nurl = \"{}\"\ntimeout = 30.0\nconnect_timeout = 1.0\n",
        b.url
    );
    std::fs::write(&config, toml).unwrap();
    let a = Server::start(&["--model", &spec, "--pool", config.to_str().unwrap()]);

    // Through A (whose only worker is B) on both APIs.
    let (status, json) =
        call(&format!("{}/v1/embeddings", a.url), Some(serde_json::json!({"model": MODEL, "input": TEXTS})));
    assert_eq!(status, 200, "{json}");
    let got: Vec<Vec<f32>> = json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| serde_json::from_value(d["embedding"].clone()).unwrap())
        .collect();
    assert_close(&got, &want, "A -> remote worker -> B (OpenAI route)");
    let (status, json) = call(&format!("{}/embed", a.url), Some(serde_json::json!({"inputs": TEXTS})));
    assert_eq!(status, 200, "{json}");
    assert_close(&vectors(&json), &want, "A -> remote worker -> B (TEI route)");
    // B really did the work.
    let (_, metrics) = call(&format!("{}/metrics", b.url), None);
    assert!(metrics.as_str().is_some_and(|m| m.contains("/v1/embeddings")), "B's metrics: {metrics}");

    // Without B, A answers at once-ish with a JSON 503, and says it is unhealthy.
    b.stop();
    let start = Instant::now();
    let (status, json) =
        call(&format!("{}/v1/embeddings", a.url), Some(serde_json::json!({"model": MODEL, "input": ["x"]})));
    assert_eq!(status, 503, "{json}");
    let message = json["error"]["message"].as_str().unwrap_or_else(|| panic!("OpenAI error shape: {json}"));
    assert!(message.contains("server-b"), "names the worker: {message}");
    assert!(start.elapsed() < Duration::from_secs(20), "no hang: {:?}", start.elapsed());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, json) = call(&format!("{}/health", a.url), None);
        if status == 503 {
            break;
        }
        assert!(Instant::now() < deadline, "A still reports healthy without its only worker: {status} {json}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(a);
}
