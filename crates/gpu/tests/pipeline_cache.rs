//! The on-disk pipeline cache: saved after compiling, loaded by the next runner, and a
//! truncated or garbled file never breaks anything.
//!
//! Without an adapter these tests print a skip notice and pass — unless `CI=true`, where
//! a missing adapter is a failure (CI installs `mesa-vulkan-drivers libvulkan1`).

use std::path::{Path, PathBuf};

use ipfs_accelerate_gpu::params::{linear_workgroups, UnaryOp, UnaryParams};
use ipfs_accelerate_gpu::pipeline_cache::{cache_file_name, fnv1a64};
use ipfs_accelerate_gpu::{GpuContext, KernelRunner, Launch, KERNELS};

fn context() -> Option<GpuContext> {
    match GpuContext::new() {
        Ok(ctx) => {
            let r = ctx.report();
            eprintln!("pipeline cache tests on {} ({}, {})", r.name, r.backend, r.driver_info);
            Some(ctx)
        }
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true and no GPU adapter, so the pipeline cache tests cannot run: {e}")
        }
        Err(e) => {
            eprintln!("skipping pipeline cache tests: {e}");
            None
        }
    }
}

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ipfs-accelerate-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every kernel with its default constants and with every override set to 1.
fn compile_all(runner: &KernelRunner) {
    for k in KERNELS {
        runner.pipeline(k.id, &[]).unwrap();
        let ones: Vec<(&str, f64)> = k.overrides.iter().map(|o| (*o, 1.0)).collect();
        runner.pipeline(k.id, &ones).unwrap();
    }
}

fn relu(runner: &KernelRunner) -> Vec<f32> {
    let x = [-1.5f32, 0.0, 2.0, -0.25, 3.5];
    let params = UnaryParams::new(x.len() as u32);
    runner
        .run_f32(&Launch {
            kernel: UnaryParams::KERNEL,
            constants: &[("OP", UnaryOp::Relu as u32 as f64)],
            uniform: bytemuck::bytes_of(&params),
            inputs: &[Some(bytemuck::cast_slice(&x))],
            output_bytes: (x.len() * 4) as u64,
            workgroups: linear_workgroups(x.len() as u32, 256),
        })
        .unwrap()
}

const RELU: [f32; 5] = [0.0, 0.0, 2.0, 0.0, 3.5];

/// A runner from `dir` that must still compile and run everything.
fn works(ctx: &GpuContext, dir: &Path) -> KernelRunner {
    let runner = KernelRunner::with_pipeline_cache_dir(ctx, dir);
    compile_all(&runner);
    assert_eq!(relu(&runner), RELU);
    runner
}

#[test]
fn pipeline_cache_saves_loads_and_survives_damage() {
    let Some(ctx) = context() else { return };
    let tmp = TempDir::new("pipeline-cache");
    let dir = tmp.0.join("pipelines");

    if !ctx.has_pipeline_cache() {
        let runner = works(&ctx, &dir);
        let status = runner.pipeline_cache_status();
        eprintln!("adapter without PIPELINE_CACHE: {status:?}");
        assert!(!status.enabled && status.note.is_some(), "{status:?}");
        assert_eq!(runner.save_pipeline_cache().unwrap(), None);
        return;
    }

    // Cold: nothing loaded; compile everything, save.
    let first = works(&ctx, &dir);
    let status = first.pipeline_cache_status();
    assert!(status.enabled, "{status:?}");
    assert_eq!(status.loaded_bytes, 0, "{status:?}");
    assert!(!status.warm());
    let path = status.path.clone().expect("a cache path");
    assert_eq!(path.parent(), Some(dir.as_path()));
    assert_eq!(path.file_name().unwrap().to_str(), cache_file_name(&ctx.adapter_info()).as_deref());
    assert!(status.pipelines_compiled >= 2 * KERNELS.len() as u64 - 1, "{status:?}");
    let saved = first.save_pipeline_cache().unwrap().expect("new pipelines, so something to save");
    let on_disk = std::fs::metadata(&path).unwrap().len();
    assert!(on_disk > 16 && on_disk == saved, "saved {saved}, file {on_disk}");
    assert_eq!(first.save_pipeline_cache().unwrap(), None, "nothing new since the last save");
    assert_eq!(first.pipeline_cache_status().saved_bytes, saved);
    drop(first);
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "only the cache file, no temp files: {leftovers:?}");

    // Warm: the second runner loads it and still computes the same.
    let second = works(&ctx, &dir);
    let status = second.pipeline_cache_status();
    eprintln!("warm runner: {status:?}");
    assert!(status.warm() && status.loaded_bytes + 16 == on_disk, "{status:?}");
    assert!(status.note.is_none(), "{status:?}");
    drop(second);
    let good = std::fs::read(&path).unwrap();

    // Truncated: ignored, everything works, and the drop writes a good file again.
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let third = works(&ctx, &dir);
    let status = third.pipeline_cache_status();
    assert!(status.enabled && !status.warm(), "{status:?}");
    assert!(status.note.as_deref().unwrap_or("").contains("ignored"), "{status:?}");
    drop(third);
    assert!(KernelRunner::with_pipeline_cache_dir(&ctx, &dir).pipeline_cache_status().warm(), "rewritten on drop");

    // Garbage of the same length (bad checksum): ignored.
    std::fs::write(&path, vec![0xa5u8; good.len()]).unwrap();
    let status = works(&ctx, &dir).pipeline_cache_status();
    assert!(!status.warm(), "{status:?}");

    // Our header with a valid checksum over garbage: wgpu's own header check rejects
    // it (fallback: an empty cache) and nothing breaks.
    let payload = vec![0x5au8; 4096];
    let mut forged = b"IPFSAPC1".to_vec();
    forged.extend_from_slice(&fnv1a64(&payload).to_le_bytes());
    forged.extend_from_slice(&payload);
    std::fs::write(&path, &forged).unwrap();
    let runner = works(&ctx, &dir);
    let status = runner.pipeline_cache_status();
    assert!(status.enabled && !status.warm(), "{status:?}");
    assert!(status.note.as_deref().unwrap_or("").contains("discarded"), "{status:?}");

    // An empty file and a directory in the file's place: no panic, still works.
    drop(runner);
    std::fs::write(&path, b"").unwrap();
    works(&ctx, &dir);
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let runner = works(&ctx, &dir);
    assert!(runner.save_pipeline_cache().is_err(), "cannot rename over a directory");
    drop(runner); // logs the failed save, no panic
}

#[test]
fn runner_without_cache_works() {
    let Some(ctx) = context() else { return };
    let runner = KernelRunner::without_pipeline_cache(&ctx);
    assert_eq!(relu(&runner), RELU);
    let status = runner.pipeline_cache_status();
    assert!(!status.enabled && status.path.is_none() && status.pipelines_compiled == 1, "{status:?}");
    assert_eq!(runner.save_pipeline_cache().unwrap(), None);
}
