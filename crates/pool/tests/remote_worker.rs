//! RemoteWorker against small HTTP servers on loopback that answer well,
//! badly or not at all: good answers come back in input order, and every
//! bad one (HTTP error, not JSON, wrong count, non-finite number, a refused
//! connection, a stall past the timeout) is a clear WorkerError quoting the
//! status and the body — never a panic or a hang. The embeddings of a real
//! server are checked end to end in crates/cli/tests/serve_clients.rs.

use ipfs_accelerate_pool::{RemoteConfig, RemoteProtocol, RemoteWorker, Worker};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

/// What the test server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    authorization: Option<String>,
    body: String,
}

/// Serves each connection's requests with `answer` (status, body) until the
/// test ends; returns its URL and a receiver of what it saw.
fn serve(answer: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static) -> (String, std::sync::mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let (answer, tx) = (answer.clone(), tx.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let (mut length, mut authorization) = (0, None);
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).unwrap();
                        let header = header.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        let (name, value) = header.split_once(": ").unwrap();
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => length = value.parse().unwrap(),
                            "authorization" => authorization = Some(value.to_string()),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let seen =
                        Seen { line: line.trim_end().into(), authorization, body: String::from_utf8(body).unwrap() };
                    let (status, text) = answer(&seen);
                    let _ = tx.send(seen);
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
                        text.len()
                    );
                    if stream.write_all(response.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, rx)
}

fn worker(url: &str, protocol: RemoteProtocol) -> RemoteWorker {
    let config = RemoteConfig { protocol, timeout: Duration::from_secs(2), ..RemoteConfig::new(url) };
    RemoteWorker::new("remote-0", config)
}

const MODEL: &str = "/models/all-MiniLM-L6-v2";

