//! x86_64 SIMD kernels, chosen at run time: AVX2 + FMA + F16C for f32
//! activations, and for 8-bit activations AVX2 `maddubs` or, where the CPU
//! has it, AVX-512 VNNI `dpbusd` on 256-bit vectors.
//!
//! Every kernel computes what its scalar twin in `scalar.rs` / `q8act.rs`
//! computes, with the same per-block factoring; only the order of additions
//! differs (8 lanes, then a horizontal sum).

use super::blocks::QK;
use super::q8act::{Q8Act, RowDotQ8};
use super::scalar::{kquant_row, RowDot};
use super::QuantType;
use std::arch::x86_64::*;
use std::sync::OnceLock;

/// What this CPU supports, detected once.
#[derive(Clone, Copy)]
struct Features {
    /// AVX2, FMA and F16C: the f32-activation kernels and `maddubs`.
    avx2: bool,
    /// AVX-512 F: 16-lane f32-activation kernels for the 32-blocks.
    avx512: bool,
    /// AVX-512 VNNI with VL: `dpbusd` on 256-bit vectors.
    vnni: bool,
}

fn features(allow_avx512: bool) -> Features {
    static F: OnceLock<Features> = OnceLock::new();
    let f = *F.get_or_init(|| {
        let avx2 =
            is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c");
        let avx512 = avx2 && is_x86_feature_detected!("avx512f");
        let vnni = avx512 && is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl");
        Features { avx2, avx512, vnni }
    });
    Features { avx512: f.avx512 && allow_avx512, vnni: f.vnni && allow_avx512, ..f }
}

/// The SIMD f32-activation kernel for `dtype`, if this CPU has one; AVX-512
/// kernels only if `allow_avx512`.
pub(crate) fn row_dot(dtype: QuantType, allow_avx512: bool) -> Option<RowDot> {
    let f = features(allow_avx512);
    if !f.avx2 {
        return None;
    }
    // SAFETY (all wrappers below): they are returned only here, after the
    // features they enable were detected, and the row driver passes whole
    // rows with `x.len() == cols` (each kernel re-checks the lengths it reads).
    Some(match (dtype, f.avx512) {
        (QuantType::F32, _) => |r, x, _| unsafe { f32_row(r, x) },
        (QuantType::F16, _) => |r, x, _| unsafe { f16_row(r, x) },
        (QuantType::Q8_0, false) => |r, x, _| unsafe { q8_0_row(r, x) },
        (QuantType::Q8_0, true) => |r, x, _| unsafe { q8_0_row_512(r, x) },
        (QuantType::Q4_0, false) => |r, x, _| unsafe { q4_row::<false>(r, x, &[]) },
        (QuantType::Q4_0, true) => |r, x, _| unsafe { q4_row_512::<false>(r, x, &[]) },
        (QuantType::Q4_1, false) => |r, x, xs| unsafe { q4_row::<true>(r, x, xs) },
        (QuantType::Q4_1, true) => |r, x, xs| unsafe { q4_row_512::<true>(r, x, xs) },
        (QuantType::Q4K, _) => |r, x, _| kquant_row(QuantType::Q4K, r, x, |a, b| unsafe { dot_f32(a, b) }),
        (QuantType::Q6K, _) => |r, x, _| kquant_row(QuantType::Q6K, r, x, |a, b| unsafe { dot_f32(a, b) }),
    })
}

