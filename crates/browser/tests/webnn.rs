//! The WebNN executor (`web/webnn.js`) in a real browser against the CPU backend.
//!
//! A small std HTTP server on 127.0.0.1 serves `web/webnn.js`, the harness page
//! `web/test/webnn-harness.html` and, per case, the graph (fused ops decomposed
//! with `decompose_fused`), its weights and inputs. The Chromium of the npm
//! package `@sparticuz/chromium` (unpacked by `scripts/install-webnn-chromium.sh`;
//! Debian's chromium has no WebNN backend) runs the page headless with
//! `--enable-features=WebMachineLearningNeuralNetwork`; the page builds each
//! graph on a `cpu` MLContext (XNNPACK), runs it and POSTs the outputs back.
//!
//! Cases: (a) the op families BERT uses plus every other IR op, (b) decomposed
//! packed attention (plain, and grouped-query + causal + key-padding mask),
//! (c) the all-MiniLM-L6-v2 encoder (when the test model is present), (d) the
//! convolutional ops (conv2d in its forms, clamp, pools).
//!
//! Without the browser the test prints a skip notice and passes, unless
//! `CI=true`. Chromium is found at `IPFS_ACCELERATE_WEBNN_CHROMIUM` (the binary)
//! or under `IPFS_ACCELERATE_WEBNN_CHROMIUM_DIR` (default
//! `~/.cache/ipfs-accelerate/webnn-chromium`) as the install script leaves it.

#[path = "../../models/tests/common/mod.rs"]
mod common;

mod support;

use ipfs_accelerate_browser::launch::Profile;
use ipfs_accelerate_models::config::Architecture;
use ipfs_accelerate_models::{BertModel, ModelConfig, SafetensorsFile};
use ipfs_accelerate_tensor::graph::decompose::decompose_fused;
use ipfs_accelerate_tensor::graph::{AttentionOptions, AttentionSegment};
use ipfs_accelerate_tensor::{CpuBackend, DType, GemmOptions, Graph, GraphBuilder, LayerNormOptions, Tensor, Weights};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How long the page may take for all cases (MiniLM builds in a few seconds).
const DEADLINE: Duration = Duration::from_secs(300);

/// One graph to run in the browser and on the CPU.
struct Case {
    name: &'static str,
    /// The graph the CPU runs (fused ops kept: the browser's decomposition is
    /// checked against the CPU's own kernels).
    graph: Graph,
    weights: Weights,
    inputs: Vec<(String, Tensor)>,
}

impl Case {
    /// The manifest and blob the page fetches: the decomposed graph, and where
    /// each weight and input lies in the blob.
    fn payload(&self) -> Payload {
        let decomposed = decompose_fused(&self.graph).expect("decompose");
        assert!(decomposed.nodes.iter().all(|n| !n.op.is_fused()));
        decomposed.validate(Some(&self.weights)).expect("decomposed graph is valid");
        payload(serde_json::to_value(&decomposed).unwrap(), &self.weights, &self.inputs)
    }

    fn cpu(&self) -> BTreeMap<String, Vec<f32>> {
        let exe = CpuBackend::new().compile(&self.graph, &self.weights).expect("cpu compile");
        let inputs: Vec<(&str, &Tensor)> = self.inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let outs = exe.run(&inputs).expect("cpu run");
        self.graph.outputs.iter().zip(outs).map(|(o, t)| (o.name.clone(), t.to_f32_vec().unwrap())).collect()
    }
}

/// A case as served: its manifest (JSON) and its blob.
type Payload = (Vec<u8>, Vec<u8>);

/// The manifest and blob the page fetches for `graph` (JSON), its weights and inputs.
fn payload(graph: Value, weights: &Weights, inputs: &[(String, Tensor)]) -> Payload {
    let mut blob = Vec::new();
    let mut entry = |name: &str, t: &Tensor| {
        let offset = blob.len();
        blob.extend_from_slice(t.as_bytes());
        json!({"name": name, "dtype": t.dtype(), "shape": t.shape(), "offset": offset, "length": t.as_bytes().len()})
    };
    let mut names: Vec<&String> = weights.keys().collect();
    names.sort();
    let weights: Vec<Value> = names.into_iter().map(|n| entry(n, &weights[n])).collect();
    let inputs: Vec<Value> = inputs.iter().map(|(n, t)| entry(n, t)).collect();
    let manifest = json!({"graph": graph, "weights": weights, "inputs": inputs});
    (serde_json::to_vec(&manifest).unwrap(), blob)
}

