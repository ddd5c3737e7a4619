//! The kernels are shared with browsers, whose WGSL compiler (Tint, in Chromium) is
//! stricter than wgpu's (naga) in places — e.g. Tint rejects a const expression that
//! evaluates to inf, naga accepts it. This test compiles every kernel (and a variant
//! with every `override` set) in headless Chromium's WebGPU and fails on any message.
//!
//! Skipped, with a notice, when no `chromium` is installed (Debian: `apt-get install
//! chromium`) or set `IPFS_ACCELERATE_CHROMIUM` to its path — except under `CI=true`
//! (`.ci/run` installs chromium), where a missing browser is a failure.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipfs_accelerate_gpu::KERNELS;

fn chromium() -> Option<String> {
    if let Ok(path) = std::env::var("IPFS_ACCELERATE_CHROMIUM") {
        return Some(path);
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate.to_string_lossy().into_owned());
            }
        }
    }
    None
}

const PAGE: &str = r#"<!doctype html><html><body><script>
const KERNELS = __KERNELS__;
(async () => {
  const out = [];
  try {
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) throw new Error('no WebGPU adapter (needs --enable-unsafe-webgpu)');
    // SwiftShader (headless Chromium) has no shader-f16: the f16-weight
    // kernels are then reported as skipped, not failed.
    const f16 = adapter.features.has('shader-f16');
    const device = await adapter.requestDevice({requiredFeatures: f16 ? ['shader-f16'] : []});
    for (const k of KERNELS) {
      if (k.shader_f16 && !f16) {
        for (const constants of k.variants) out.push({id: k.id, constants, messages: [], pipeline: null, skipped: 'no shader-f16'});
        continue;
      }
      const module = device.createShaderModule({code: k.source});
      const info = await module.getCompilationInfo();
      const messages = info.messages.map(m => `${m.type} ${m.lineNum}:${m.linePos} ${m.message}`);
      for (const constants of k.variants) {
        let pipeline = null;
        try {
          await device.createComputePipelineAsync({layout: 'auto', compute: {module, entryPoint: k.entry_point, constants}});
        } catch (e) { pipeline = String(e.message || e); }
        out.push({id: k.id, constants, messages, pipeline});
      }
    }
  } catch (e) { out.push({fatal: String(e.message || e)}); }
  console.log('WGSLCHECK ' + JSON.stringify(out));
})();
</script></body></html>"#;

#[test]
fn kernels_compile_in_chromium() {
    let Some(chromium) = chromium() else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true and no chromium (apt-get install chromium)");
        eprintln!("SKIPPED: no chromium found (apt-get install chromium)");
        return;
    };
    let kernels: Vec<serde_json::Value> = KERNELS
        .iter()
        .map(|k| {
            let all_set: serde_json::Map<String, serde_json::Value> =
                k.overrides.iter().map(|o| (o.to_string(), 1.into())).collect();
            serde_json::json!({
                "id": k.id,
                "source": k.source,
                "entry_point": k.entry_point,
                "shader_f16": k.shader_f16,
                "variants": [{}, all_set],
            })
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("ipfs-accelerate-wgsl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("check.html");
    let kernels_json = serde_json::to_string(&kernels).unwrap();
    std::fs::write(&page, PAGE.replace("__KERNELS__", &kernels_json)).unwrap();

    let mut child = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--enable-unsafe-webgpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {chromium}: {e}"));
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(i) = line.find("WGSLCHECK ") {
                let _ = tx.send(line[i + "WGSLCHECK ".len()..].to_string());
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let result = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let line = result.expect("chromium printed no result within 120 s");
    // The console line ends with `", source: file://… (n)`.
    let json = &line[..line.rfind(']').expect("a JSON array") + 1];
    let results: Vec<serde_json::Value> = serde_json::from_str(json).expect("valid JSON");
    let mut failures = Vec::new();
    for r in &results {
        if let Some(fatal) = r.get("fatal") {
            panic!("WebGPU in chromium failed: {fatal}");
        }
        let messages = r["messages"].as_array().map(Vec::len).unwrap_or(0);
        if messages > 0 || !r["pipeline"].is_null() {
            failures.push(r.to_string());
        }
    }
    assert_eq!(results.len(), 2 * KERNELS.len(), "{results:?}");
    assert!(failures.is_empty(), "kernels Chromium rejects:\n{}", failures.join("\n"));
}
