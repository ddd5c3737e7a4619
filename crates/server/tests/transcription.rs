//! Speech recognition over HTTP with the real Whisper tiny.en: OpenAI's
//! `/v1/audio/transcriptions` in every response format, transcripts equal
//! to transformers' (golden `whisper_tiny_en.json`), the official `openai`
//! Python client, bad uploads and fields, the audio body limit and the API
//! key. Servers run in-process on 127.0.0.1:0 and are shut down at the end
//! of each test.

mod support;

#[path = "../../models/tests/common/test_models.rs"]
mod test_models;

#[path = "../../models/tests/common/client_venv.rs"]
mod client_venv;

use ipfs_accelerate_models::llm::weights::WeightBits;
use ipfs_accelerate_pool::{Pool, PoolConfig};
use ipfs_accelerate_server::{RunningServer, Server, ServerConfig, SpeechSpec};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use support::{answer, get, Answer};

const MODEL: &str = "whisper";

fn whisper() -> Option<SpeechSpec> {
    static LOADED: OnceLock<Option<SpeechSpec>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let dir = test_models::test_model("whisper-tiny.en")?;
            Some(SpeechSpec::load(MODEL, &dir, WeightBits::AsStored).expect("whisper loads"))
        })
        .clone()
}

fn goldens() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/goldens")
}

fn clip() -> Vec<u8> {
    std::fs::read(goldens().join("speech/clip.wav")).unwrap()
}

/// transformers' transcript of the clip (leading space trimmed).
fn golden_text() -> String {
    let text = std::fs::read_to_string(goldens().join("whisper_tiny_en.json")).unwrap();
    let golden: Value = serde_json::from_str(&text).unwrap();
    golden["clip"]["no_timestamps"]["text"].as_str().unwrap().trim().to_string()
}

fn start(spec: SpeechSpec, key: Option<&str>) -> RunningServer {
    let pool = std::sync::Arc::new(Pool::new(PoolConfig::default()));
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), Vec::new(), pool);
    config.speech = vec![spec];
    config.api_key = key.map(str::to_string);
    config.max_audio_bytes = 1024 * 1024;
    Server::start(config).expect("the server starts")
}

