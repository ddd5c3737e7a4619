//! The convolutional ops on the browser's WebGPU: the graph of
//! `support::conv` compiled to a plan, sent over the bridge to headless
//! Chromium (Debian's chromium, SwiftShader adapter), run by `web/webgpu.js`
//! on the shared WGSL kernels, and compared with the CPU backend.
//!
//! Skipped with a notice without chromium, unless `CI=true`.

mod support;

use ipfs_accelerate_browser::{BrowserBackend, BrowserEngine, BrowserLaunch};
use ipfs_accelerate_models::engine::GraphRunner;
use ipfs_accelerate_tensor::{CpuBackend, Tensor};

#[test]
fn conv_pool_and_clamp_in_chromium_webgpu_match_the_cpu_backend() {
    let (graph, weights, inputs) = support::conv::mobile_ops_graph();
    let Some(chromium) = support::chromium() else { return };
    let launch = BrowserLaunch {
        browser: Some(chromium.to_str().unwrap().to_string()),
        // Any free port: other tests may hold the default one.
        bridge_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ..BrowserLaunch::new(BrowserBackend::WebGpu)
    };
    let engine = BrowserEngine::launch(&launch).unwrap_or_else(|e| panic!("{e}"));
    let inputs: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let got = engine.run(&[0], &mut || Ok((graph.clone(), weights.clone())), &inputs).unwrap();
    let want = CpuBackend::new().compile(&graph, &weights).unwrap().run(&inputs).unwrap();
    assert_eq!(got.len(), want.len());
    for ((out, g), w) in graph.outputs.iter().zip(&got).zip(&want) {
        assert_eq!(g.shape(), w.shape(), "{}", out.name);
        let (g, w) = (g.to_f32_vec().unwrap(), w.to_f32_vec().unwrap());
        let diff = g.iter().zip(&w).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0.0f32, f32::max);
        assert!(diff <= 1e-4, "{}: max relative diff {diff}", out.name);
        eprintln!("{}: {} values, max relative diff to cpu {diff:.2e}", out.name, g.len());
    }
}
