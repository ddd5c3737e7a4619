//! `ipfs-accelerate bench matmul`: square matmul GFLOP/s on webgpu, through
//! the same path models take (graph → plan → [`LoadedPlan`]), beside the CPU
//! backend, at f32 and at f16 weights.
//!
//! B is a weight constant (as a model's weights are), so `--precision 16`
//! stores it on the device as f16 and runs the `matmul_f16w` kernel; f32 uses
//! the same graph, so both rows move the same bytes apart from B's size.
//!
//! [`LoadedPlan::run`] always writes the inputs and reads the outputs back, and
//! the executor has no entry point without them, so the webgpu side is timed
//! twice: end-to-end (one matmul per run, upload of A and readback included),
//! and kernel-only as the difference between a plan of [`CHAIN`] chained
//! matmuls and a plan of one, which move the same bytes to and from the device.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use ipfs_accelerate_gpu::{
    compile_with, AdapterReport, CompileOptions, DeviceWeights, GpuContext, KernelRunner, LoadedPlan,
};
use ipfs_accelerate_tensor::{CpuBackend, DType, Graph, GraphBuilder, Tensor, Weights};
use serde::Serialize;
use std::time::{Duration, Instant};

/// Matmuls in the chained plan that the kernel-only time comes from.
const CHAIN: usize = 8;

/// Largest size accepted (a 16384² f32 matrix is 1 GiB).
const MAX_SIZE: usize = 16384;

const END_TO_END: &str = "end-to-end: LoadedPlan::run of one matmul, writing A and reading the product back (B is a weight, on the device since load)";
const KERNEL: &str = "kernel: (run of 8 chained matmuls - run of 1) / 7, same upload and readback, so they cancel";
const F16_MEASURED: &str =
    "f16: B (the weight) stored as float16 on the device, converted from f32 at load; arithmetic in float32 (matmul_f16w)";
const F16_MISSING: &str = "f16: this adapter has no shader-f16";
const F16_SKIPPED: &str = "f16: not measured (--precision 32)";
const DIFF: &str = "max diff: largest |webgpu - cpu| / (1 + |cpu|) over the product";

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

/// `--precision` of `bench matmul`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PrecisionArg {
    /// f32 weights.
    #[value(name = "32")]
    F32,
    /// f16 weights (needs the adapter's shader-f16), f32 arithmetic.
    #[value(name = "16")]
    F16,
    /// Both, one row each.
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
    /// Weight (B) precision on webgpu: 32, 16 (float16 weights, float32 arithmetic;
    /// needs shader-f16), or both [default: both when the adapter has shader-f16, else 32].
    /// The cpu backend is always float32.
    #[arg(long, value_enum)]
    precision: Option<PrecisionArg>,
    /// Seconds to measure each size on each backend and precision (after one warm-up run).
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Print one JSON object with all results.
    #[arg(long)]
    json: bool,
}

/// One precision's webgpu result at one size.
#[derive(Serialize)]
struct GpuTiming {
    /// "f32" or "f16": how B is stored on the device.
    weights: &'static str,
    /// GFLOP/s of one run, upload and readback included.
    end_to_end_gflops: f64,
    end_to_end_ms: f64,
    runs: usize,
    /// GFLOP/s of the matmul alone; null when the difference was lost in noise.
    kernel_gflops: Option<f64>,
    kernel_ms: Option<f64>,
    chain_runs: usize,
    /// end-to-end GFLOP/s over cpu GFLOP/s.
    vs_cpu: Option<f64>,
    /// kernel GFLOP/s over cpu GFLOP/s.
    kernel_vs_cpu: Option<f64>,
    /// Largest |gpu − cpu| / (1 + |cpu|) over the product's elements.
    max_rel_diff: Option<f64>,
}

#[derive(Serialize)]
struct CpuTiming {
    gflops: f64,
    ms: f64,
    runs: usize,
}

/// webgpu results of one size, per precision (null: not measured).
#[derive(Serialize, Default)]
struct GpuRows {
    f32: Option<GpuTiming>,
    f16: Option<GpuTiming>,
}

