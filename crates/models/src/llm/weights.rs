//! Where a decoder's weights come from: a GGUF file (used as stored,
//! quantized or not) or safetensors (float weights, quantized at load when
//! a lower precision is asked for).

use crate::error::{Error, Result};
use crate::gguf::{GgmlDType, GgufFile};
use crate::safetensors_file::SafetensorsFile;
use ipfs_accelerate_tensor::quant::{QuantMatrix, QuantType};
use std::path::{Path, PathBuf};

/// Bits per weight asked for (`--precision 4|8|16|32`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightBits {
    /// As stored: GGUF types as they are, safetensors as float32.
    #[default]
    AsStored,
    /// 4-bit blocks (Q4_1: a scale and a minimum per 32 weights).
    Four,
    /// 8-bit blocks (Q8_0: a scale per 32 weights).
    Eight,
    /// float16.
    Sixteen,
    /// float32.
    ThirtyTwo,
}

impl WeightBits {
    /// Parses `4`, `8`, `16` or `32`.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "4" | "q4" => WeightBits::Four,
            "8" | "q8" => WeightBits::Eight,
            "16" | "f16" => WeightBits::Sixteen,
            "32" | "f32" => WeightBits::ThirtyTwo,
            other => return Err(Error::InvalidOption(format!("unknown precision {other:?}: use 4, 8, 16 or 32"))),
        })
    }

    /// The storage type for a float matrix with `cols` columns: block types
    /// need whole blocks per row, so narrower rows fall back to float16.
    pub(crate) fn storage(self, cols: usize) -> QuantType {
        let blocks_fit = cols.is_multiple_of(32);
        match self {
            WeightBits::AsStored | WeightBits::ThirtyTwo => QuantType::F32,
            WeightBits::Sixteen => QuantType::F16,
            WeightBits::Eight if blocks_fit => QuantType::Q8_0,
            WeightBits::Four if blocks_fit => QuantType::Q4_1,
            WeightBits::Eight | WeightBits::Four => QuantType::F16,
        }
    }
}

/// An open weight file.
pub enum WeightFile {
    /// A GGUF file (llama.cpp tensor names).
    Gguf {
        /// The file.
        file: GgufFile,
        /// Its path, for errors.
        path: PathBuf,
    },
    /// A safetensors file (Hugging Face tensor names).
    Safetensors {
        /// The file.
        file: SafetensorsFile,
        /// Bits asked for.
        bits: WeightBits,
    },
}

impl WeightFile {
    /// Whether tensor `name` exists.
    pub fn has(&self, name: &str) -> bool {
        match self {
            WeightFile::Gguf { file, .. } => file.tensor(name).is_some(),
            WeightFile::Safetensors { file, .. } => file.contains(name),
        }
    }

    /// The 2-D weight `name` as a `[rows, cols]` matrix (`y = W x` maps
    /// `cols` inputs to `rows` outputs). `transposed` marks safetensors
    /// weights stored `[cols, rows]` (GPT-2's Conv1D).
    pub fn matrix(&self, name: &str, rows: usize, cols: usize, transposed: bool) -> Result<QuantMatrix> {
        match self {
            WeightFile::Gguf { file, path } => {
                let info = file.tensor(name).ok_or_else(|| missing(name, path))?;
                // ggml dims are innermost first: a [rows, cols] matrix is stored [cols, rows].
                if info.dims != [cols as u64, rows as u64] {
                    return Err(Error::Weight {
                        name: name.into(),
                        message: format!("has ggml dims {:?}, expected [{cols}, {rows}]", info.dims),
                    });
                }
                let dtype = quant_type(info.dtype).ok_or_else(|| Error::WeightDType {
                    name: name.into(),
                    dtype: format!("GGUF {:?} (supported: F32, F16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)", info.dtype),
                })?;
                Ok(QuantMatrix::new(dtype, rows, cols, file.tensor_data(name)?)?)
            }
            WeightFile::Safetensors { file, bits } => {
                let shape = if transposed { [cols, rows] } else { [rows, cols] };
                let tensor = file.f32(name, &shape)?;
                let values =
                    tensor.as_f32().ok_or_else(|| Error::Backend(format!("{name} did not load as float32")))?;
                let values = if transposed { transpose(values, cols, rows) } else { values.to_vec() };
                Ok(QuantMatrix::quantize(bits.storage(cols), rows, cols, &values)?)
            }
        }
    }

    /// The 1-D weight `name` (norm scales, biases) as float32.
    pub fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        match self {
            WeightFile::Gguf { file, path } => {
                let info = file.tensor(name).ok_or_else(|| missing(name, path))?;
                if info.n_elements != len as u64 {
                    return Err(Error::Weight {
                        name: name.into(),
                        message: format!("has {} values, expected {len}", info.n_elements),
                    });
                }
                file.tensor_f32(name)
            }
            WeightFile::Safetensors { file, .. } => {
                let tensor = file.f32(name, &[len])?;
                Ok(tensor.as_f32().map(<[f32]>::to_vec).unwrap_or_default())
            }
        }
    }
}

fn missing(name: &str, path: &Path) -> Error {
    Error::Weight { name: name.into(), message: format!("not found in {}", path.display()) }
}

/// The kernel type of a GGUF tensor type, if the kernels support it.
fn quant_type(dtype: GgmlDType) -> Option<QuantType> {
    Some(match dtype {
        GgmlDType::F32 => QuantType::F32,
        GgmlDType::F16 => QuantType::F16,
        GgmlDType::Q8_0 => QuantType::Q8_0,
        GgmlDType::Q4_0 => QuantType::Q4_0,
        GgmlDType::Q4_1 => QuantType::Q4_1,
        GgmlDType::Q4K => QuantType::Q4K,
        GgmlDType::Q6K => QuantType::Q6K,
        _ => return None,
    })
}

/// `[rows, cols]` row-major → `[cols, rows]` row-major.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}