/// The SIMD 8-bit-activation kernel for `dtype`, if this CPU has one; VNNI
/// kernels only if `allow_avx512`.
pub(crate) fn row_dot_q8(dtype: QuantType, allow_avx512: bool) -> Option<RowDotQ8> {
    let f = features(allow_avx512);
    if !f.avx2 {
        return None;
    }
    // SAFETY: as in `row_dot`.
    Some(match (dtype, f.vnni) {
        (QuantType::Q8_0, false) => |r, a| unsafe { q8_0_q8(r, a) },
        (QuantType::Q8_0, true) => |r, a| unsafe { q8_0_q8_vnni(r, a) },
        (QuantType::Q4_0, false) => |r, a| unsafe { q4_q8::<false>(r, a) },
        (QuantType::Q4_0, true) => |r, a| unsafe { q4_q8_vnni::<false>(r, a) },
        (QuantType::Q4_1, false) => |r, a| unsafe { q4_q8::<true>(r, a) },
        (QuantType::Q4_1, true) => |r, a| unsafe { q4_q8_vnni::<true>(r, a) },
        _ => return None,
    })
}

/// Sum of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// A block loop's running sums: 8 lanes of scaled block sums, and lane 1 of
/// a second vector for per-block terms (Q4_1's min, Q4_0's offset).
type Acc = (__m256, __m128);

/// Runs `step(b, acc)` for blocks `0..nb`, alternating two accumulators so a
/// block's FMA never waits for the previous block's (4 cycles of latency,
/// more than an 8-bit block's whole body), and returns their total.
#[inline(always)]
unsafe fn blocks2(nb: usize, mut step: impl FnMut(usize, Acc) -> Acc) -> f32 {
    let zero = (_mm256_setzero_ps(), _mm_setzero_ps());
    let (mut a0, mut a1) = (zero, zero);
    let mut b = 0;
    while b + 2 <= nb {
        a0 = step(b, a0);
        a1 = step(b + 1, a1);
        b += 2;
    }
    if b < nb {
        a0 = step(b, a0);
    }
    let extra = _mm_add_ps(a0.1, a1.1);
    hsum(_mm256_add_ps(a0.0, a1.0)) + _mm_cvtss_f32(_mm_movehdup_ps(extra))
}

/// The two little-endian f16 at `p` (a Q4_1 block's `d`, `m`) in lanes 0, 1.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn f16_pair(p: *const u8) -> __m128 {
    // A zero-extending 32-bit load: no merge into a live register (see `f16_scalar`).
    _mm_cvtph_ps(_mm_cvtsi32_si128(p.cast::<i32>().read_unaligned()))
}

/// The little-endian f16 at `p`, broadcast to 8 f32 lanes.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn f16_splat(p: *const u8) -> __m256 {
    _mm256_cvtph_ps(_mm_set1_epi16(p.cast::<i16>().read_unaligned()))
}

/// The little-endian f16 at `p` as a scalar.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn f16_scalar(p: *const u8) -> f32 {
    // A broadcast, not `_mm_cvtsi32_si128`: LLVM lowers that to an insert
    // into whatever register is free, often the running accumulator, which
    // chains every block's scale onto the previous block's sum.
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_set1_epi16(p.cast::<i16>().read_unaligned())))
}

/// f32 dot product, 4 independent accumulators of 8 lanes.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, s) in acc.iter_mut().enumerate() {
            *s = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 8 * k)), _mm256_loadu_ps(pb.add(i + 8 * k)), *s);
        }
        i += 32;
    }
    while i + 8 <= n {
        acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc[0]);
        i += 8;
    }
    let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    hsum(v) + a[i..n].iter().zip(&b[i..n]).map(|(p, q)| p * q).sum::<f32>()
}

