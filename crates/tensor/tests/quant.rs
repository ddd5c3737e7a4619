//! Quantized matrices: block formats against hand-computed bytes, every
//! product against an f64 reference on the dequantized weights, SIMD against
//! scalar kernels, and the 8-bit-activation path against its tolerance.

use bytes::Bytes;
use half::f16;
use ipfs_accelerate_tensor::quant::{Kernel, QuantMatrix, QuantType, Q8ACT_TOLERANCE};

const ALL: [QuantType; 7] =
    [QuantType::F32, QuantType::F16, QuantType::Q8_0, QuantType::Q4_0, QuantType::Q4_1, QuantType::Q4K, QuantType::Q6K];

/// Small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [-1, 1).
    fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn byte(&mut self) -> u8 {
        (self.next() >> 56) as u8
    }
}

fn h(v: f32) -> [u8; 2] {
    f16::from_f32(v).to_le_bytes()
}

/// A random matrix of `dtype`: random integers in every block with sane
/// f16 scales, so every nibble and bit pattern is exercised.
fn random_matrix(dtype: QuantType, rows: usize, cols: usize, seed: u64) -> QuantMatrix {
    let mut r = Rng(seed);
    if matches!(dtype, QuantType::F32 | QuantType::F16) {
        let v: Vec<f32> = (0..rows * cols).map(|_| r.f()).collect();
        return QuantMatrix::quantize(dtype, rows, cols, &v).unwrap();
    }
    let n_blocks = rows * cols / dtype.block_size();
    let mut data = Vec::with_capacity(n_blocks * dtype.block_bytes());
    for _ in 0..n_blocks {
        let mut b: Vec<u8> = (0..dtype.block_bytes()).map(|_| r.byte()).collect();
        let scale = 0.001 + 0.02 * r.f().abs();
        match dtype {
            QuantType::Q8_0 | QuantType::Q4_0 => b[..2].copy_from_slice(&h(scale)),
            QuantType::Q4_1 | QuantType::Q4K => {
                b[..2].copy_from_slice(&h(scale));
                let m = if dtype == QuantType::Q4_1 { 0.1 * r.f() } else { 0.01 * r.f().abs() };
                b[2..4].copy_from_slice(&h(m));
            }
            QuantType::Q6K => b[208..210].copy_from_slice(&h(scale * 0.05)),
            _ => unreachable!(),
        }
        data.extend(b);
    }
    QuantMatrix::new(dtype, rows, cols, Bytes::from(data)).unwrap()
}

fn random_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng(seed);
    (0..n).map(|_| r.f()).collect()
}

/// f64 reference `W x` on the dequantized weights, and per row the scale
/// `sum |x_i| * max |w_i|` that tolerances are relative to.
fn reference(w: &[f32], cols: usize, x: &[f32]) -> (Vec<f64>, Vec<f64>) {
    w.chunks_exact(cols)
        .map(|row| {
            let y = row.iter().zip(x).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum::<f64>();
            let wmax = row.iter().fold(0.0f64, |m, v| m.max(f64::from(v.abs())));
            (y, wmax * x.iter().map(|v| f64::from(v.abs())).sum::<f64>())
        })
        .unzip()
}

fn assert_close(what: &str, got: &[f32], want: &[f64], scale: &[f64], rel: f64) {
    for (i, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        let err = (f64::from(g) - w).abs();
        assert!(
            err <= rel * s + 1e-12,
            "{what}: output {i} is {g}, reference {w} (error {err:e}, allowed {:e})",
            rel * s
        );
    }
}

#[test]
fn type_metadata_matches_ggml() {
    let want = [
        (1, 4, "f32"),
        (1, 2, "f16"),
        (32, 34, "q8_0"),
        (32, 18, "q4_0"),
        (32, 20, "q4_1"),
        (256, 144, "q4_K"),
        (256, 210, "q6_K"),
    ];
    for (t, (bs, bb, name)) in ALL.iter().zip(want) {
        assert_eq!((t.block_size(), t.block_bytes(), t.name()), (bs, bb, name));
    }
}

#[test]
fn q8_0_quantizes_by_hand() {
    // max |x| = 127, so d = 1 and q = round(x) (half away from zero).
    let mut x = vec![0.0f32; 32];
    x[..6].copy_from_slice(&[127.0, -127.0, 0.4, 0.6, -2.5, 2.5]);
    let m = QuantMatrix::quantize(QuantType::Q8_0, 1, 32, &x).unwrap();
    let b = m.bytes();
    assert_eq!(&b[..2], &h(1.0));
    assert_eq!(&b[2..8], &[127u8, (-127i8) as u8, 0, 1, (-3i8) as u8, 3]);
    assert!(b[8..].iter().all(|&q| q == 0));
    let d = m.dequantize();
    assert_eq!(&d[..6], &[127.0, -127.0, 0.0, 1.0, -3.0, 3.0]);
}