/// Graphs the executor must refuse, with the words its error must contain:
/// an op it does not know, and a fused op sent without decomposing it.
fn refused_cases() -> Vec<(&'static str, Payload, &'static str)> {
    let mut b = GraphBuilder::new();
    let x = b.input("x", DType::Float32, [2]).unwrap();
    let y = b.relu(x).unwrap();
    let (graph, weights) = b.build(&[("y", y)]).unwrap();
    let mut unknown = serde_json::to_value(&graph).unwrap();
    unknown["nodes"][0]["op"] = json!("fooBar");
    let inputs = vec![("x".to_string(), Tensor::from_f32([2], &[1.0, -1.0]).unwrap())];
    let unknown = payload(unknown, &weights, &inputs);
    let fused = attention_case();
    let fused = payload(serde_json::to_value(&fused.graph).unwrap(), &fused.weights, &fused.inputs);
    vec![
        ("unknown_op", unknown, "unknown op \"fooBar\""),
        ("fused_attention", fused, "decompose the graph (decompose_fused)"),
    ]
}

/// Deterministic pseudo-random values in `[-scale, scale)`.
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn f32_tensor(shape: &[usize], seed: u64, scale: f32) -> Tensor {
    Tensor::from_f32(shape.to_vec(), &values(shape.iter().product(), seed, scale)).unwrap()
}

