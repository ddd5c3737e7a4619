//! Times one process start: open the device, create a runner (loading the pipeline
//! cache), and compile every kernel with the override combinations models use; then
//! save the cache. Run it twice to compare a cold and a warm start:
//!
//! ```sh
//! export IPFS_ACCELERATE_CACHE_DIR=$(mktemp -d)
//! cargo run -p ipfs-accelerate-gpu --release --example pipeline_cache_timing   # cold
//! cargo run -p ipfs-accelerate-gpu --release --example pipeline_cache_timing   # warm
//! ```
//!
//! It also times one tiny dispatch of every pipeline: some drivers (llvmpipe) compile
//! lazily, at the first dispatch, not at pipeline creation.
//!
//! Mesa keeps its own shader cache (`~/.cache/mesa_shader_cache`); set
//! `MESA_SHADER_CACHE_DISABLE=true` to measure wgpu's cache alone.

use std::time::Instant;

use ipfs_accelerate_gpu::{GpuContext, KernelRunner, KERNELS};

/// The override combinations a typical encoder model uses, per kernel.
fn variants(id: &str, overrides: &[&'static str]) -> Vec<Vec<(&'static str, f64)>> {
    let mut out: Vec<Vec<(&'static str, f64)>> = vec![vec![]];
    for &name in overrides {
        let values: Vec<f64> = match (id, name) {
            (_, "WG") => continue,
            ("matmul", "ACTIVATION") => (0..4).map(f64::from).collect(),
            ("unary", "OP") => (0..13).map(f64::from).collect(),
            ("binary", "OP") => (0..7).map(f64::from).collect(),
            ("reduce", "OP") => (0..4).map(f64::from).collect(),
            _ => vec![0.0, 1.0],
        };
        out = out
            .into_iter()
            .flat_map(|base| {
                values.iter().map(move |&v| {
                    let mut c = base.clone();
                    c.push((name, v));
                    c
                })
            })
            .collect();
    }
    out
}

fn main() {
    let start = Instant::now();
    let ctx = GpuContext::new().expect("a GPU adapter");
    let opened = start.elapsed();
    let runner = KernelRunner::new(&ctx);
    let status = runner.pipeline_cache_status();
    let t0 = Instant::now();
    let mut pipelines = Vec::new();
    for k in KERNELS {
        for constants in variants(k.id, k.overrides) {
            pipelines.push(runner.pipeline(k.id, &constants).expect("kernel compiles"));
        }
    }
    let n = pipelines.len();
    let compile = t0.elapsed();
    // One workgroup per pipeline on all-zero params (empty shapes), one submit each.
    let t2 = Instant::now();
    let storage = runner.empty_storage_buffer("scratch", 1024).expect("buffer");
    for p in &pipelines {
        let uniform = runner.uniform_buffer("params", &vec![0u8; p.spec.uniform_size as usize]).expect("uniform");
        let mut buffers = vec![&uniform];
        buffers.extend(p.spec.bindings[1..].iter().map(|_| &storage));
        // Inputs and the output may not share a buffer: give the output its own.
        let out = runner.empty_storage_buffer("out", 1024).expect("buffer");
        *buffers.last_mut().expect("an output") = &out;
        let bind_group = runner.bind_group(p, &buffers).expect("bind group");
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        runner.encode(&mut encoder, p, &bind_group, [1, 1, 1]).expect("encode");
        runner.submit(encoder).expect("submit");
    }
    runner.wait("first dispatches").expect("GPU idle");
    let dispatch = t2.elapsed();
    let t1 = Instant::now();
    let saved = runner.save_pipeline_cache().expect("cache saved");
    let save = t1.elapsed();
    println!(
        "adapter: {} ({})\ncache: {}\n  {}\ndevice open: {:.0} ms\ncompiled {n} pipelines in {:.0} ms\nfirst dispatch of each: {:.0} ms\nsave: {} in {:.0} ms\ntotal: {:.0} ms",
        ctx.report().name,
        ctx.report().backend,
        if !status.enabled {
            "disabled".to_string()
        } else if status.warm() {
            format!("warm ({} bytes loaded)", status.loaded_bytes)
        } else {
            "cold".to_string()
        },
        status.path.as_ref().map_or_else(|| status.note.clone().unwrap_or_default(), |p| p.display().to_string()),
        opened.as_secs_f64() * 1e3,
        compile.as_secs_f64() * 1e3,
        dispatch.as_secs_f64() * 1e3,
        saved.map_or("nothing new".to_string(), |b| format!("{b} bytes")),
        save.as_secs_f64() * 1e3,
        start.elapsed().as_secs_f64() * 1e3,
    );
}