#[test]
fn openai_answers_come_back_in_input_order_with_the_model_name_and_key() {
    let (url, seen) = serve(|s| match s.line.as_str() {
        "POST /v1/embeddings HTTP/1.1" => {
            (200, r#"{"data":[{"index":1,"embedding":[3,4]},{"index":0,"embedding":[1,2]}],"model":"m"}"#.into())
        }
        "GET /v1/models HTTP/1.1" => (200, r#"{"data":[]}"#.into()),
        _ => (404, "{}".into()),
    });
    let config = RemoteConfig { api_key: Some("k1".into()), ..RemoteConfig::new(format!("{url}/")) };
    let worker = RemoteWorker::new("remote-0", config);
    let got = worker.embed(Path::new(MODEL), &["a", "b"]).unwrap();
    assert_eq!(got, vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
    let request = seen.recv().unwrap();
    assert_eq!(request.authorization.as_deref(), Some("Bearer k1"));
    let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(body["model"], "all-MiniLM-L6-v2", "the directory's last component");
    assert_eq!(body["input"], serde_json::json!(["a", "b"]));
    assert!(worker.has_loaded(Path::new(MODEL)), "served once: preferred by the scheduler");
    worker.health(Duration::from_secs(1)).unwrap();
    assert_eq!(seen.recv().unwrap().line, "GET /v1/models HTTP/1.1");
}

#[test]
fn tei_answers_and_the_models_map_renames() {
    let (url, seen) = serve(|s| match s.line.as_str() {
        "POST /embed HTTP/1.1" => (200, "[[0.5,-1],[2,0.25]]".into()),
        "GET /health HTTP/1.1" => (200, String::new()),
        _ => (404, "{}".into()),
    });
    let got = worker(&url, RemoteProtocol::Tei).embed(Path::new(MODEL), &["a", "b"]).unwrap();
    assert_eq!(got, vec![vec![0.5, -1.0], vec![2.0, 0.25]]);
    let body: serde_json::Value = serde_json::from_str(&seen.recv().unwrap().body).unwrap();
    assert_eq!(body, serde_json::json!({"inputs": ["a", "b"]}));
    worker(&url, RemoteProtocol::Tei).health(Duration::from_secs(1)).unwrap();
    assert_eq!(seen.recv().unwrap().line, "GET /health HTTP/1.1");

    let (url, seen) = serve(|_| (200, r#"{"data":[{"index":0,"embedding":[1]}]}"#.into()));
    let models = [("all-MiniLM-L6-v2".to_string(), "minilm".to_string())].into();
    let config = RemoteConfig { models: Some(models), ..RemoteConfig::new(url) };
    let mapped = RemoteWorker::new("r", config);
    mapped.embed(Path::new(MODEL), &["a"]).unwrap();
    let body: serde_json::Value = serde_json::from_str(&seen.recv().unwrap().body).unwrap();
    assert_eq!(body["model"], "minilm");
    let e = mapped.embed(Path::new("/models/other"), &["a"]).unwrap_err();
    assert!(e.message.contains("no entry for /models/other"), "{e}");
}

#[test]
fn bad_answers_are_clear_errors_with_the_status_and_body() {
    let cases: [(u16, &str, RemoteProtocol, &[&str]); 8] = [
        (500, r#"{"error":{"message":"out of memory"}}"#, RemoteProtocol::OpenAi, &["HTTP 500", "out of memory"]),
        (401, r#"{"error":"bad key"}"#, RemoteProtocol::OpenAi, &["HTTP 401", "bad key"]),
        (200, "<html>gateway</html>", RemoteProtocol::OpenAi, &["not an OpenAI embeddings answer", "<html>gateway"]),
        (200, r#"{"data":[{"index":0,"embedding":[1]}]}"#, RemoteProtocol::OpenAi, &["1 vectors for 2 texts"]),
        (
            200,
            r#"{"data":[{"index":0,"embedding":[1]},{"index":0,"embedding":[1]}]}"#,
            RemoteProtocol::OpenAi,
            &["twice"],
        ),
        (200, "[[1],[2,3]]", RemoteProtocol::Tei, &["different lengths"]),
        (200, "[[1],[1e39]]", RemoteProtocol::Tei, &["non-finite"]),
        (200, r#"{"error":"x"}"#, RemoteProtocol::Tei, &["not a TEI answer", r#"{"error":"x"}"#]),
    ];
    for (status, body, protocol, needles) in cases {
        let (url, _seen) = serve(move |_| (status, body.to_string()));
        let e = worker(&url, protocol).embed(Path::new(MODEL), &["a", "b"]).unwrap_err();
        assert_eq!(e.worker, "remote-0");
        for needle in needles {
            assert!(e.message.contains(needle), "{needle:?} missing from: {e}");
        }
    }
}

#[test]
fn an_unreachable_server_is_down_and_a_stalled_one_times_out() {
    // A port nobody listens on: bind one, then free it.
    let url = format!("http://{}", TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap());
    let w = worker(&url, RemoteProtocol::OpenAi);
    assert!(!w.is_down());
    let e = w.embed(Path::new(MODEL), &["a"]).unwrap_err();
    assert!(e.message.contains(&url) && e.message.contains("refused"), "{e}");
    assert_eq!(e.message.matches(&url).count(), 1, "the URL once: {e}");
    assert!(w.is_down(), "a refused connection means recover at once");
    assert!(w.health(Duration::from_secs(1)).is_err());
    assert!(w.recover().is_err(), "it is back only when it answers");

    let (url, _seen) = serve(|_| {
        std::thread::sleep(Duration::from_secs(5));
        (200, "[[1]]".into())
    });
    let config = RemoteConfig { timeout: Duration::from_millis(300), ..RemoteConfig::new(url) };
    let start = Instant::now();
    let e = RemoteWorker::new("r", config).embed(Path::new(MODEL), &["a"]).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(3), "no hang: {:?}", start.elapsed());
    assert!(e.message.to_lowercase().contains("timed out") || e.message.contains("timeout"), "{e}");
}