#[test]
fn q4_0_quantizes_by_hand() {
    // The largest magnitude is -8, so d = -8 / -8 = 1 and q = min(15, trunc(x + 8.5)).
    let mut x: Vec<f32> = (0..16).map(|j| j as f32 - 8.0).collect(); // q = 0..15
    x.extend([0.4, 0.6, 7.6, -7.4].iter().chain([0.0; 12].iter()));
    let m = QuantMatrix::quantize(QuantType::Q4_0, 1, 32, &x).unwrap();
    let b = m.bytes();
    assert_eq!(&b[..2], &h(1.0));
    let hi = [8u8, 9, 15, 1];
    for j in 0..16 {
        let want_hi = if j < 4 { hi[j] } else { 8 };
        assert_eq!(b[2 + j], j as u8 | (want_hi << 4), "byte {j}");
    }
    let d = m.dequantize();
    assert_eq!(&d[..16], &x[..16]);
    assert_eq!(&d[16..20], &[0.0, 1.0, 7.0, -7.0]);
}

#[test]
fn q4_1_quantizes_by_hand() {
    // min = -1, max = 14: d = 1, m = -1, q = min(15, trunc(x + 1 + 0.5)).
    let mut x: Vec<f32> = (0..16).map(|j| j as f32 - 1.0).collect(); // q = 0..15
    x.extend([0.4, 0.6, 13.2, -0.9].iter().chain([0.0; 12].iter()));
    let m = QuantMatrix::quantize(QuantType::Q4_1, 1, 32, &x).unwrap();
    let b = m.bytes();
    assert_eq!((&b[..2], &b[2..4]), (&h(1.0)[..], &h(-1.0)[..]));
    let hi = [1u8, 2, 14, 0];
    for j in 0..16 {
        let want_hi = if j < 4 { hi[j] } else { 1 };
        assert_eq!(b[4 + j], j as u8 | (want_hi << 4), "byte {j}");
    }
    let d = m.dequantize();
    assert_eq!(&d[..16], &x[..16]);
    assert_eq!(&d[16..20], &[0.0, 1.0, 13.0, -1.0]);
}

#[test]
fn f16_and_f32_round_trip() {
    let x = random_vec(64, 7);
    let m = QuantMatrix::quantize(QuantType::F32, 2, 32, &x).unwrap();
    assert_eq!(m.dequantize(), x);
    let m = QuantMatrix::quantize(QuantType::F16, 2, 32, &x).unwrap();
    let want: Vec<f32> = x.iter().map(|&v| f16::from_f32(v).to_f32()).collect();
    assert_eq!(m.dequantize(), want);
}

#[test]
fn quantize_round_trip_error_is_within_half_a_step() {
    let x = random_vec(8 * 64, 11);
    for (t, steps) in [(QuantType::Q8_0, 127.0f32), (QuantType::Q4_0, 8.0), (QuantType::Q4_1, 15.0)] {
        let d = QuantMatrix::quantize(t, 8, 64, &x).unwrap().dequantize();
        for (b, (xb, db)) in x.chunks(32).zip(d.chunks(32)).enumerate() {
            let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let range = if t == QuantType::Q4_1 { 2.0 * amax } else { amax };
            // Half a step, plus the scale's own f16 rounding over the whole
            // range; Q4_0 clamps the extreme opposite its largest magnitude
            // (q = 16 -> 15), a whole step.
            let half = if t == QuantType::Q4_0 { 1.0 } else { 0.5 };
            let allowed = range / steps * half + amax * 2e-3;
            for (v, w) in xb.iter().zip(db) {
                assert!((v - w).abs() <= allowed, "{t} block {b}: {v} came back as {w}");
            }
        }
    }
}

