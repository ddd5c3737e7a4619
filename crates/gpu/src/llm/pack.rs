//! Weight layouts on the device.
//!
//! GGML stores each row of a quantized matrix as consecutive blocks of 32 weights:
//! `Q8_0` as an f16 scale and 32 int8 (34 bytes), `Q4_0` as an f16 scale and 16 bytes
//! of nibbles (18 bytes), `Q4_1` as an f16 scale, an f16 minimum and 16 bytes (20
//! bytes). Those blocks are not 4-byte aligned, and WGSL reads storage as 32-bit words
//! (f16 storage needs `shader-f16`, which software adapters and many browsers lack).
//! Rather than combining unaligned words in every kernel, the blocks are split once
//! at upload into two aligned arrays — the quants (`words`, same bytes, same order)
//! and the scales as f32 (`scales`) — which costs 2 bytes per block more than GGML
//! (an f32 scale instead of an f16) and no work per token. `kernels/llm_matmul.wgsl`
//! documents the layout the kernels expect.
//!
//! K-quant super-blocks (256 weights) are rewritten into the same 32-weight device
//! blocks by [`pack_k_quant`]: a `Q4_K` group of 32 is exactly a `Q4_1` block (4-bit
//! quants, an f32 scale `d·sc` and an f32 offset `-dmin·m`), and `Q6_K`'s 6-bit quants
//! minus 32 fit int8, so its groups become [`WeightFormat::Q8_16`] blocks (32 int8
//! and two scales, one per 16). On the device that is 0.75 bytes per weight for
//! `Q4_K` (GGML: 0.56) and 1.25 for `Q6_K` (GGML: 0.82), not the 4 of float32.

use crate::error::{GpuError, Result};

/// A weight format the `llm_*` kernels read (their `DTYPE` override).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum WeightFormat {
    /// f32, row-major.
    F32 = 0,
    /// f16 (IEEE half), row-major.
    F16 = 1,
    /// GGML `Q8_0`: blocks of 32, `d * q`.
    Q8_0 = 2,
    /// GGML `Q4_0`: blocks of 32, `d * (q - 8)`.
    Q4_0 = 3,
    /// GGML `Q4_1`: blocks of 32, `d * q + m`.
    Q4_1 = 4,
    /// Device-only: blocks of 32 int8 with a scale per 16 (`Q6_K` repacked).
    Q8_16 = 5,
}

impl WeightFormat {
    /// The `DTYPE` override value.
    pub fn code(self) -> f64 {
        f64::from(self as u32)
    }

    /// Weights per block (1 for the float formats).
    pub fn block_size(self) -> usize {
        match self {
            WeightFormat::F32 | WeightFormat::F16 => 1,
            _ => 32,
        }
    }

    /// Bytes per block in the GGML (file) layout.
    pub fn ggml_block_bytes(self) -> usize {
        match self {
            WeightFormat::F32 => 4,
            WeightFormat::F16 => 2,
            WeightFormat::Q8_0 => 34,
            WeightFormat::Q4_0 => 18,
            WeightFormat::Q4_1 => 20,
            // No GGML type: only made by `pack_k_quant`.
            WeightFormat::Q8_16 => 40,
        }
    }

    /// Short name, as GGUF spells it.
    pub fn name(self) -> &'static str {
        match self {
            WeightFormat::F32 => "F32",
            WeightFormat::F16 => "F16",
            WeightFormat::Q8_0 => "Q8_0",
            WeightFormat::Q4_0 => "Q4_0",
            WeightFormat::Q4_1 => "Q4_1",
            WeightFormat::Q8_16 => "Q8_16 (from Q6_K)",
        }
    }
}

/// A weight matrix in the device layout, ready to upload.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedWeights {
    /// The format.
    pub format: WeightFormat,
    /// Rows (output features).
    pub rows: usize,
    /// Columns (input features).
    pub cols: usize,
    /// The weights (float formats) or quants (block formats), little-endian words,
    /// zero-padded to a multiple of 16 bytes (the kernels read 16-byte vectors).
    pub words: Vec<u8>,
    /// Per block `d` (`Q8_0`, `Q4_0`), `d, m` (`Q4_1`) or the scales of its two
    /// halves (`Q8_16`); empty for the float formats.
    pub scales: Vec<f32>,
}