/// A multipart form of text fields and one file.
fn form(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "----ipfs-accelerate-test-boundary";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").bytes(),
        );
    }
    if let Some((name, bytes)) = file {
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn post_form(
    server: &RunningServer,
    fields: &[(&str, &str)],
    file: Option<(&str, &[u8])>,
    key: Option<&str>,
) -> Answer {
    let (content_type, body) = form(fields, file);
    let mut request = ureq::post(&format!("http://{}/v1/audio/transcriptions", server.addr()))
        .timeout(Duration::from_secs(120))
        .set("Content-Type", &content_type);
    if let Some(key) = key {
        request = request.set("Authorization", &format!("Bearer {key}"));
    }
    answer(request.send_bytes(&body))
}

fn assert_error(answer: &Answer, status: u16, needle: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    let message = answer.json()["error"]["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains(needle), "expected {needle:?} in {message:?}");
}

#[test]
fn every_response_format_carries_the_transcript_transformers_gives() {
    let Some(spec) = whisper() else { return };
    let server = start(spec, None);
    let audio = clip();
    let want = golden_text();

    let answer = post_form(&server, &[("model", MODEL)], Some(("clip.wav", &audio)), None);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["text"], want.as_str());
    assert_eq!(answer.json()["usage"]["seconds"], 4);

    let answer =
        post_form(&server, &[("model", MODEL), ("response_format", "verbose_json")], Some(("clip.wav", &audio)), None);
    let v = answer.json();
    assert_eq!(v["text"], want.as_str());
    assert_eq!(v["language"], "en");
    assert_eq!(v["segments"][0]["start"], 0.0);
    assert_eq!(v["segments"][0]["end"], 3.8);

    let answer = post_form(&server, &[("model", MODEL), ("response_format", "text")], Some(("clip.wav", &audio)), None);
    assert!(answer.content_type.starts_with("text/plain"), "{}", answer.content_type);
    assert_eq!(answer.body.trim(), want);

    let answer = post_form(&server, &[("model", MODEL), ("response_format", "srt")], Some(("clip.wav", &audio)), None);
    assert_eq!(answer.body, format!("1\n00:00:00,000 --> 00:00:03,800\n{want}\n\n"));
    let answer = post_form(&server, &[("model", MODEL), ("response_format", "vtt")], Some(("clip.wav", &audio)), None);
    assert_eq!(answer.body, format!("WEBVTT\n\n00:00:00.000 --> 00:00:03.800\n{want}\n\n"));

    let models = get(&server, "/v1/models", None).json();
    assert_eq!(models["data"][0]["id"], MODEL);
    assert_eq!(models["data"][0]["type"], "speech-to-text");
    server.shutdown().unwrap();
}

#[test]
fn bad_uploads_and_fields_are_clear_400s() {
    let Some(spec) = whisper() else { return };
    let server = start(spec, Some("speech-key"));
    let key = Some("speech-key");
    let audio = clip();
    let wav = Some(("clip.wav", audio.as_slice()));
    // Refused before the body is read: a small body, so the client is done
    // writing before the server answers.
    assert_eq!(post_form(&server, &[("model", MODEL)], None, None).status, 401);
    assert_error(
        &post_form(&server, &[("model", MODEL)], Some(("notes.wav", b"not audio at all")), key),
        400,
        "cannot be transcribed",
    );
    assert_error(&post_form(&server, &[("model", MODEL)], Some(("empty.wav", b"")), key), 400, "cannot be transcribed");
    assert_error(&post_form(&server, &[("model", MODEL)], None, key), 400, "`file` is required");
    assert_error(&post_form(&server, &[], wav, key), 400, "`model` is required");
    assert_error(&post_form(&server, &[("model", "nope")], wav, key), 404, "speech models here are: whisper");
    assert_error(&post_form(&server, &[("model", MODEL), ("temperature", "0.5")], wav, key), 400, "greedy");
    assert_error(&post_form(&server, &[("model", MODEL), ("prompt", "hello")], wav, key), 400, "not supported");
    assert_error(&post_form(&server, &[("model", MODEL), ("response_format", "xml")], wav, key), 400, "not supported");
    assert_error(&post_form(&server, &[("model", MODEL), ("language", "fr")], wav, key), 400, "English-only");
    assert_error(
        &post_form(&server, &[("model", MODEL), ("timestamp_granularities[]", "word")], wav, key),
        400,
        "not supported",
    );
    // Not a multipart form at all.
    let json = ureq::post(&format!("http://{}/v1/audio/transcriptions", server.addr()))
        .set("Authorization", "Bearer speech-key")
        .set("Content-Type", "application/json");
    assert_error(&answer(json.send_string("{\"model\": \"whisper\"}")), 400, "multipart/form-data");
    // Over the audio body limit (1 MiB in this test).
    assert_upload_refused(&server, 2 * 1024 * 1024);
    // Still serving.
    assert_eq!(post_form(&server, &[("model", MODEL)], wav, key).json()["text"], golden_text().as_str());
    server.shutdown().unwrap();
}

/// Uploads `length` bytes of a file: the server must answer 413, or close
/// the connection while the client is still writing (it refuses the body
/// once the limit is passed, without reading the rest).
fn assert_upload_refused(server: &RunningServer, length: usize) {
    let big = vec![0u8; length];
    let (content_type, body) = form(&[("model", MODEL)], Some(("big.wav", &big)));
    let request = ureq::post(&format!("http://{}/v1/audio/transcriptions", server.addr()))
        .timeout(Duration::from_secs(120))
        .set("Authorization", "Bearer speech-key")
        .set("Content-Type", &content_type);
    match request.send_bytes(&body) {
        Ok(r) | Err(ureq::Error::Status(_, r)) => assert_eq!(r.status(), 413),
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains("Broken pipe") || message.contains("reset"), "{message}");
        }
    }
}

#[test]
fn the_official_openai_client_transcribes_the_clip() {
    let Some(spec) = whisper() else { return };
    let Some(python) = client_venv::client_python() else { return };
    let server = start(spec, Some("speech-key"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_transcription_client.py");
    let url = format!("http://{}", server.addr());
    let audio = goldens().join("speech/clip.wav");
    let out = Command::new(&python)
        .arg(&script)
        .args([url.as_str(), MODEL, "speech-key", audio.to_str().unwrap()])
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .output()
        .expect("python starts");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the openai client failed: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    let result: Value = serde_json::from_str(text.trim()).unwrap();
    let want = golden_text();
    assert_eq!(result["json"], want.as_str(), "{result}");
    assert_eq!(result["verbose_text"], want.as_str(), "{result}");
    assert_eq!(result["segments"][0]["end"], 3.8, "{result}");
    assert_eq!(result["text"].as_str().unwrap().trim(), want, "{result}");
    assert!(result["srt"].as_str().unwrap().contains("00:00:00,000 --> 00:00:03,800"), "{result}");
    assert_eq!(result["bad_request"], 400, "{result}");
    server.shutdown().unwrap();
}