#[derive(Serialize)]
struct Row {
    size: usize,
    /// 2·n³.
    flops: f64,
    /// null when webgpu was not measured.
    webgpu: Option<GpuRows>,
    /// Always f32.
    cpu: Option<CpuTiming>,
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
    let shader_f16 = runner.as_ref().map(|r| r.context().has_shader_f16());

    // Which weight precisions webgpu runs: f32, f16.
    let asked = args.precision.unwrap_or(if shader_f16 == Some(true) { PrecisionArg::Both } else { PrecisionArg::F32 });
    let mut run_f32 = asked != PrecisionArg::F16;
    let mut run_f16 = asked != PrecisionArg::F32;
    let f16_note = match shader_f16 {
        Some(false) if run_f16 => {
            eprintln!("notice: {F16_MISSING}; measuring f32 weights only");
            run_f16 = false;
            run_f32 = true;
            F16_MISSING
        }
        Some(false) => F16_MISSING,
        _ if run_f16 => F16_MEASURED,
        _ => F16_SKIPPED,
    };
    let cpu = CpuBackend::new();

    let mut rows = Vec::new();
    for &n in &args.sizes {
        let flops = 2.0 * (n as f64).powi(3);
        let a = random(n, 1, 1.0);
        let b = random(n, 2, 1.0 / (n as f64).sqrt() as f32);
        let inputs = [("a", &a)];
        let (single, weights) = chain_graph(n, 1, &b)?;
        let (chained, _) = chain_graph(n, CHAIN, &b)?;

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
        let ratio = |gpu: Option<f64>| match (gpu, &cpu_timing) {
            (Some(g), Some(c)) if c.gflops > 0.0 => Some(g / c.gflops),
            _ => None,
        };

        let webgpu = match &runner {
            Some(runner) => {
                let mut gpu_rows = GpuRows::default();
                for (f16_weights, wanted) in [(false, run_f32), (true, run_f16)] {
                    if !wanted {
                        continue;
                    }
                    let label = if f16_weights { "f16" } else { "f32" };
                    let spinner = spinner(format!("matmul {n} webgpu {label}"));
                    let load = |graph: &Graph| -> Result<LoadedPlan> {
                        let plan = compile_with(graph, CompileOptions { f16_weights, ..CompileOptions::default() })
                            .with_context(|| format!("compiling the {n}x{n} {label} matmul plan"))?;
                        LoadedPlan::load(runner, &plan, &weights, &DeviceWeights::new())
                            .with_context(|| format!("loading the {n}x{n} {label} matmul plan"))
                    };
                    let plan = load(&single)?;
                    let run = || plan.run(runner, &inputs).with_context(|| format!("webgpu {n}x{n} {label} matmul"));
                    let product = run()?.remove(0); // warm-up
                    let (e2e, runs) = time(seconds, || run().map(drop))?;
                    let chain_plan = load(&chained)?;
                    let run_chain = || {
                        chain_plan.run(runner, &inputs).with_context(|| format!("webgpu {n}x{n} {label} matmul chain"))
                    };
                    run_chain()?; // warm-up
                    let (chain, chain_runs) = time(seconds, || run_chain().map(drop))?;
                    spinner.finish_and_clear();
                    let kernel = (chain - e2e) / (CHAIN - 1) as f64;
                    let kernel = (kernel > 0.0).then_some(kernel);
                    let end_to_end_gflops = flops / e2e / 1e9;
                    let kernel_gflops = kernel.map(|k| flops / k / 1e9);
                    let timing = GpuTiming {
                        weights: label,
                        end_to_end_gflops,
                        end_to_end_ms: e2e * 1e3,
                        runs,
                        kernel_gflops,
                        kernel_ms: kernel.map(|k| k * 1e3),
                        chain_runs,
                        vs_cpu: ratio(Some(end_to_end_gflops)),
                        kernel_vs_cpu: ratio(kernel_gflops),
                        max_rel_diff: cpu_product.as_ref().map(|c| max_rel_diff(&product, c)).transpose()?,
                    };
                    if f16_weights {
                        gpu_rows.f16 = Some(timing);
                    } else {
                        gpu_rows.f32 = Some(timing);
                    }
                }
                Some(gpu_rows)
            }
            None => None,
        };
        rows.push(Row { size: n, flops, webgpu, cpu: cpu_timing });
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
                "timing": { "end_to_end": END_TO_END, "kernel": KERNEL, "max_rel_diff": DIFF },
                "precisions": {
                    "f32": runner.is_some() && run_f32,
                    "f16": runner.is_some() && run_f16,
                },
                "f16": {
                    "measured": runner.is_some() && run_f16,
                    "adapter_shader_f16": shader_f16,
                    "note": f16_note,
                },
                "results": rows,
            })
        );
        return Ok(());
    }
    print_table(&rows, adapter.as_ref(), cpu.threads(), f16_note);
    Ok(())
}

