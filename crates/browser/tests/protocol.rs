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
