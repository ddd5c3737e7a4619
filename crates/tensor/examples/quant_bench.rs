//! Timings of the quantized kernels on SmolLM2-135M's matrix shapes.
//!
//! `cargo run --release -p ipfs-accelerate-tensor --example quant_bench [matvec|matmul]`
//!
//! For each shape and type: matvec on the best SIMD kernels (`auto`), on
//! AVX2 only (`avx2`), on the 8-bit-activation path (`q8act`, `q8act-avx2`)
//! and on the portable kernels (`scalar`),
//! in GFLOP/s (2·rows·cols per product) and GB/s of weights read; then the
//! batched product for 32 and 128 tokens.

use ipfs_accelerate_tensor::quant::{Kernel, QuantMatrix, QuantType};
use std::time::{Duration, Instant};

/// Median seconds per call of `f`, over enough calls to fill ~0.4 s.
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut calls = 0;
    while start.elapsed() < Duration::from_millis(100) {
        f();
        calls += 1;
    }
    let per = start.elapsed().as_secs_f64() / calls as f64;
    let reps = ((0.3 / per) as usize).clamp(5, 2000);
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[reps / 2]
}

fn values(n: usize, seed: u32) -> Vec<f32> {
    // A cheap LCG: the timings do not depend on the values.
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

fn main() {
    let what = std::env::args().nth(1).unwrap_or_default();
    let shapes = [(576, 1536), (1536, 576), (49152, 576)];
    // QUANT_BENCH_SHAPES=n runs only the first n shapes.
    let shapes = &shapes[..std::env::var("QUANT_BENCH_SHAPES").map_or(3, |v| v.parse().unwrap_or(3))];
    let types = [QuantType::Q4_1, QuantType::Q4_0, QuantType::Q8_0, QuantType::F16, QuantType::F32];
    println!("threads: {}", rayon::current_num_threads());
    for &(rows, cols) in shapes {
        let w = values(rows * cols, 1);
        let x = values(cols, 2);
        let mut y = vec![0.0f32; rows];
        for t in types {
            let m = QuantMatrix::quantize(t, rows, cols, &w).unwrap();
            let flop = 2.0 * rows as f64 * cols as f64;
            let gb = m.bytes().len() as f64 / 1e9;
            if what.is_empty() || what == "matvec" {
                let mut line = format!("matvec {rows:>5}x{cols:<5} {:<5}", t.name());
                for name in ["auto", "avx2", "q8act", "q8act-avx2", "scalar"] {
                    let s = time(|| match name {
                        "auto" => m.matvec_with(&x, &mut y, Kernel::Auto),
                        "avx2" => m.matvec_with(&x, &mut y, Kernel::Avx2),
                        "q8act" => m.matvec_q8act_with(&x, &mut y, Kernel::Auto),
                        "q8act-avx2" => m.matvec_q8act_with(&x, &mut y, Kernel::Avx2),
                        _ => m.matvec_with(&x, &mut y, Kernel::Scalar),
                    });
                    line += &format!(" | {name} {:.1} us {:.1} GF/s {:.1} GB/s", s * 1e6, flop / s / 1e9, gb / s);
                }
                println!("{line}");
            }
            if what.is_empty() || what == "matmul" {
                for n in [32, 128] {
                    let xs = values(n * cols, 3);
                    let mut ys = vec![0.0f32; n * rows];
                    let s = time(|| m.matmul(&xs, n, &mut ys));
                    println!(
                        "matmul {rows:>5}x{cols:<5} {:<5} n={n:<3} {:9.1} us {:6.1} GFLOP/s",
                        t.name(),
                        s * 1e6,
                        n as f64 * flop / s / 1e9
                    );
                }
            }
        }
    }
}