/// (a) The op families of a BERT layer, then every other IR op once.
fn ops_case() -> Case {
    let mut b = GraphBuilder::new();
    let ids = b.input("ids", DType::Int32, [5]).unwrap();
    let x = b.input("x", DType::Float32, [2, 3, 4]).unwrap();
    let table = b.constant("table", f32_tensor(&[10, 8], 1, 1.0)).unwrap();
    let pos = b.constant("pos", f32_tensor(&[5, 8], 2, 0.5)).unwrap();
    let gamma = b.constant("gamma", f32_tensor(&[8], 3, 1.0)).unwrap();
    let beta = b.constant("beta", f32_tensor(&[8], 4, 0.2)).unwrap();
    let w = b.constant("w", f32_tensor(&[12, 8], 5, 0.5)).unwrap();
    let bias = b.constant("bias", f32_tensor(&[12], 6, 0.1)).unwrap();

    // BERT's families: gather, add, layerNormalization, gemm (bias, bTranspose),
    // gelu, slice, reshape/transpose, matmul, mul by a scalar, softmax.
    let e = b.gather(table, ids, 0).unwrap();
    let e = b.add(e, pos).unwrap();
    let opts = LayerNormOptions { scale: Some(gamma), bias: Some(beta), axes: Some(vec![1]), epsilon: Some(1e-12) };
    let n = b.layer_normalization(e, opts).unwrap();
    let h = b.gemm(n, w, GemmOptions { c: Some(bias), b_transpose: true, ..Default::default() }).unwrap();
    let g = b.gelu(h).unwrap();
    let s1 = b.slice(g, &[0, 0], &[5, 8]).unwrap();
    let s2 = b.slice(g, &[0, 4], &[5, 8]).unwrap();
    let q = b.reshape(s1, &[5, 2, 4]).unwrap();
    let q = b.transpose(q, &[1, 0, 2]).unwrap();
    let k = b.reshape(s2, &[5, 2, 4]).unwrap();
    let k = b.transpose(k, &[1, 2, 0]).unwrap();
    let scores = b.matmul(q, k).unwrap();
    let half = b.scalar(0.5);
    let scores = b.mul(scores, half).unwrap();
    let probs = b.softmax(scores, 2).unwrap();

    // Everything else, on x in [-2, 2).
    let one = b.scalar(1.0);
    let two = b.scalar(2.0);
    let zero = b.scalar(0.0);
    let y = b.constant("y", f32_tensor(&[3, 4], 7, 2.0)).unwrap();
    let ax = b.op(ipfs_accelerate_tensor::graph::Op::Abs, &[x]).unwrap();
    let ax1 = b.add(ax, one).unwrap();
    let mut outs: Vec<(&str, ipfs_accelerate_tensor::Operand)> = vec![("hidden", h), ("probs", probs)];
    use ipfs_accelerate_tensor::graph::Op;
    let sub = b.sub(x, y).unwrap();
    let div = b.div(x, ax1).unwrap();
    let max = b.max(x, y).unwrap();
    let min = b.min(x, y).unwrap();
    let pow = b.pow(ax1, two).unwrap();
    outs.extend([("sub", sub), ("div", div), ("max", max), ("min", min), ("pow", pow)]);
    for (name, op) in [
        ("tanh", Op::Tanh),
        ("erf", Op::Erf),
        ("relu", Op::Relu),
        ("sigmoid", Op::Sigmoid),
        ("exp", Op::Exp),
        ("neg", Op::Neg),
        ("abs", Op::Abs),
        ("identity", Op::Identity),
    ] {
        outs.push((name, b.op(op, &[x]).unwrap()));
    }
    outs.push(("log", b.op(Op::Log, &[ax1]).unwrap()));
    outs.push(("sqrt", b.op(Op::Sqrt, &[ax]).unwrap()));
    outs.push(("reciprocal", b.op(Op::Reciprocal, &[ax1]).unwrap()));
    outs.push(("reduce_mean", b.reduce_mean(x, &[2], false).unwrap()));
    outs.push(("reduce_sum", b.reduce_sum(x, &[0, 2], true).unwrap()));
    outs.push(("reduce_max", b.reduce_max(x, &[1], false).unwrap()));
    outs.push(("concat", b.concat(&[x, sub], 1).unwrap()));
    let col = b.slice(y, &[0, 0], &[3, 1]).unwrap();
    outs.push(("expand", b.expand(col, &[2, 3, 4]).unwrap()));
    let gt = b.greater(x, zero).unwrap();
    let negx = b.op(Op::Neg, &[x]).unwrap();
    outs.push(("where", b.where_(gt, x, negx).unwrap()));
    outs.push(("greater", b.cast(gt, DType::Float32).unwrap()));
    let lt = b.lesser(x, y).unwrap();
    outs.push(("lesser", b.cast(lt, DType::Float32).unwrap()));
    let eq = b.equal(x, x).unwrap();
    outs.push(("equal", b.cast(eq, DType::Float32).unwrap()));
    let idx2 = b.cast(ids, DType::Float32).unwrap();
    outs.push(("cast", idx2));
    let picks = b.constant_inline(Tensor::from_i32([2], &[3, 1]).unwrap());
    let gathered = b.gather(x, picks, 2).unwrap();
    outs.push(("gather_axis2", gathered));
    // Every dtype the IR carries to and from the page: index types for
    // gather, float16/int8 inputs, float16 inside the graph.
    let ids64 = b.input("ids64", DType::Int64, [3]).unwrap();
    outs.push(("gather_int64", b.gather(table, ids64, 0).unwrap()));
    let ids_u32 = b.input("ids_u32", DType::Uint32, [2]).unwrap();
    outs.push(("gather_uint32", b.gather(table, ids_u32, 0).unwrap()));
    let h16 = b.input("h16", DType::Float16, [2, 3]).unwrap();
    outs.push(("float16_input", b.cast(h16, DType::Float32).unwrap()));
    let x16 = b.cast(x, DType::Float16).unwrap();
    outs.push(("float16_round_trip", b.cast(x16, DType::Float32).unwrap()));
    let i8 = b.input("i8", DType::Int8, [4]).unwrap();
    outs.push(("int8_input", b.cast(i8, DType::Float32).unwrap()));
    let (graph, weights) = b.build(&outs).unwrap();
    // 0.5, -1.25, 3.0, 0.0, 65504.0 (the largest half), -0.0999755859375.
    let halves: Vec<u8> = [0x3800u16, 0xbd00, 0x4200, 0, 0x7bff, 0xae66].iter().flat_map(|v| v.to_le_bytes()).collect();
    let u32s: Vec<u8> = [9u32, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
    let inputs = vec![
        ("ids".to_string(), Tensor::from_i32([5], &[3, 0, 9, 3, 1]).unwrap()),
        ("x".to_string(), f32_tensor(&[2, 3, 4], 8, 2.0)),
        ("ids64".to_string(), Tensor::from_i64([3], &[7, 0, 5]).unwrap()),
        ("ids_u32".to_string(), Tensor::copy_from_bytes(DType::Uint32, [2], &u32s).unwrap()),
        ("h16".to_string(), Tensor::copy_from_bytes(DType::Float16, [2, 3], &halves).unwrap()),
        ("i8".to_string(), Tensor::copy_from_bytes(DType::Int8, [4], &[0x80, 0xff, 0, 0x7f]).unwrap()),
    ];
    Case { name: "ops", graph, weights, inputs }
}

/// (b) Fused attention, decomposed for the browser: a packed batch of three
/// segments, and grouped-query attention with causal and key-padding masks.
fn attention_case() -> Case {
    let (heads, d) = (2, 4);
    let lens = [3usize, 4, 1];
    let total: usize = lens.iter().sum();
    let mut b = GraphBuilder::new();
    let q = b.input("q", DType::Float32, [total, heads * d]).unwrap();
    let k = b.input("k", DType::Float32, [total, heads * d]).unwrap();
    let v = b.input("v", DType::Float32, [total, heads * d]).unwrap();
    let kv = b.input("kv1", DType::Float32, [total, d]).unwrap();
    let mask = b.input("mask", DType::Float32, [lens.len(), 4]).unwrap();
    let segments: Vec<AttentionSegment> = lens.iter().map(|&n| AttentionSegment { q_len: n, kv_len: n }).collect();
    let plain = AttentionOptions {
        num_heads: heads,
        num_kv_heads: heads,
        head_dim: d,
        scale: 1.0 / (d as f32).sqrt(),
        causal: false,
        segments: segments.clone(),
        has_mask: false,
    };
    let packed = b.attention(q, k, v, plain.clone()).unwrap();
    let gqa = AttentionOptions { num_kv_heads: 1, causal: true, ..plain };
    let gqa = b.attention_masked(q, kv, kv, mask, gqa).unwrap();
    let (graph, weights) = b.build(&[("packed", packed), ("gqa_causal_masked", gqa)]).unwrap();
    // Segment 1 masks its last key; the others keep all of theirs.
    let mut m = vec![0.0f32; lens.len() * 4];
    m[4 + 3] = -10000.0;
    let inputs = vec![
        ("q".to_string(), f32_tensor(&[total, heads * d], 11, 1.0)),
        ("k".to_string(), f32_tensor(&[total, heads * d], 12, 1.0)),
        ("v".to_string(), f32_tensor(&[total, heads * d], 13, 1.0)),
        ("kv1".to_string(), f32_tensor(&[total, d], 14, 1.0)),
        ("mask".to_string(), Tensor::from_f32([lens.len(), 4], &m).unwrap()),
    ];
    Case { name: "attention", graph, weights, inputs }
}

/// (d) The convolutional ops of a mobile network (see `support::conv`).
fn conv_case() -> Case {
    let (graph, weights, inputs) = support::conv::mobile_ops_graph();
    Case { name: "conv", graph, weights, inputs }
}

/// Token ids of the two MiniLM test sequences ([CLS] ... [SEP], BERT's vocab).
const MINILM_SEQS: [&[i32]; 2] = [&[101, 7592, 2088, 102], &[101, 1037, 3899, 2003, 2652, 1999, 1996, 2380, 1012, 102]];

/// (c) The all-MiniLM-L6-v2 encoder for two short sequences, packed.
fn minilm_case(dir: &Path) -> Case {
    let config = ModelConfig::load(dir).unwrap();
    let Architecture::BertFamily(variant) = config.architecture;
    let file = SafetensorsFile::open(&dir.join("model.safetensors")).unwrap();
    let model = BertModel::load(config.bert(dir).unwrap(), variant, &file).unwrap();
    let lens: Vec<usize> = MINILM_SEQS.iter().map(|s| s.len()).collect();
    let (graph, weights) = model.graph(&lens).unwrap();
    let ids: Vec<i32> = MINILM_SEQS.concat();
    let offset = model.position_offset() as i32;
    let positions: Vec<i32> = lens.iter().flat_map(|&n| (0..n as i32).map(move |p| p + offset)).collect();
    let n = ids.len();
    let inputs = vec![
        ("input_ids".to_string(), Tensor::from_i32([n], &ids).unwrap()),
        ("token_type_ids".to_string(), Tensor::from_i32([n], &vec![0; n]).unwrap()),
        ("position_ids".to_string(), Tensor::from_i32([n], &positions).unwrap()),
    ];
    Case { name: "minilm", graph, weights, inputs }
}

/// What the page reports.
enum Event {
    Capabilities(String),
    Result(String, String),
    Error(String),
    Done,
}

struct Site {
    harness: Vec<u8>,
    webnn_js: Vec<u8>,
    order: Vec<u8>,
    cases: BTreeMap<String, Payload>,
}

/// Serves `site` on 127.0.0.1 (ephemeral port) from a background thread; page
/// reports arrive on the returned channel.
fn serve(site: Site) -> (u16, mpsc::Receiver<Event>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    let site = Arc::new(site);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (site, tx) = (site.clone(), tx.clone());
            std::thread::spawn(move || {
                let _ = handle(stream, &site, &tx);
            });
        }
    });
    (port, rx)
}

