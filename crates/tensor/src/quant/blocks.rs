//! GGML block layouts and the scalar dequantizer of one row.
//!
//! Every value is computed exactly as ggml's `dequantize_row_*` (and gguf-py,
//! which transformers uses) computes it, in f32 with scales read from f16, so
//! a weight dequantized here is bit-identical to the one transformers sees.

use super::QuantType;
use half::f16;

/// Values per block of the 32-wide formats (Q8_0, Q4_0, Q4_1).
pub(crate) const QK: usize = 32;
/// Values per K-quant super-block (Q4_K, Q6_K).
pub(crate) const QK_K: usize = 256;

/// The f16 stored little-endian at `b[i..i + 2]`, as f32.
#[inline(always)]
pub(crate) fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// The 6-bit scale and min of sub-block `j` (0..8) of a Q4_K super-block,
/// unpacked from its 12 packed scale bytes (ggml's `get_scale_min_k4`).
#[inline(always)]
pub(crate) fn q4k_scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

/// One K-quant super-block split into integer quants and f32 per-group
/// scales (and mins): the form the GPU repacks into aligned blocks, and the
/// one the scalar dequantizers below multiply out.
#[derive(Clone, Debug, PartialEq)]
pub struct KQuantParts {
    /// The 256 quants in value order: Q4_K's 0..=15, Q6_K's -32..=31.
    pub quants: [i8; QK_K],
    /// Per group (Q4_K: the first 8, groups of 32; Q6_K: 16 groups of 16),
    /// the f32 factor of the quants: `d * scale`.
    pub scales: [f32; 16],
    /// Per group of 32, what Q4_K subtracts (`dmin * min`); zeros for Q6_K.
    pub mins: [f32; 8],
}

/// Splits one Q4_K super-block (144 bytes: f16 d, f16 dmin, 12 scale bytes,
/// 128 nibble bytes). Each 64-value group uses 32 bytes: low nibbles are its
/// first 32 values, high nibbles the next 32; value = scales[g]*q - mins[g].
pub fn q4k_parts(b: &[u8]) -> KQuantParts {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let scale_bytes = &b[4..16];
    let qs = &b[16..144];
    let mut parts = KQuantParts { quants: [0; QK_K], scales: [0.0; 16], mins: [0.0; 8] };
    for j in 0..8 {
        let (sc, m) = q4k_scale_min(j, scale_bytes);
        parts.scales[j] = d * f32::from(sc);
        parts.mins[j] = dmin * f32::from(m);
    }
    for g in 0..4 {
        for (l, &q) in qs[g * 32..g * 32 + 32].iter().enumerate() {
            parts.quants[g * 64 + l] = (q & 0x0f) as i8;
            parts.quants[g * 64 + 32 + l] = (q >> 4) as i8;
        }
    }
    parts
}

/// Splits one Q6_K super-block (210 bytes: 128 bytes low nibbles `ql`, 64
/// bytes high 2-bit pairs `qh`, 16 signed scales, f16 d). Each 128-value half
/// uses 64 `ql` and 32 `qh`; value v = scales[v / 16] * q.
pub fn q6k_parts(b: &[u8]) -> KQuantParts {
    let d = f16_at(b, 208);
    let mut parts = KQuantParts { quants: [0; QK_K], scales: [0.0; 16], mins: [0.0; 8] };
    for (scale, &s) in parts.scales.iter_mut().zip(&b[192..208]) {
        *scale = d * f32::from(s as i8);
    }
    for h in 0..2 {
        let ql = &b[h * 64..h * 64 + 64];
        let qh = &b[128 + h * 32..128 + h * 32 + 32];
        let q = &mut parts.quants[h * 128..h * 128 + 128];
        for l in 0..32 {
            q[l] = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i8 - 32;
            q[l + 32] = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            q[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            q[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
        }
    }
    parts
}

/// Dequantizes one Q4_K super-block into 256 values (see [`q4k_parts`]).
pub(crate) fn dequant_q4k_block(b: &[u8], out: &mut [f32]) {
    let parts = q4k_parts(b);
    for (v, (o, &q)) in out[..QK_K].iter_mut().zip(&parts.quants).enumerate() {
        *o = parts.scales[v / 32] * f32::from(q) - parts.mins[v / 32];
    }
}

/// Dequantizes one Q6_K super-block into 256 values (see [`q6k_parts`]).
pub(crate) fn dequant_q6k_block(b: &[u8], out: &mut [f32]) {
    let parts = q6k_parts(b);
    for (v, (o, &q)) in out[..QK_K].iter_mut().zip(&parts.quants).enumerate() {
        *o = parts.scales[v / 16] * f32::from(q);
    }
}

/// Dequantizes one block of `dtype` (`dtype.block_bytes()` bytes) into
/// `dtype.block_size()` values.
pub(crate) fn dequant_block(dtype: QuantType, b: &[u8], out: &mut [f32]) {
    match dtype {
        QuantType::F32 => out[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        QuantType::F16 => out[0] = f16_at(b, 0),
        QuantType::Q8_0 => {
            let d = f16_at(b, 0);
            for (o, &q) in out.iter_mut().zip(&b[2..34]) {
                *o = f32::from(q as i8) * d;
            }
        }
        QuantType::Q4_0 => {
            let d = f16_at(b, 0);
            // Low nibbles are values 0..16 of the block, high nibbles 16..32.
            for (l, &q) in b[2..18].iter().enumerate() {
                out[l] = (f32::from(q & 0x0f) - 8.0) * d;
                out[l + 16] = (f32::from(q >> 4) - 8.0) * d;
            }
        }
        QuantType::Q4_1 => {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            for (l, &q) in b[4..20].iter().enumerate() {
                out[l] = f32::from(q & 0x0f) * d + m;
                out[l + 16] = f32::from(q >> 4) * d + m;
            }
        }
        QuantType::Q4K => dequant_q4k_block(b, out),
        QuantType::Q6K => dequant_q6k_block(b, out),
    }
}

/// [`dequant_row`] on the fastest kernels `kernel` allows (all give the same bits).
pub(crate) fn dequant_row_with(dtype: QuantType, row: &[u8], out: &mut [f32], kernel: super::Kernel) {
    #[cfg(target_arch = "x86_64")]
    if kernel.use_simd() {
        if let Some(f) = super::simd_x86::dequant_row(dtype) {
            return f(row, out);
        }
    }
    let _ = kernel;
    dequant_row(dtype, row, out)
}

/// Dequantizes a whole row (`row.len()` a multiple of the block bytes) into `out`.
pub(crate) fn dequant_row(dtype: QuantType, row: &[u8], out: &mut [f32]) {
    match dtype {
        // Whole-row fast paths: these types have one value per "block".
        QuantType::F32 => {
            for (o, b) in out.iter_mut().zip(row.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        QuantType::F16 => {
            for (o, b) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = f16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        _ => {
            let (bs, bb) = (dtype.block_size(), dtype.block_bytes());
            for (o, b) in out.chunks_exact_mut(bs).zip(row.chunks_exact(bb)) {
                dequant_block(dtype, b, o);
            }
        }
    }
}