fn print_table(rows: &[Row], adapter: Option<&AdapterReport>, threads: usize, f16_note: &str) {
    println!("matmul, n x n times n x n (2n^3 flops); B is a weight, stored as f32 or f16 on webgpu");
    if let Some(a) = adapter {
        println!(
            "  webgpu: [{}] {} ({}, {}, {}), shader-f16: {}",
            a.index,
            a.name,
            a.backend,
            a.device_type,
            a.driver_info,
            if a.shader_f16 { "yes" } else { "no" }
        );
    }
    println!("  cpu:    {threads} threads, f32");
    let dash = || "-".to_string();
    let f = |v: Option<f64>, prec: usize| v.map_or_else(dash, |v| format!("{v:.prec$}"));
    let x = |v: Option<f64>| v.map_or_else(dash, |v| format!("{v:.3}x"));
    println!(
        "{:>6} {:>5} {:>14} {:>10} {:>14} {:>10} {:>11} {:>10} {:>10} {:>10} {:>9}",
        "n",
        "B",
        "webgpu e2e",
        "e2e ms",
        "webgpu kernel",
        "kernel ms",
        "cpu",
        "cpu ms",
        "e2e/cpu",
        "kernel/cpu",
        "max diff"
    );
    println!("{:>6} {:>5} {:>14} {:>10} {:>14} {:>10} {:>11}", "", "", "GFLOP/s", "", "GFLOP/s", "", "GFLOP/s");
    for r in rows {
        let gpu: Vec<&GpuTiming> = r.webgpu.iter().flat_map(|w| [w.f32.as_ref(), w.f16.as_ref()]).flatten().collect();
        let c = r.cpu.as_ref();
        let cpu_cells = (f(c.map(|c| c.gflops), 2), f(c.map(|c| c.ms), 3));
        if gpu.is_empty() {
            println!(
                "{:>6} {:>5} {:>14} {:>10} {:>14} {:>10} {:>11} {:>10} {:>10} {:>10} {:>9}",
                r.size, "f32", "-", "-", "-", "-", cpu_cells.0, cpu_cells.1, "-", "-", "-"
            );
        }
        for (i, w) in gpu.iter().enumerate() {
            // The cpu runs once per size: show it on the first row only.
            let (cg, cm) = if i == 0 { cpu_cells.clone() } else { (String::new(), String::new()) };
            println!(
                "{:>6} {:>5} {:>14} {:>10} {:>14} {:>10} {:>11} {:>10} {:>10} {:>10} {:>9}",
                if i == 0 { r.size.to_string() } else { String::new() },
                w.weights,
                f(Some(w.end_to_end_gflops), 2),
                f(Some(w.end_to_end_ms), 3),
                f(w.kernel_gflops, 2),
                f(w.kernel_ms, 3),
                cg,
                cm,
                x(w.vs_cpu),
                x(w.kernel_vs_cpu),
                w.max_rel_diff.map_or_else(dash, |d| format!("{d:.1e}")),
            );
        }
    }
    if adapter.is_some() {
        println!("{END_TO_END}");
        println!("{KERNEL} ('-' when lost in timing noise)");
        println!("{DIFF}");
        println!("{f16_note}");
    }
}

/// `c_1 = a·b`, `c_k = c_{k−1}·b`: `len` matmuls of the n×n input `a` and the
/// n×n weight constant `b`.
fn chain_graph(n: usize, len: usize, b: &Tensor) -> Result<(Graph, Weights)> {
    let mut g = GraphBuilder::new();
    let a = g.input("a", DType::Float32, vec![n, n])?;
    let b = g.constant("b", b.clone())?;
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