#[target_feature(enable = "avx2,fma")]
unsafe fn f32_row(row: &[u8], x: &[f32]) -> f32 {
    let n = (row.len() / 4).min(x.len());
    // The row may sit at any byte offset of the file, so read it unaligned.
    let (pw, px) = (row.as_ptr().cast::<f32>(), x.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, s) in acc.iter_mut().enumerate() {
            *s = _mm256_fmadd_ps(_mm256_loadu_ps(pw.add(i + 8 * k)), _mm256_loadu_ps(px.add(i + 8 * k)), *s);
        }
        i += 32;
    }
    while i + 8 <= n {
        acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(pw.add(i)), _mm256_loadu_ps(px.add(i)), acc[0]);
        i += 8;
    }
    let mut tail = 0.0;
    while i < n {
        tail += pw.add(i).read_unaligned() * x[i];
        i += 1;
    }
    hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]))) + tail
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_row(row: &[u8], x: &[f32]) -> f32 {
    let n = (row.len() / 2).min(x.len());
    let (pw, px) = (row.as_ptr(), x.as_ptr());
    let w8 = |i: usize| _mm256_cvtph_ps(_mm_loadu_si128(pw.add(2 * i).cast()));
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, s) in acc.iter_mut().enumerate() {
            *s = _mm256_fmadd_ps(w8(i + 8 * k), _mm256_loadu_ps(px.add(i + 8 * k)), *s);
        }
        i += 32;
    }
    while i + 8 <= n {
        acc[0] = _mm256_fmadd_ps(w8(i), _mm256_loadu_ps(px.add(i)), acc[0]);
        i += 8;
    }
    let mut tail = 0.0;
    while i < n {
        tail += f16_scalar(pw.add(2 * i)) * x[i];
        i += 1;
    }
    hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]))) + tail
}

/// 8 signed bytes at `p` as 8 f32.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn i8x8_ps(p: *const u8) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p.cast())))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_row(row: &[u8], x: &[f32]) -> f32 {
    let nb = row.len() / 34;
    assert!(x.len() >= nb * QK);
    let (pw, px) = (row.as_ptr(), x.as_ptr());
    blocks2(nb, |b, (total, e)| {
        let (w, xb) = (pw.add(34 * b), px.add(QK * b));
        let mut s0 = _mm256_mul_ps(i8x8_ps(w.add(2)), _mm256_loadu_ps(xb));
        let mut s1 = _mm256_mul_ps(i8x8_ps(w.add(10)), _mm256_loadu_ps(xb.add(8)));
        s0 = _mm256_fmadd_ps(i8x8_ps(w.add(18)), _mm256_loadu_ps(xb.add(16)), s0);
        s1 = _mm256_fmadd_ps(i8x8_ps(w.add(26)), _mm256_loadu_ps(xb.add(24)), s1);
        (_mm256_fmadd_ps(_mm256_add_ps(s0, s1), f16_splat(w), total), e)
    })
}

/// Q4_0 (`MIN = false`: d·(q − 8)) and Q4_1 (`MIN = true`: d·q + m, the min
/// applied as m · xs[block]).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_row<const MIN: bool>(row: &[u8], x: &[f32], xs: &[f32]) -> f32 {
    let bb = if MIN { 20 } else { 18 };
    let nb = row.len() / bb;
    assert!(x.len() >= nb * QK && (!MIN || xs.len() >= nb));
    let (pw, px) = (row.as_ptr(), x.as_ptr());
    let mask = _mm_set1_epi8(0x0f);
    let eight = _mm_set1_epi8(8);
    let cvt = |v: __m128i| {
        if MIN {
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v))
        } else {
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v))
        }
    };
    blocks2(nb, |b, (total, mins)| {
        let (w, xb) = (pw.add(bb * b), px.add(QK * b));
        let v = _mm_loadu_si128(w.add(bb - 16).cast());
        // Low nibbles are values 0..16 of the block, high nibbles 16..32.
        let mut lo = _mm_and_si128(v, mask);
        let mut hi = _mm_and_si128(_mm_srli_epi16::<4>(v), mask);
        if !MIN {
            lo = _mm_sub_epi8(lo, eight);
            hi = _mm_sub_epi8(hi, eight);
        }
        let mut s0 = _mm256_mul_ps(cvt(lo), _mm256_loadu_ps(xb));
        let mut s1 = _mm256_mul_ps(cvt(_mm_srli_si128::<8>(lo)), _mm256_loadu_ps(xb.add(8)));
        s0 = _mm256_fmadd_ps(cvt(hi), _mm256_loadu_ps(xb.add(16)), s0);
        s1 = _mm256_fmadd_ps(cvt(_mm_srli_si128::<8>(hi)), _mm256_loadu_ps(xb.add(24)), s1);
        if MIN {
            // [d, m] · xs: lane 1 is the min's term m · sum(x).
            let dm = f16_pair(w);
            let total = _mm256_fmadd_ps(_mm256_add_ps(s0, s1), _mm256_broadcastss_ps(dm), total);
            (total, _mm_fmadd_ps(dm, _mm_set1_ps(*xs.get_unchecked(b)), mins))
        } else {
            (_mm256_fmadd_ps(_mm256_add_ps(s0, s1), f16_splat(w), total), mins)
        }
    })
}

