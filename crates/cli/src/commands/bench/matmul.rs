//! `ipfs-accelerate bench matmul`: square f32 matmul GFLOP/s on webgpu, through
//! the same path models take (graph → plan → [`LoadedPlan`]), beside the CPU
//! backend.
//!
//! [`LoadedPlan::run`] always writes the inputs and reads the outputs back, and
//! the executor has no entry point without them, so the webgpu side is timed
//! twice: end-to-end (one matmul per run, upload and readback included), and
//! kernel-only as the difference between a plan of [`CHAIN`] chained matmuls
//! and a plan of one, which move the same bytes to and from the device.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use ipfs_accelerate_gpu::{compile, AdapterReport, DeviceWeights, GpuContext, KernelRunner, LoadedPlan};
use ipfs_accelerate_tensor::{CpuBackend, DType, Graph, GraphBuilder, Tensor, Weights};
use serde::Serialize;
use std::time::{Duration, Instant};

/// Matmuls in the chained plan that the kernel-only time comes from.
const CHAIN: usize = 8;

/// Largest size accepted (a 16384² f32 matrix is 1 GiB).
const MAX_SIZE: usize = 16384;

const END_TO_END: &str = "end-to-end: LoadedPlan::run of one matmul, writing both inputs and reading the product back";
const KERNEL: &str = "kernel: (run of 8 chained matmuls - run of 1) / 7, same upload and readback, so they cancel";
const F16_NOTE: &str = "f16: not available in this build: the webgpu matmul kernels are f32 only";

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Backend {
    /// wgpu on the adapter `devices` marks.
    Webgpu,
    /// The CPU backend.
    Cpu,
    /// Both, side by side with a ratio.
    Both,
}

