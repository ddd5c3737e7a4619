//! Vectorizable math for the CPU kernels, and runtime selection of AVX2+FMA code.
//!
//! The hot loops are written as plain Rust over slices, with fixed-width
//! accumulators so LLVM vectorizes them. [`multiversion!`] compiles a loop twice
//! — once for the baseline target and once with AVX2 and FMA enabled — and picks
//! the best at run time, so one binary runs everywhere and fast where it can.

/// Whether this CPU has AVX2 and FMA (checked once).
#[cfg(target_arch = "x86_64")]
pub fn has_avx2_fma() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// Defines `pub(crate) fn $name(args) -> ret` that runs `$body` compiled for
/// AVX2+FMA when the CPU has them, and for the baseline target otherwise.
/// Inside the body, the const `FMA` tells which: pass it to [`madd`].
macro_rules! multiversion {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        pub(crate) fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(unused)]
            fn generic<const FMA: bool>($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    generic::<true>($($arg),*)
                }
                if crate::cpu::simd::has_avx2_fma() {
                    // SAFETY: the CPU supports the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic::<{ cfg!(target_arch = "aarch64") }>($($arg),*)
        }
    };
}

/// `a * b + c`: one fused instruction where the code was compiled with FMA
/// (`FMA = true`), a multiply and an add otherwise (a software `fma` call
/// would be far slower than both).
#[inline(always)]
pub fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}
pub(crate) use multiversion;

const LANES: usize = 16;

/// Sum of `x`, with 16 independent accumulators (vectorizes).
#[inline(always)]
pub fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + tail.iter().sum::<f32>()
}

/// Dot product of `a` and `b` (same length), vectorized like [`sum`].
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + ta.iter().zip(tb).map(|(x, y)| x * y).sum::<f32>()
}

/// Maximum of `x` (`-inf` when empty).
#[inline(always)]
pub fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] = acc[i].max(c[i]);
        }
    }
    acc.iter().chain(tail).fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

/// `e^x` for f32 without branches: range reduction to `2^n · e^r`, then a
/// degree-7 polynomial; relative error about 2e-7 on the clamped range
/// [-87, 88] (beyond it the result saturates near 0 or 1.6e38).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let exponent = (t.to_bits() as i32 - MAGIC.to_bits() as i32 + 127) << 23;
    p * f32::from_bits(exponent as u32)
}

#[allow(clippy::excessive_precision)]
/// Gauss error function, absolute error about 1e-7: a Taylor series in `x²`
/// below 1, Abramowitz & Stegun 7.1.26 above (both computed, then selected,
/// so the loop stays branch-free and vectorizes).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    // 2/√π · Σ (-1)^n x^(2n+1) / (n! (2n+1)), n = 0..=10: error < 2e-8 for |x| ≤ 1.
    let z = a * a;
    let series = a
        * (std::f32::consts::FRAC_2_SQRT_PI
            + z * (-0.376_126_4
                + z * (0.112_837_92
                    + z * (-0.026_866_17
                        + z * (0.005_223_977
                            + z * (-0.000_854_832_7
                                + z * (0.000_120_553_3
                                    + z * (-1.492_565_0e-5
                                        + z * (1.646_211_4e-6 + z * (-1.636_128_7e-7 + z * 1.480_719_3e-8))))))))));
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_7) * t - 0.284_496_74) * t + 0.254_829_6) * t;
    let tail = 1.0 - poly * exp(-z);
    let r = if a < 1.0 { series } else { tail };
    r.copysign(x)
}

/// Exact (erf-based) GELU: `x/2 · (1 + erf(x/√2))`.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// Hyperbolic tangent via `e^(-2|x|)`; absolute error about 2e-7.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let e = exp(-2.0 * x.abs().min(9.0));
    ((1.0 - e) / (1.0 + e)).copysign(x)
}

/// Logistic sigmoid.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn erf_reference(x: f64) -> f64 {
        // Maclaurin series, accurate for |x| < 3 in f64.
        let mut sum = 0.0;
        let mut term = x;
        for n in 0..200 {
            sum += term / (2 * n + 1) as f64;
            term *= -x * x / (n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn exp_is_accurate() {
        let mut x = -80.0f32;
        while x < 80.0 {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            assert!(((got - want) / want).abs() < 5e-7, "exp({x}) = {got}, want {want}");
            x += 0.37;
        }
    }

    #[test]
    fn erf_tanh_gelu_are_accurate() {
        let mut x = -2.9f32;
        while x < 2.9 {
            let want = erf_reference(x as f64);
            assert!((erf(x) as f64 - want).abs() < 3e-7, "erf({x}) = {} want {want}", erf(x));
            assert!((tanh(x) as f64 - (x as f64).tanh()).abs() < 3e-7, "tanh({x})");
            let g = 0.5 * x as f64 * (1.0 + erf_reference(x as f64 / 2f64.sqrt()));
            assert!((gelu(x) as f64 - g).abs() < 3e-7 * x.abs().max(1.0) as f64, "gelu({x})");
            x += 0.013;
        }
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(tanh(-20.0), -1.0);
    }

    #[test]
    fn reductions_cover_tails() {
        let v: Vec<f32> = (0..37).map(|i| i as f32).collect();
        assert_eq!(sum(&v), 666.0);
        assert_eq!(max(&v), 36.0);
        assert_eq!(dot(&v, &v), (0..37).map(|i| (i * i) as f32).sum::<f32>());
    }
}
