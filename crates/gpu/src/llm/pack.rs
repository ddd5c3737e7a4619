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
    /// Per block `d` (`Q8_0`, `Q4_0`) or `d, m` (`Q4_1`); empty for the float formats.
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

    #[test]
    fn wrong_sizes_are_errors() {
        assert!(pack(WeightFormat::Q8_0, 1, 40, &[0; 34]).is_err());
        assert!(pack(WeightFormat::Q8_0, 1, 32, &[0; 33]).is_err());
        let f16 = pack(WeightFormat::F16, 1, 3, &[0; 6]).unwrap();
        assert_eq!(f16.words.len(), 16, "padded to a vector");
    }
}