/// Options of `bench matmul`.
#[derive(Args)]
pub struct BenchMatmulArgs {
    /// Which backend to measure.
    #[arg(long, value_enum, default_value = "both")]
    backend: Backend,
    /// Matrix sizes n (n x n times n x n), comma-separated. On software Vulkan
    /// (llvmpipe) use small ones: it is about a thousand times slower than a GPU.
    #[arg(long, value_delimiter = ',', default_value = "512,1024,2048,4096")]
    sizes: Vec<usize>,
    /// Seconds to measure each size on each backend (after one warm-up run).
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Print one JSON object with all results.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct GpuTiming {
    /// GFLOP/s of one run, upload and readback included.
    end_to_end_gflops: f64,
    end_to_end_ms: f64,
    runs: usize,
    /// GFLOP/s of the matmul alone; null when the difference was lost in noise.
    kernel_gflops: Option<f64>,
    kernel_ms: Option<f64>,
    chain_runs: usize,
}

#[derive(Serialize)]
struct CpuTiming {
    gflops: f64,
    ms: f64,
    runs: usize,
}

#[derive(Serialize)]
struct Row {
    size: usize,
    dtype: &'static str,
    /// 2·n³.
    flops: f64,
    webgpu: Option<GpuTiming>,
    cpu: Option<CpuTiming>,
    /// webgpu end-to-end GFLOP/s over cpu GFLOP/s.
    webgpu_vs_cpu: Option<f64>,
    /// webgpu kernel GFLOP/s over cpu GFLOP/s.
    webgpu_kernel_vs_cpu: Option<f64>,
    /// Largest |gpu − cpu| / (1 + |cpu|) over the product's elements.
    max_rel_diff: Option<f64>,
}

pub fn run(args: BenchMatmulArgs) -> Result<()> {
    if args.sizes.is_empty() {
        bail!("--sizes needs at least one size");
    }
    if let Some(&bad) = args.sizes.iter().find(|&&n| n == 0 || n > MAX_SIZE) {
        bail!("matrix size {bad} is out of range: sizes must be 1 to {MAX_SIZE}");
    }
    if !args.seconds.is_finite() || args.seconds <= 0.0 {
        bail!("--seconds must be positive");
    }
    let seconds = Duration::from_secs_f64(args.seconds);
    let want_gpu = args.backend != Backend::Cpu;
    let want_cpu = args.backend != Backend::Webgpu;

    let mut gpu_error = None;
    let runner = if want_gpu {
        match GpuContext::new() {
            Ok(ctx) => Some(KernelRunner::new(&ctx)),
            Err(e) if args.backend == Backend::Both => {
                eprintln!("notice: webgpu unavailable ({e}); measuring cpu only (see `ipfs-accelerate devices`)");
                gpu_error = Some(e.to_string());
                None
            }
            Err(e) => return Err(e).context("webgpu (see `ipfs-accelerate devices`)"),
        }
    } else {
        None
    };
    let adapter: Option<AdapterReport> = runner.as_ref().map(|r| r.context().report().clone());
    let cpu = CpuBackend::new();

    let mut rows = Vec::new();
    for &n in &args.sizes {
        let flops = 2.0 * (n as f64).powi(3);
        let a = random(n, 1, 1.0);
        let b = random(n, 2, 1.0 / (n as f64).sqrt() as f32);
        let inputs = [("a", &a), ("b", &b)];
        let (single, weights) = chain_graph(n, 1)?;

        let mut gpu_product = None;
        let webgpu = match &runner {
            Some(runner) => {
                let spinner = spinner(format!("matmul {n} webgpu"));
                let load = |graph: &Graph| -> Result<LoadedPlan> {
                    let plan = compile(graph).with_context(|| format!("compiling the {n}x{n} matmul plan"))?;
                    LoadedPlan::load(runner, &plan, &weights, &DeviceWeights::new())
                        .with_context(|| format!("loading the {n}x{n} matmul plan"))
                };
                let plan = load(&single)?;
                let run = || plan.run(runner, &inputs).with_context(|| format!("webgpu {n}x{n} matmul"));
                gpu_product = Some(run()?.remove(0)); // warm-up
                let (e2e, runs) = time(seconds, || run().map(drop))?;
                let (chained, _) = chain_graph(n, CHAIN)?;
                let chain_plan = load(&chained)?;
                let run_chain =
                    || chain_plan.run(runner, &inputs).with_context(|| format!("webgpu {n}x{n} matmul chain"));
                run_chain()?; // warm-up
                let (chain, chain_runs) = time(seconds, || run_chain().map(drop))?;
                spinner.finish_and_clear();
                let kernel = (chain - e2e) / (CHAIN - 1) as f64;
                let kernel = (kernel > 0.0).then_some(kernel);
                Some(GpuTiming {
                    end_to_end_gflops: flops / e2e / 1e9,
                    end_to_end_ms: e2e * 1e3,
                    runs,
                    kernel_gflops: kernel.map(|k| flops / k / 1e9),
                    kernel_ms: kernel.map(|k| k * 1e3),
                    chain_runs,
                })
            }
            None => None,
        };

        let mut cpu_product = None;
        let cpu_timing = if want_cpu {
            let spinner = spinner(format!("matmul {n} cpu"));
            let exe = cpu.compile(&single, &weights).context("compiling the matmul for the cpu backend")?;
            cpu_product = Some(exe.run(&inputs).context("cpu matmul")?.remove(0)); // warm-up
            let (secs, runs) = time(seconds, || exe.run(&inputs).map(drop).context("cpu matmul"))?;
            spinner.finish_and_clear();
            Some(CpuTiming { gflops: flops / secs / 1e9, ms: secs * 1e3, runs })
        } else {
            None
        };

        let max_rel_diff = match (&gpu_product, &cpu_product) {
            (Some(g), Some(c)) => Some(max_rel_diff(g, c)?),
            _ => None,
        };
        let ratio = |gpu: Option<f64>| match (gpu, &cpu_timing) {
            (Some(g), Some(c)) if c.gflops > 0.0 => Some(g / c.gflops),
            _ => None,
        };
        rows.push(Row {
            size: n,
            dtype: "f32",
            flops,
            webgpu_vs_cpu: ratio(webgpu.as_ref().map(|w| w.end_to_end_gflops)),
            webgpu_kernel_vs_cpu: ratio(webgpu.as_ref().and_then(|w| w.kernel_gflops)),
            webgpu,
            cpu: cpu_timing,
            max_rel_diff,
        });
    }

    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "op": "matmul",
                "backend": args.backend,
                "seconds": args.seconds,
                "webgpu_adapter": adapter,
                "webgpu_error": gpu_error,
                "cpu_threads": cpu.threads(),
                "timing": { "end_to_end": END_TO_END, "kernel": KERNEL },
                "f16": {
                    "available": false,
                    "adapter_shader_f16": adapter.as_ref().map(|a| a.shader_f16),
                    "note": F16_NOTE,
                },
                "results": rows,
            })
        );
        return Ok(());
    }
    print_table(&rows, adapter.as_ref(), cpu.threads(), want_gpu);
    Ok(())
}