impl PackedWeights {
    /// Blocks of 32 per row (0 for the float formats).
    pub fn blocks_per_row(&self) -> usize {
        match self.format {
            WeightFormat::F32 | WeightFormat::F16 => 0,
            _ => self.cols / 32,
        }
    }
}

/// Repacks `rows × cols` weights stored in `format`'s GGML layout (row-major; a row is
/// `cols / 32` consecutive blocks) into the device layout.
pub fn pack(format: WeightFormat, rows: usize, cols: usize, ggml: &[u8]) -> Result<PackedWeights> {
    let bad = |message: String| GpuError::BadLaunch { kernel: "llm_matmul".into(), message };
    let block = format.block_size();
    if !cols.is_multiple_of(block) {
        return Err(bad(format!("a {} matrix needs columns in multiples of {block}, not {cols}", format.name())));
    }
    let blocks = rows.checked_mul(cols / block).ok_or_else(|| bad(format!("{rows} × {cols} weights overflow")))?;
    let expected = blocks * format.ggml_block_bytes();
    if ggml.len() != expected {
        return Err(bad(format!(
            "{rows} × {cols} {} weights take {expected} bytes, {} were given",
            format.name(),
            ggml.len()
        )));
    }
    let (quant_bytes, scale_count) = match format {
        WeightFormat::F32 | WeightFormat::F16 => {
            let mut words = ggml.to_vec();
            words.resize(words.len().next_multiple_of(16), 0);
            return Ok(PackedWeights { format, rows, cols, words, scales: Vec::new() });
        }
        WeightFormat::Q8_0 => (32, 1),
        WeightFormat::Q4_0 => (16, 1),
        WeightFormat::Q4_1 => (16, 2),
        WeightFormat::Q8_16 => return Err(bad("Q8_16 is made from Q6_K by pack_k_quant".into())),
    };
    let mut words = Vec::with_capacity(blocks * quant_bytes);
    let mut scales = Vec::with_capacity(blocks * scale_count);
    for b in ggml.chunks_exact(format.ggml_block_bytes()) {
        let header = 2 * scale_count;
        for s in 0..scale_count {
            scales.push(half::f16::from_le_bytes([b[2 * s], b[2 * s + 1]]).to_f32());
        }
        words.extend_from_slice(&b[header..header + quant_bytes]);
    }
    Ok(PackedWeights { format, rows, cols, words, scales })
}

/// A GGML K-quant type [`pack_k_quant`] rewrites into device blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KQuant {
    /// `Q4_K` (144-byte super-blocks) → [`WeightFormat::Q4_1`] blocks.
    Q4K,
    /// `Q6_K` (210-byte super-blocks) → [`WeightFormat::Q8_16`] blocks.
    Q6K,
}

