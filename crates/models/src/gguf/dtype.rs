//! ggml tensor types: their block layouts and the reference dequantizer.
//!
//! Quantized types store a row as blocks of `block_size` values; every block
//! begins with f16 scale(s) followed by packed integers. The dequantizer here
//! is deliberately plain scalar code: it is the reference that quantized
//! kernels are tested against, so it favours clarity over speed.

use crate::error::{Error, Result};
use half::{bf16, f16};

/// Values per block of the 32-wide quantizations (q4_0, q4_1, q8_0, ...).
const QK: usize = 32;

/// A ggml tensor type, numbered as in GGUF tensor infos.
///
/// Every type listed can be parsed and bounds-checked; [`GgmlDType::can_dequantize`]
/// says which ones [`dequantize`] turns into f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlDType {
    /// 0: IEEE f32.
    F32,
    /// 1: IEEE f16.
    F16,
    /// 2: 32 values = f16 scale d + 16 bytes of 4-bit q; x = (q - 8) * d.
    Q4_0,
    /// 3: 32 values = f16 scale d, f16 min m + 16 bytes of 4-bit q; x = q * d + m.
    Q4_1,
    /// 6: 5-bit, 32 per block.
    Q5_0,
    /// 7: 5-bit with min, 32 per block.
    Q5_1,
    /// 8: 32 values = f16 scale d + 32 signed bytes q; x = q * d.
    Q8_0,
    /// 9: 8-bit with sum, 32 per block.
    Q8_1,
    /// 10: 2-bit K-quant, 256 per super-block.
    Q2K,
    /// 11: 3-bit K-quant, 256 per super-block.
    Q3K,
    /// 12: 4-bit K-quant, 256 per super-block.
    Q4K,
    /// 13: 5-bit K-quant, 256 per super-block.
    Q5K,
    /// 14: 6-bit K-quant, 256 per super-block.
    Q6K,
    /// 15: 8-bit K-quant (intermediate type), 256 per super-block.
    Q8K,
    /// 24: signed 8-bit integers.
    I8,
    /// 25: signed 16-bit integers.
    I16,
    /// 26: signed 32-bit integers.
    I32,
    /// 27: signed 64-bit integers.
    I64,
    /// 28: IEEE f64.
    F64,
    /// 30: bfloat16.
    BF16,
}

impl GgmlDType {
    /// The type for a ggml type id; `None` for ids this reader does not know
    /// (including the IQ* codebook types), which the parser reports.
    pub fn from_id(id: u32) -> Option<GgmlDType> {
        use GgmlDType::*;
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2K,
            11 => Q3K,
            12 => Q4K,
            13 => Q5K,
            14 => Q6K,
            15 => Q8K,
            24 => I8,
            25 => I16,
            26 => I32,
            27 => I64,
            28 => F64,
            30 => BF16,
            _ => return None,
        })
    }

    /// The ggml type id.
    pub fn id(self) -> u32 {
        use GgmlDType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q5_0 => 6,
            Q5_1 => 7,
            Q8_0 => 8,
            Q8_1 => 9,
            Q2K => 10,
            Q3K => 11,
            Q4K => 12,
            Q5K => 13,
            Q6K => 14,
            Q8K => 15,
            I8 => 24,
            I16 => 25,
            I32 => 26,
            I64 => 27,
            F64 => 28,
            BF16 => 30,
        }
    }

    /// Values per block (1 for plain element types).
    pub fn block_size(self) -> u64 {
        use GgmlDType::*;
        match self {
            F32 | F16 | BF16 | F64 | I8 | I16 | I32 | I64 => 1,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 => QK as u64,
            Q2K | Q3K | Q4K | Q5K | Q6K | Q8K => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> u64 {
        use GgmlDType::*;
        match self {
            I8 => 1,
            F16 | BF16 | I16 => 2,
            F32 | I32 => 4,
            F64 | I64 => 8,
            Q4_0 => 2 + 16,
            Q4_1 => 2 + 2 + 16,
            Q5_0 => 2 + 4 + 16,
            Q5_1 => 2 + 2 + 4 + 16,
            Q8_0 => 2 + 32,
            Q8_1 => 2 + 2 + 32,
            Q2K => 16 + 64 + 2 + 2,
            Q3K => 32 + 64 + 12 + 2,
            Q4K => 2 + 2 + 12 + 128,
            Q5K => 2 + 2 + 12 + 32 + 128,
            Q6K => 128 + 64 + 16 + 2,
            Q8K => 4 + 256 + 32,
        }
    }

    /// Whether [`dequantize`] supports this type.
    pub fn can_dequantize(self) -> bool {
        use GgmlDType::*;
        matches!(self, F32 | F16 | BF16 | Q4_0 | Q4_1 | Q8_0)
    }
}

/// The f16 stored little-endian at `b[i..i + 2]`.
fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Dequantizes `data`, which must hold exactly `n` values of `dtype` (the
/// parser guarantees this for tensors it returns), into f32 in storage order.
pub fn dequantize(dtype: GgmlDType, data: &[u8], n: usize) -> Result<Vec<f32>> {
    let block_bytes = dtype.block_bytes() as usize;
    let block_size = dtype.block_size() as usize;
    // Re-checked here because this is a public function: callers outside the
    // parser can hand it any slice.
    if !n.is_multiple_of(block_size) || data.len() != n / block_size * block_bytes {
        return Err(Error::InvalidOption(format!(
            "{dtype:?} data of {} bytes does not hold {n} values ({block_size} values per {block_bytes}-byte block)",
            data.len()
        )));
    }
    let mut out = Vec::with_capacity(n);
    let blocks = data.chunks_exact(block_bytes);
    match dtype {
        GgmlDType::F32 => out.extend(blocks.map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        GgmlDType::F16 => out.extend(blocks.map(|b| f16_at(b, 0))),
        GgmlDType::BF16 => out.extend(blocks.map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())),
        GgmlDType::Q8_0 => {
            for b in blocks {
                let d = f16_at(b, 0);
                out.extend(b[2..].iter().map(|&q| f32::from(q as i8) * d));
            }
        }
        GgmlDType::Q4_0 => {
            for b in blocks {
                let d = f16_at(b, 0);
                // Low nibbles hold values 0..16 of the block, high nibbles 16..32.
                let qs = &b[2..];
                out.extend(qs.iter().map(|&q| (f32::from(q & 0x0f) - 8.0) * d));
                out.extend(qs.iter().map(|&q| (f32::from(q >> 4) - 8.0) * d));
            }
        }
        GgmlDType::Q4_1 => {
            for b in blocks {
                let (d, m) = (f16_at(b, 0), f16_at(b, 2));
                let qs = &b[4..];
                out.extend(qs.iter().map(|&q| f32::from(q & 0x0f) * d + m));
                out.extend(qs.iter().map(|&q| f32::from(q >> 4) * d + m));
            }
        }
        other => {
            return Err(Error::InvalidOption(format!(
                "dequantizing {other:?} is not implemented yet (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)"
            )))
        }
    }
    Ok(out)
}