fn handle(stream: TcpStream, site: &Site, tx: &mpsc::Sender<Event>) -> std::io::Result<()> {
    let support::Request { method, target, body } = support::read_request(&stream)?;
    let body = String::from_utf8_lossy(&body).into_owned();
    let path = target.split('?').next().unwrap_or("");
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let found = |b: &[u8], ty: &str| Some((b.to_vec(), ty.to_string()));
    let reply = match (method.as_str(), segs.as_slice()) {
        ("GET", ["harness.html"]) => found(&site.harness, "text/html; charset=utf-8"),
        ("GET", ["webnn.js"]) => found(&site.webnn_js, "text/javascript; charset=utf-8"),
        ("GET", ["cases"]) => found(&site.order, "application/json"),
        ("GET", ["case", name, "manifest"]) => site.cases.get(*name).and_then(|c| found(&c.0, "application/json")),
        ("GET", ["case", name, "blob"]) => site.cases.get(*name).and_then(|c| found(&c.1, "application/octet-stream")),
        ("POST", ["capabilities"]) => {
            let _ = tx.send(Event::Capabilities(body));
            found(b"", "text/plain")
        }
        ("POST", ["result", name]) => {
            let _ = tx.send(Event::Result(name.to_string(), body));
            found(b"", "text/plain")
        }
        ("POST", ["error"]) => {
            let _ = tx.send(Event::Error(body));
            found(b"", "text/plain")
        }
        ("POST", ["done"]) => {
            let _ = tx.send(Event::Done);
            found(b"", "text/plain")
        }
        _ => None,
    };
    let mut out = stream;
    match reply {
        Some((data, ty)) => {
            write!(out, "HTTP/1.1 200 OK\r\nContent-Type: {ty}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n", data.len())?;
            out.write_all(&data)?;
        }
        None => write!(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?,
    }
    out.flush()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Mean over the tokens of each packed sequence.
fn mean_pool(hidden: &[f32], lens: &[usize], dim: usize) -> Vec<Vec<f32>> {
    let mut start = 0;
    lens.iter()
        .map(|&n| {
            let mut v = vec![0.0f32; dim];
            for t in start..start + n {
                for (o, x) in v.iter_mut().zip(&hidden[t * dim..(t + 1) * dim]) {
                    *o += x / n as f32;
                }
            }
            start += n;
            v
        })
        .collect()
}

/// One line per device type from `webnnCapabilities()`, with the limits that
/// matter to the executor.
fn print_capabilities(report: &str) {
    let v: Value = serde_json::from_str(report).unwrap_or_else(|e| panic!("bad capabilities {e}: {report}"));
    assert_eq!(v["available"], json!(true), "webnnCapabilities(): {report}");
    assert_eq!(v["devices"]["cpu"]["ok"], json!(true), "no cpu context: {report}");
    for (device, d) in v["devices"].as_object().unwrap() {
        if d["ok"] != json!(true) {
            eprintln!("webnn {device}: createContext fails: {}", d["error"]);
            continue;
        }
        let ops = &d["limits"]["ops"];
        eprintln!(
            "webnn {device}: createContext ok, {} ops; gather indices {}, where condition {}, matmul max rank {}, gemm max rank {}, maxTensorByteLength {}",
            ops.as_object().map_or(0, |o| o.len()),
            ops["gather"]["indices"],
            ops["where"]["dataTypes"],
            ops["matmul"]["maxRank"],
            ops["gemm"]["maxRank"],
            d["limits"]["maxTensorByteLength"],
        );
    }
}

/// The browser's outputs of one case, as f32 per output name.
fn browser_outputs(name: &str, report: &str) -> (BTreeMap<String, Vec<f32>>, f64, f64) {
    let v: Value = serde_json::from_str(report).unwrap_or_else(|e| panic!("{name}: bad report {e}: {report}"));
    if let Some(err) = v.get("error") {
        panic!("case {name} failed in the browser: {}", err.as_str().unwrap_or_default());
    }
    let outs = v["outputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, o)| (k.clone(), o["values"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()))
        .collect();
    (outs, v["buildMs"].as_f64().unwrap_or(0.0), v["runMs"].as_f64().unwrap_or(0.0))
}

#[test]
fn webnn_executor_matches_cpu_backend() {
    let Some(chromium) = support::webnn_chromium() else { return };
    let mut cases = vec![ops_case(), attention_case(), conv_case()];
    let minilm = common::test_model("all-MiniLM-L6-v2");
    if let Some(dir) = &minilm {
        cases.push(minilm_case(dir));
    }
    let refused = refused_cases();
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let mut order: Vec<&str> = cases.iter().map(|c| c.name).collect();
    order.extend(refused.iter().map(|r| r.0));
    let mut payloads: BTreeMap<String, Payload> = cases.iter().map(|c| (c.name.to_string(), c.payload())).collect();
    payloads.extend(refused.iter().map(|(name, p, _)| (name.to_string(), p.clone())));
    let site = Site {
        harness: std::fs::read(web.join("test/webnn-harness.html")).unwrap(),
        webnn_js: std::fs::read(web.join("webnn.js")).unwrap(),
        order: serde_json::to_vec(&order).unwrap(),
        cases: payloads,
    };
    let (port, rx) = serve(site);
    let start = Instant::now();
    let browser = support::open(
        &chromium,
        &format!("http://127.0.0.1:{port}/harness.html?device=cpu"),
        Profile::Ephemeral,
        &["--disable-gpu"],
    );

    let mut reports = BTreeMap::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(Event::Capabilities(c)) => print_capabilities(&c),
            Ok(Event::Result(name, body)) => {
                reports.insert(name, body);
            }
            Ok(Event::Error(e)) => panic!("the harness page failed: {e}"),
            Ok(Event::Done) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(status) = browser.exit_status() {
                    panic!("chromium exited early ({status}) after {:?}", start.elapsed());
                }
                assert!(start.elapsed() < DEADLINE, "no answer from the page within {DEADLINE:?}");
            }
            Err(e) => panic!("{e}"),
        }
    }
    drop(browser);
    eprintln!("browser run: {:.1?}", start.elapsed());

    for (name, _, words) in &refused {
        let report: Value = serde_json::from_str(reports.get(*name).expect("a report for each refused case")).unwrap();
        let error = report["error"].as_str().unwrap_or_else(|| panic!("{name}: the executor accepted it: {report}"));
        assert!(error.contains(words), "{name}: error {error:?} lacks {words:?}");
        eprintln!("case {name}: refused: {}", error.lines().next().unwrap_or_default());
    }
    for case in &cases {
        let report = reports.get(case.name).unwrap_or_else(|| panic!("no result for case {}", case.name));
        let (got, build_ms, run_ms) = browser_outputs(case.name, report);
        let want = case.cpu();
        assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{}: output names", case.name);
        let mut worst = 0.0f32;
        for (name, w) in &want {
            let g = &got[name];
            let scale = w.iter().fold(1.0f32, |m, x| m.max(x.abs()));
            let diff = max_abs_diff(g, w);
            worst = worst.max(diff / scale);
            assert!(diff <= 1e-3 * scale, "{}/{name}: max abs diff {diff} (scale {scale})", case.name);
        }
        eprintln!(
            "case {}: {} outputs, worst max abs diff (relative to max(1, |x|)) {worst:.3e}; build {build_ms:.0} ms, run {run_ms:.1} ms",
            case.name,
            want.len()
        );
        if case.name == "minilm" {
            let lens: Vec<usize> = MINILM_SEQS.iter().map(|s| s.len()).collect();
            let dim = want["last_hidden_state"].len() / lens.iter().sum::<usize>();
            let g = mean_pool(&got["last_hidden_state"], &lens, dim);
            let w = mean_pool(&want["last_hidden_state"], &lens, dim);
            for (i, (g, w)) in g.iter().zip(&w).enumerate() {
                let c = cosine(g, w);
                eprintln!("minilm sequence {i}: pooled cosine to cpu {c:.7}, max abs diff {:.3e}", max_abs_diff(g, w));
                assert!(c >= 0.999, "minilm sequence {i}: cosine {c}");
            }
        }
    }
}