/// Packs 8 (scale, min) pairs of 6 bits the way Q4_K's `get_scale_min_k4` unpacks them.
fn pack_q4k_scales(sc: [u8; 8], mn: [u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..4 {
        s[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        s[j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
        s[j + 8] = (sc[j + 4] & 0x0f) | ((mn[j + 4] & 0x0f) << 4);
    }
    s
}

#[test]
fn q4_k_block_by_hand() {
    let sc = [1u8, 2, 3, 4, 33, 47, 60, 63];
    let mn = [0u8, 5, 10, 15, 20, 41, 52, 63];
    let (d, dmin) = (0.5f32, 0.25f32);
    let mut b = Vec::new();
    b.extend(h(d));
    b.extend(h(dmin));
    b.extend(pack_q4k_scales(sc, mn));
    // Value v of sub-block s has q = (v + s) % 16; sub-blocks 2g and 2g+1 share bytes 32g..32g+32.
    for g in 0..4 {
        for l in 0..32 {
            let lo = (l + 2 * g) % 16;
            let hi = (l + 2 * g + 1) % 16;
            b.push((lo | (hi << 4)) as u8);
        }
    }
    let m = QuantMatrix::new(QuantType::Q4K, 1, 256, Bytes::from(b)).unwrap();
    let got = m.dequantize();
    for s in 0..8 {
        for l in 0..32 {
            let q = ((l + s) % 16) as f32;
            let want = d * f32::from(sc[s]) * q - dmin * f32::from(mn[s]);
            assert_eq!(got[s * 32 + l], want, "sub-block {s} value {l}");
        }
    }
}

#[test]
fn q6_k_block_by_hand() {
    // Value v gets the 6-bit q = (7 v) % 64 and scale (v / 16) * 9 - 70.
    let q: Vec<u8> = (0..256).map(|v| (7 * v % 64) as u8).collect();
    let sc: Vec<i8> = (0..16).map(|i| (i * 9 - 70) as i8).collect();
    let d = 0.125f32;
    let (mut ql, mut qh) = (vec![0u8; 128], vec![0u8; 64]);
    for half in 0..2 {
        for l in 0..32 {
            let at = |k: usize| q[half * 128 + k * 32 + l];
            ql[half * 64 + l] = (at(0) & 15) | ((at(2) & 15) << 4);
            ql[half * 64 + l + 32] = (at(1) & 15) | ((at(3) & 15) << 4);
            qh[half * 32 + l] = (at(0) >> 4) | ((at(1) >> 4) << 2) | ((at(2) >> 4) << 4) | ((at(3) >> 4) << 6);
        }
    }
    let mut b = ql;
    b.extend(qh);
    b.extend(sc.iter().map(|&s| s as u8));
    b.extend(h(d));
    let m = QuantMatrix::new(QuantType::Q6K, 1, 256, Bytes::from(b)).unwrap();
    let got = m.dequantize();
    for v in 0..256 {
        let want = d * f32::from(sc[v / 16]) * (f32::from(q[v]) - 32.0);
        assert_eq!(got[v], want, "value {v}");
    }
}

#[test]
fn new_rejects_bad_shapes_and_lengths() {
    for t in ALL {
        let (bs, bb) = (t.block_size(), t.block_bytes());
        let ok = 3 * 2 * bb;
        assert!(QuantMatrix::new(t, 3, 2 * bs, Bytes::from(vec![0u8; ok])).is_ok());
        for len in [ok - 1, ok + 1, 0] {
            let e = QuantMatrix::new(t, 3, 2 * bs, Bytes::from(vec![0u8; len])).unwrap_err();
            assert!(e.to_string().contains("bytes"), "{t}: {e}");
        }
        if bs > 1 {
            let e = QuantMatrix::new(t, 3, bs + 1, Bytes::from(vec![0u8; ok])).unwrap_err();
            assert!(e.to_string().contains("multiple"), "{t}: {e}");
        }
    }
    assert!(QuantMatrix::quantize(QuantType::Q8_0, 2, 32, &[0.0; 63]).is_err());
    assert!(QuantMatrix::quantize(QuantType::Q4K, 1, 256, &[0.0; 256]).is_err());
}

#[test]
fn row_f32_matches_dequantize() {
    for t in ALL {
        let cols = 2 * t.block_size().max(32);
        let m = random_matrix(t, 5, cols, 3);
        let all = m.dequantize();
        let mut row = vec![0.0; cols];
        for r in 0..5 {
            for kernel in [Kernel::Auto, Kernel::Avx2, Kernel::Scalar] {
                m.row_f32_with(r, &mut row, kernel);
                // Every kernel dequantizes to the same bits as the reference.
                assert_eq!(row, all[r * cols..(r + 1) * cols], "{t} row {r} {kernel:?}");
            }
        }
    }
}

/// Shapes: odd row counts, rows that are not a multiple of the parallel
/// chunk (32 KiB of weights), several blocks per row.
fn shapes(t: QuantType) -> Vec<(usize, usize)> {
    let bs = t.block_size().max(32);
    vec![(1, bs), (7, 3 * bs), (301, 2 * bs.max(256)), (1000, 96.max(bs))]
}

#[test]
fn matvec_matches_f64_reference_on_every_kernel() {
    for t in ALL {
        for (rows, cols) in shapes(t) {
            let m = random_matrix(t, rows, cols, rows as u64 * 31 + cols as u64);
            let x = random_vec(cols, 5);
            let (want, scale) = reference(&m.dequantize(), cols, &x);
            for kernel in [Kernel::Auto, Kernel::Avx2, Kernel::Scalar] {
                let mut y = vec![f32::NAN; rows];
                m.matvec_with(&x, &mut y, kernel);
                assert_close(&format!("{t} {rows}x{cols} {kernel:?}"), &y, &want, &scale, 1e-5);
            }
        }
    }
}

#[test]
fn simd_and_scalar_kernels_agree() {
    for t in ALL {
        let (rows, cols) = (77, 4 * t.block_size().max(64));
        let m = random_matrix(t, rows, cols, 99);
        let x = random_vec(cols, 8);
        let (_, scale) = reference(&m.dequantize(), cols, &x);
        let mut b = vec![0.0; rows];
        m.matvec_with(&x, &mut b, Kernel::Scalar);
        let exact: Vec<f64> = b.iter().map(|&v| f64::from(v)).collect();
        m.matvec_q8act_with(&x, &mut b, Kernel::Scalar);
        let q8: Vec<f64> = b.iter().map(|&v| f64::from(v)).collect();
        for kernel in [Kernel::Auto, Kernel::Avx2] {
            let mut a = vec![0.0; rows];
            m.matvec_with(&x, &mut a, kernel);
            assert_close(&format!("{t} {kernel:?} vs scalar"), &a, &exact, &scale, 2e-6);
            m.matvec_q8act_with(&x, &mut a, kernel);
            assert_close(&format!("{t} q8act {kernel:?} vs scalar"), &a, &q8, &scale, 2e-6);
        }
    }
}

#[test]
fn matmul_matches_f64_reference() {
    for t in ALL {
        for (rows, cols) in shapes(t) {
            let m = random_matrix(t, rows, cols, rows as u64 + 17);
            let w = m.dequantize();
            for n in [1, 3, 5, 33] {
                let x = random_vec(n * cols, n as u64);
                for kernel in [Kernel::Auto, Kernel::Avx2, Kernel::Scalar] {
                    let mut y = vec![f32::NAN; n * rows];
                    m.matmul_with(&x, n, &mut y, kernel);
                    for tok in 0..n {
                        let (want, scale) = reference(&w, cols, &x[tok * cols..(tok + 1) * cols]);
                        let what = format!("{t} {rows}x{cols} n={n} token {tok} {kernel:?}");
                        assert_close(&what, &y[tok * rows..(tok + 1) * rows], &want, &scale, 1e-5);
                    }
                }
            }
        }
    }
}

#[test]
fn q8act_is_within_its_tolerance() {
    for t in ALL {
        for (rows, cols) in shapes(t) {
            let m = random_matrix(t, rows, cols, 1234);
            let x = random_vec(cols, 4321);
            let w = m.dequantize();
            let want: Vec<f64> = w
                .chunks_exact(cols)
                .map(|r| r.iter().zip(&x).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum())
                .collect();
            let scale: Vec<f64> =
                w.chunks_exact(cols).map(|r| r.iter().zip(&x).map(|(&a, &b)| f64::from((a * b).abs())).sum()).collect();
            for kernel in [Kernel::Auto, Kernel::Avx2, Kernel::Scalar] {
                let mut y = vec![f32::NAN; rows];
                m.matvec_q8act_with(&x, &mut y, kernel);
                assert_close(&format!("{t} q8act {rows}x{cols}"), &y, &want, &scale, f64::from(Q8ACT_TOLERANCE));
            }
        }
    }
}

#[test]
fn zero_sized_matrices_are_fine() {
    let m = QuantMatrix::new(QuantType::Q8_0, 0, 64, Bytes::new()).unwrap();
    m.matvec(&[0.0; 64], &mut []);
    let m = QuantMatrix::new(QuantType::Q4_1, 3, 0, Bytes::new()).unwrap();
    let mut y = [1.0; 3];
    m.matvec(&[], &mut y);
    assert_eq!(y, [0.0; 3]);
    let mut y = [1.0; 6];
    m.matmul(&[], 2, &mut y);
    assert_eq!(y, [0.0; 6]);
}