/// The 32 nibbles of a Q4 block at `p` as 32 bytes 0..15, in value order.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn nibbles(p: *const u8) -> __m256i {
    let v = _mm_loadu_si128(p.cast());
    _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16::<4>(v), v), _mm256_set1_epi8(0x0f))
}

/// Σ u·s over each group of 4 bytes (u unsigned, s signed) with AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn dot_u8i8(u: __m256i, s: __m256i) -> __m256i {
    // maddubs sums pairs into i16 (no saturation: |u·s| ≤ 128·127 twice fits),
    // madd with ones sums pairs of those into i32.
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// Σ u·s over each group of 4 bytes with AVX-512 VNNI.
#[inline]
#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
unsafe fn dot_u8i8_vnni(u: __m256i, s: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_q8_body(row: &[u8], a: &Q8Act, dot: impl Fn(__m256i, __m256i) -> __m256i) -> f32 {
    let nb = row.len() / 34;
    assert!(a.q.len() >= nb * QK && a.d.len() >= nb);
    let (pw, pq) = (row.as_ptr(), a.q.as_ptr());
    blocks2(nb, |b, (total, e)| {
        let w = _mm256_loadu_si256(pw.add(34 * b + 2).cast());
        let q = _mm256_loadu_si256(pq.add(QK * b).cast());
        // Signed × signed via unsigned × signed: |w| · (q with w's sign).
        let i = dot(_mm256_sign_epi8(w, w), _mm256_sign_epi8(q, w));
        let s = _mm256_mul_ps(f16_splat(pw.add(34 * b)), _mm256_set1_ps(*a.d.get_unchecked(b)));
        (_mm256_fmadd_ps(_mm256_cvtepi32_ps(i), s, total), e)
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_q8(row: &[u8], a: &Q8Act) -> f32 {
    q8_0_q8_body(row, a, |u, s| dot_u8i8(u, s))
}

#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
unsafe fn q8_0_q8_vnni(row: &[u8], a: &Q8Act) -> f32 {
    q8_0_q8_body(row, a, |u, s| dot_u8i8_vnni(u, s))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_q8_body<const MIN: bool>(row: &[u8], a: &Q8Act, dot: impl Fn(__m256i, __m256i) -> __m256i) -> f32 {
    let bb = if MIN { 20 } else { 18 };
    let nb = row.len() / bb;
    assert!(a.q.len() >= nb * QK && a.pair_q4_0.len() >= nb && a.pair_q4_1.len() >= nb);
    let (pw, pq) = (row.as_ptr(), a.q.as_ptr());
    blocks2(nb, |b, (total, extra)| {
        let w = pw.add(bb * b);
        let i = dot(nibbles(w.add(bb - 16)), _mm256_loadu_si256(pq.add(QK * b).cast()));
        // [d_w, d_w or m] · [d_x, offset or sum(x)]: lane 0 scales the
        // integer sum, lane 1 is the block's extra term.
        let (ws, pair) = if MIN {
            (f16_pair(w), a.pair_q4_1.as_ptr().add(b))
        } else {
            (_mm256_castps256_ps128(f16_splat(w)), a.pair_q4_0.as_ptr().add(b))
        };
        let p = _mm_mul_ps(ws, _mm_castpd_ps(_mm_load_sd(pair.cast())));
        let total = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_broadcastss_ps(p), total);
        (total, _mm_add_ps(extra, p))
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_q8<const MIN: bool>(row: &[u8], a: &Q8Act) -> f32 {
    q4_q8_body::<MIN>(row, a, |u, s| dot_u8i8(u, s))
}

#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
unsafe fn q4_q8_vnni<const MIN: bool>(row: &[u8], a: &Q8Act) -> f32 {
    q4_q8_body::<MIN>(row, a, |u, s| dot_u8i8_vnni(u, s))
}

/// [`blocks2`] for 16-lane accumulators.
#[inline(always)]
unsafe fn blocks2_512(nb: usize, mut step: impl FnMut(usize, (__m512, __m128)) -> (__m512, __m128)) -> f32 {
    let zero = (_mm512_setzero_ps(), _mm_setzero_ps());
    let (mut a0, mut a1) = (zero, zero);
    let mut b = 0;
    while b + 2 <= nb {
        a0 = step(b, a0);
        a1 = step(b + 1, a1);
        b += 2;
    }
    if b < nb {
        a0 = step(b, a0);
    }
    let extra = _mm_add_ps(a0.1, a1.1);
    _mm512_reduce_add_ps(_mm512_add_ps(a0.0, a1.0)) + _mm_cvtss_f32(_mm_movehdup_ps(extra))
}

/// [`q8_0_row`] on 16 lanes: a block is two halves of 16.
#[target_feature(enable = "avx2,fma,f16c,avx512f")]
unsafe fn q8_0_row_512(row: &[u8], x: &[f32]) -> f32 {
    let nb = row.len() / 34;
    assert!(x.len() >= nb * QK);
    let (pw, px) = (row.as_ptr(), x.as_ptr());
    let w16 = |p: *const u8| _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p.cast())));
    blocks2_512(nb, |b, (total, e)| {
        let (w, xb) = (pw.add(34 * b), px.add(QK * b));
        let s = _mm512_mul_ps(w16(w.add(2)), _mm512_loadu_ps(xb));
        let s = _mm512_fmadd_ps(w16(w.add(18)), _mm512_loadu_ps(xb.add(16)), s);
        (_mm512_fmadd_ps(s, _mm512_cvtph_ps(_mm256_set1_epi16(w.cast::<i16>().read_unaligned())), total), e)
    })
}

/// [`q4_row`] on 16 lanes: the low nibbles are the block's first 16 values,
/// the high nibbles its last 16.
#[target_feature(enable = "avx2,fma,f16c,avx512f")]
unsafe fn q4_row_512<const MIN: bool>(row: &[u8], x: &[f32], xs: &[f32]) -> f32 {
    let bb = if MIN { 20 } else { 18 };
    let nb = row.len() / bb;
    assert!(x.len() >= nb * QK && (!MIN || xs.len() >= nb));
    let (pw, px) = (row.as_ptr(), x.as_ptr());
    let mask = _mm_set1_epi8(0x0f);
    let eight = _mm_set1_epi8(8);
    let cvt = |v: __m128i| {
        if MIN {
            _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v))
        } else {
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_sub_epi8(v, eight)))
        }
    };
    blocks2_512(nb, |b, (total, mins)| {
        let (w, xb) = (pw.add(bb * b), px.add(QK * b));
        let v = _mm_loadu_si128(w.add(bb - 16).cast());
        let lo = cvt(_mm_and_si128(v, mask));
        let hi = cvt(_mm_and_si128(_mm_srli_epi16::<4>(v), mask));
        let s = _mm512_fmadd_ps(hi, _mm512_loadu_ps(xb.add(16)), _mm512_mul_ps(lo, _mm512_loadu_ps(xb)));
        if MIN {
            let dm = f16_pair(w);
            let total = _mm512_fmadd_ps(s, _mm512_broadcastss_ps(dm), total);
            (total, _mm_fmadd_ps(dm, _mm_set1_ps(*xs.get_unchecked(b)), mins))
        } else {
            let d = _mm512_cvtph_ps(_mm256_set1_epi16(w.cast::<i16>().read_unaligned()));
            (_mm512_fmadd_ps(s, d, total), mins)
        }
    })
}