/// Rewrites `rows × cols` weights stored as `kind` super-blocks of 256 (a row is
/// `cols / 256` of them) into 32-weight device blocks with the same values (see the
/// module docs).
pub fn pack_k_quant(kind: KQuant, rows: usize, cols: usize, ggml: &[u8]) -> Result<PackedWeights> {
    let bad = |message: String| GpuError::BadLaunch { kernel: "llm_matmul".into(), message };
    let (block_bytes, name) = match kind {
        KQuant::Q4K => (144, "Q4_K"),
        KQuant::Q6K => (210, "Q6_K"),
    };
    if !cols.is_multiple_of(256) {
        return Err(bad(format!("a {name} matrix needs columns in multiples of 256, not {cols}")));
    }
    let supers = rows.checked_mul(cols / 256).ok_or_else(|| bad(format!("{rows} × {cols} weights overflow")))?;
    if ggml.len() != supers * block_bytes {
        return Err(bad(format!(
            "{rows} × {cols} {name} weights take {} bytes, {} were given",
            supers * block_bytes,
            ggml.len()
        )));
    }
    let mut words = Vec::with_capacity(supers * 8 * 32);
    let mut scales = Vec::with_capacity(supers * 16);
    for b in ggml.chunks_exact(block_bytes) {
        match kind {
            KQuant::Q4K => {
                let parts = ipfs_accelerate_tensor::quant::q4k_parts(b);
                for g in 0..8 {
                    let q = &parts.quants[g * 32..g * 32 + 32];
                    // Q4_1 layout: byte i holds value i (low nibble) and 16 + i (high).
                    words.extend((0..16).map(|i| (q[i] as u8) | ((q[16 + i] as u8) << 4)));
                    scales.extend([parts.scales[g], -parts.mins[g]]);
                }
            }
            KQuant::Q6K => {
                let parts = ipfs_accelerate_tensor::quant::q6k_parts(b);
                words.extend(parts.quants.iter().map(|&q| q as u8));
                scales.extend_from_slice(&parts.scales);
            }
        }
    }
    let format = match kind {
        KQuant::Q4K => WeightFormat::Q4_1,
        KQuant::Q6K => WeightFormat::Q8_16,
    };
    Ok(PackedWeights { format, rows, cols, words, scales })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_1_blocks_split_into_quants_and_scales() {
        let mut block = Vec::new();
        block.extend_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
        block.extend_from_slice(&half::f16::from_f32(-1.0).to_le_bytes());
        block.extend((0u8..16).map(|i| i * 17));
        let two = [block.clone(), block].concat();
        let packed = pack(WeightFormat::Q4_1, 1, 64, &two).unwrap();
        assert_eq!(packed.scales, [0.5, -1.0, 0.5, -1.0]);
        assert_eq!(packed.words.len(), 32);
        assert_eq!(packed.words[1], 17);
        assert_eq!(packed.blocks_per_row(), 2);
    }

    /// Random K-quant super-blocks with small finite super-scales.
    fn k_quant_bytes(kind: KQuant, supers: usize) -> Vec<u8> {
        let (block, d_at): (usize, &[usize]) = match kind {
            KQuant::Q4K => (144, &[0, 2]),
            KQuant::Q6K => (210, &[208]),
        };
        let mut x = 12345u32;
        let mut bytes: Vec<u8> = (0..supers * block)
            .map(|_| {
                x = x.wrapping_mul(1664525).wrapping_add(1013904223);
                (x >> 24) as u8
            })
            .collect();
        for b in bytes.chunks_exact_mut(block) {
            for &at in d_at {
                b[at..at + 2].copy_from_slice(&half::f16::from_f32(0.0123 * (1 + at) as f32).to_le_bytes());
            }
        }
        bytes
    }

    /// The device blocks hold exactly the values the CPU dequantizes.
    #[test]
    fn k_quants_become_device_blocks_with_the_same_values() {
        use ipfs_accelerate_tensor::quant::{QuantMatrix, QuantType};
        let (rows, cols) = (3, 512);
        for (kind, dtype) in [(KQuant::Q4K, QuantType::Q4K), (KQuant::Q6K, QuantType::Q6K)] {
            let bytes = k_quant_bytes(kind, rows * cols / 256);
            let want = QuantMatrix::new(dtype, rows, cols, bytes.clone().into()).unwrap().dequantize();
            let packed = pack_k_quant(kind, rows, cols, &bytes).unwrap();
            let got: Vec<f32> = (0..rows * cols)
                .map(|e| {
                    let (blk, i) = (e / 32, e % 32);
                    match packed.format {
                        WeightFormat::Q4_1 => {
                            let byte = packed.words[blk * 16 + i % 16];
                            let q = if i < 16 { byte & 15 } else { byte >> 4 };
                            packed.scales[2 * blk] * f32::from(q) + packed.scales[2 * blk + 1]
                        }
                        WeightFormat::Q8_16 => {
                            packed.scales[2 * blk + i / 16] * f32::from(packed.words[blk * 32 + i] as i8)
                        }
                        other => panic!("{kind:?} packed as {other:?}"),
                    }
                })
                .collect();
            assert_eq!(got, want, "{kind:?}");
            assert_eq!(packed.blocks_per_row(), cols / 32);
        }
        assert!(pack_k_quant(KQuant::Q4K, 1, 300, &[0; 144]).is_err(), "columns not a multiple of 256");
        assert!(pack_k_quant(KQuant::Q6K, 1, 256, &[0; 209]).is_err(), "wrong byte count");
    }

    #[test]
    fn wrong_sizes_are_errors() {
        assert!(pack(WeightFormat::Q8_0, 1, 40, &[0; 34]).is_err());
        assert!(pack(WeightFormat::Q8_0, 1, 32, &[0; 33]).is_err());
        let f16 = pack(WeightFormat::F16, 1, 3, &[0; 6]).unwrap();
        assert_eq!(f16.words.len(), 16, "padded to a vector");
    }
}
