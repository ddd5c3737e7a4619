//! The bridge protocol against raw WebSocket clients (no browser): the token
//! is required, a malformed message closes only that connection, pings are
//! answered, and weight chunks are served verified by CID.

use futures_util::{SinkExt, StreamExt};
use ipfs_accelerate_browser::{Bridge, BridgeConfig};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const HELLO: &str = r#"{"type":"hello","version":1,"capabilities":{"webgpu":{"available":false}}}"#;

#[test]
fn a_malformed_message_closes_only_its_connection() {
    let bridge = Bridge::start(BridgeConfig::default()).unwrap();
    let url = format!("ws://{}/ws?token={}", bridge.addr(), bridge.token());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (mut bad, _) = runtime.block_on(tokio_tungstenite::connect_async(url.as_str())).unwrap();
    let (good, _) = runtime.block_on(tokio_tungstenite::connect_async(url.as_str())).unwrap();
    runtime.block_on(bad.send(Message::text(HELLO))).unwrap();
    // The good client says hello, then answers every ping with a pong.
    let (mut good_tx, mut good_rx) = good.split();
    runtime.block_on(good_tx.send(Message::text(HELLO))).unwrap();
    runtime.spawn(async move {
        while let Some(Ok(Message::Text(t))) = good_rx.next().await {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "ping" {
                let pong = serde_json::json!({"type": "pong", "id": v["id"]}).to_string();
                good_tx.send(Message::text(pong)).await.unwrap();
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while bridge.workers().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "both clients should have joined");
        std::thread::sleep(Duration::from_millis(20));
    }
    runtime.block_on(bad.send(Message::text("{not json"))).unwrap();
    // The bad connection is closed by the bridge ...
    let closed = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match bad.next().await {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await
    });
    assert_eq!(closed, Ok(true));
    while bridge.workers().len() != 1 {
        assert!(std::time::Instant::now() < deadline, "the bad client should have been dropped");
        std::thread::sleep(Duration::from_millis(20));
    }
    // ... and the good one still answers.
    let worker = bridge.workers().pop().unwrap();
    assert!(worker.ping(Duration::from_secs(10)).is_ok());
}

#[test]
fn the_token_is_required_and_chunks_are_served_by_cid() {
    let bridge = Bridge::start(BridgeConfig { token: Some("s3cret".into()), ..BridgeConfig::default() }).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for token in ["", "?token=wrong"] {
        let url = format!("ws://{}/ws{token}", bridge.addr());
        assert!(runtime.block_on(tokio_tungstenite::connect_async(url.as_str())).is_err(), "{token:?} was let in");
    }
    assert!(bridge.worker_url().ends_with("?token=s3cret"));
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let cids = bridge.chunks().add(&data);
    assert_eq!(cids.len(), 3);
    // Fetch through our own verifying gateway client: every chunk checks out.
    let client = ipfs_accelerate_ipfs::gateway::GatewayClient::new(ipfs_accelerate_ipfs::gateway::GatewayConfig {
        gateways: vec![format!("http://{}", bridge.addr())],
        ..Default::default()
    })
    .unwrap();
    let mut joined = Vec::new();
    for cid in &cids {
        joined.extend(runtime.block_on(client.fetch_block(&cid.parse().unwrap())).unwrap());
    }
    assert_eq!(joined, data);
}

/// A page that answers a request it was never sent, or sends a tensor of the
/// wrong size, is disconnected: the request in flight fails at once (so the
/// pool retries it elsewhere) instead of waiting or taking garbage.
#[test]
fn a_page_that_sends_garbage_or_answers_unasked_is_disconnected() {
    use ipfs_accelerate_tensor::Tensor;
    let bridge = Bridge::start(BridgeConfig::default()).unwrap();
    let url = format!("ws://{}/ws?token={}", bridge.addr(), bridge.token());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    for garbage in ["unasked", "short-frame"] {
        let (page, _) = runtime.block_on(tokio_tungstenite::connect_async(url.as_str())).unwrap();
        let (mut tx, mut rx) = page.split();
        runtime.block_on(tx.send(Message::text(HELLO))).unwrap();
        runtime.spawn(async move {
            while let Some(Ok(message)) = rx.next().await {
                let Message::Text(t) = message else { continue };
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if v["type"] != "run" {
                    continue;
                }
                let id = v["id"].as_u64().unwrap() as u32;
                let reply = match garbage {
                    // An answer to an id far beyond any the host sent.
                    "unasked" => vec![Message::text(serde_json::json!({"type": "pong", "id": id + 1000}).to_string())],
                    // A result whose frame holds 3 bytes for a float32 [2].
                    _ => {
                        let result = serde_json::json!({"type": "result", "id": id,
                            "outputs": [{"name": "y", "dtype": "float32", "shape": [2]}]});
                        let mut frame = Vec::new();
                        frame.extend_from_slice(&id.to_le_bytes());
                        frame.extend_from_slice(&0u32.to_le_bytes());
                        frame.extend_from_slice(&[1, 2, 3]);
                        vec![Message::text(result.to_string()), Message::binary(frame)]
                    }
                };
                for m in reply {
                    let _ = tx.send(m).await;
                }
            }
        });
        let worker = bridge.wait_for_worker(Duration::from_secs(10)).unwrap();
        let x = Tensor::from_f32([2], &[1.0, 2.0]).unwrap();
        let start = std::time::Instant::now();
        let err = worker.run("m", &[("x", &x)]).unwrap_err().to_string();
        assert!(start.elapsed() < Duration::from_secs(10), "{garbage}: failed at once, not at the timeout");
        if garbage == "short-frame" {
            assert!(err.contains("3 bytes, expected 8"), "{garbage}: {err}");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while worker.is_alive() {
            assert!(std::time::Instant::now() < deadline, "{garbage}: the page should have been disconnected");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(worker.ping(Duration::from_secs(1)).is_err(), "{garbage}: a disconnected page is not pinged");
    }
}