fn print_table(rows: &[Row], adapter: Option<&AdapterReport>, threads: usize, want_gpu: bool) {
    println!("matmul f32, n x n times n x n (2n^3 flops)");
    if let Some(a) = adapter {
        println!("  webgpu: [{}] {} ({}, {}, {})", a.index, a.name, a.backend, a.device_type, a.driver_info);
    }
    println!("  cpu:    {threads} threads");
    let dash = || "-".to_string();
    let f = |v: Option<f64>, prec: usize| v.map_or_else(dash, |v| format!("{v:.prec$}"));
    println!(
        "{:>6} {:>14} {:>10} {:>14} {:>10} {:>11} {:>10} {:>10} {:>10} {:>9}",
        "n", "webgpu e2e", "e2e ms", "webgpu kernel", "kernel ms", "cpu", "cpu ms", "e2e/cpu", "kernel/cpu", "max diff"
    );
    println!("{:>6} {:>14} {:>10} {:>14} {:>10} {:>11}", "", "GFLOP/s", "", "GFLOP/s", "", "GFLOP/s");
    for r in rows {
        let w = r.webgpu.as_ref();
        let c = r.cpu.as_ref();
        println!(
            "{:>6} {:>14} {:>10} {:>14} {:>10} {:>11} {:>10} {:>10} {:>10} {:>9}",
            r.size,
            f(w.map(|w| w.end_to_end_gflops), 2),
            f(w.map(|w| w.end_to_end_ms), 3),
            f(w.and_then(|w| w.kernel_gflops), 2),
            f(w.and_then(|w| w.kernel_ms), 3),
            f(c.map(|c| c.gflops), 2),
            f(c.map(|c| c.ms), 3),
            f(r.webgpu_vs_cpu, 3).to_string() + if r.webgpu_vs_cpu.is_some() { "x" } else { "" },
            f(r.webgpu_kernel_vs_cpu, 3).to_string() + if r.webgpu_kernel_vs_cpu.is_some() { "x" } else { "" },
            r.max_rel_diff.map_or_else(dash, |d| format!("{d:.1e}")),
        );
    }
    if want_gpu && adapter.is_some() {
        println!("{END_TO_END}");
        println!("{KERNEL} ('-' when lost in timing noise)");
        let f16 = match adapter.map(|a| a.shader_f16) {
            Some(true) => " (adapter shader-f16: yes)",
            Some(false) => " (adapter shader-f16: no)",
            None => "",
        };
        println!("{F16_NOTE}{f16}");
    } else {
        println!("{F16_NOTE}");
    }
}

/// `c_1 = a·b`, `c_k = c_{k−1}·b`: `len` matmuls of n×n inputs `a` and `b`.
fn chain_graph(n: usize, len: usize) -> Result<(Graph, Weights)> {
    let mut g = GraphBuilder::new();
    let a = g.input("a", DType::Float32, vec![n, n])?;
    let b = g.input("b", DType::Float32, vec![n, n])?;
    let mut c = g.matmul(a, b)?;
    for _ in 1..len {
        c = g.matmul(c, b)?;
    }
    Ok(g.build(&[("c", c)])?)
}

/// An n×n matrix of deterministic values in [-scale, scale).
fn random(n: usize, seed: u32, scale: f32) -> Tensor {
    let mut s = seed.wrapping_mul(2_654_435_761) | 1;
    let values: Vec<f32> = (0..n * n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            ((s >> 8) as f32 / (1u32 << 23) as f32 - 1.0) * scale
        })
        .collect();
    Tensor::from_f32(vec![n, n], &values).expect("n*n values")
}

/// Mean seconds per call of `f` over at least one call and `duration`.
fn time(duration: Duration, mut f: impl FnMut() -> Result<()>) -> Result<(f64, usize)> {
    let start = Instant::now();
    let mut runs = 0;
    while runs == 0 || start.elapsed() < duration {
        f()?;
        runs += 1;
    }
    Ok((start.elapsed().as_secs_f64() / runs as f64, runs))
}

fn max_rel_diff(gpu: &Tensor, cpu: &Tensor) -> Result<f64> {
    let (g, c) = (gpu.to_f32_vec()?, cpu.to_f32_vec()?);
    if g.len() != c.len() {
        bail!("webgpu gave {} values and cpu {}", g.len(), c.len());
    }
    Ok(g.iter().zip(&c).map(|(a, b)| f64::from((a - b).abs()) / (1.0 + f64::from(b.abs()))).fold(0.0, f64::max))
}

fn spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_message(message);
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