/// Dequantizes one row into `out`.
pub(crate) type DequantRow = fn(row: &[u8], out: &mut [f32]);

/// The SIMD row dequantizer for `dtype`, if this CPU has one: bit-identical
/// to `blocks::dequant_row` (same f32 operations, no FMA contraction).
pub(crate) fn dequant_row(dtype: QuantType) -> Option<DequantRow> {
    if !features(false).avx2 {
        return None;
    }
    // SAFETY: returned only after AVX2, FMA and F16C were detected; each
    // kernel bounds its reads by `row.len()` and its writes by `out.len()`.
    Some(match dtype {
        QuantType::F16 => |r, o| unsafe { dequant_f16(r, o) },
        QuantType::Q8_0 => |r, o| unsafe { dequant_q8_0(r, o) },
        QuantType::Q4_0 => |r, o| unsafe { dequant_q4::<false>(r, o) },
        QuantType::Q4_1 => |r, o| unsafe { dequant_q4::<true>(r, o) },
        _ => return None,
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dequant_f16(row: &[u8], out: &mut [f32]) {
    let n = (row.len() / 2).min(out.len());
    let (pw, po) = (row.as_ptr(), out.as_mut_ptr());
    let mut i = 0;
    while i + 8 <= n {
        _mm256_storeu_ps(po.add(i), _mm256_cvtph_ps(_mm_loadu_si128(pw.add(2 * i).cast())));
        i += 8;
    }
    while i < n {
        out[i] = f16_scalar(pw.add(2 * i));
        i += 1;
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dequant_q8_0(row: &[u8], out: &mut [f32]) {
    let nb = (row.len() / 34).min(out.len() / QK);
    let (pw, po) = (row.as_ptr(), out.as_mut_ptr());
    for b in 0..nb {
        let (w, o) = (pw.add(34 * b), po.add(QK * b));
        let d = f16_splat(w);
        for k in 0..4 {
            _mm256_storeu_ps(o.add(8 * k), _mm256_mul_ps(i8x8_ps(w.add(2 + 8 * k)), d));
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dequant_q4<const MIN: bool>(row: &[u8], out: &mut [f32]) {
    let bb = if MIN { 20 } else { 18 };
    let nb = (row.len() / bb).min(out.len() / QK);
    let (pw, po) = (row.as_ptr(), out.as_mut_ptr());
    let mask = _mm_set1_epi8(0x0f);
    let eight = _mm_set1_epi8(8);
    for b in 0..nb {
        let (w, o) = (pw.add(bb * b), po.add(QK * b));
        let d = f16_splat(w);
        let m = if MIN { f16_splat(w.add(2)) } else { _mm256_setzero_ps() };
        let v = _mm_loadu_si128(w.add(bb - 16).cast());
        let (mut lo, mut hi) = (_mm_and_si128(v, mask), _mm_and_si128(_mm_srli_epi16::<4>(v), mask));
        if !MIN {
            lo = _mm_sub_epi8(lo, eight);
            hi = _mm_sub_epi8(hi, eight);
        }
        for (k, part) in [lo, _mm_srli_si128::<8>(lo), hi, _mm_srli_si128::<8>(hi)].into_iter().enumerate() {
            // Values are exact small integers, so converting via i8 or u8 is the same.
            let q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(part));
            let y = if MIN { _mm256_add_ps(_mm256_mul_ps(q, d), m) } else { _mm256_mul_ps(q, d) };
            _mm256_storeu_ps(o.add(8 * k), y);
        }
    }
}
