//! Memory-mapped safetensors weights.

use crate::error::{Error, Result};
use bytes::Bytes;
use half::bf16;
use ipfs_accelerate_tensor::{DType, Tensor};
use safetensors::tensor::{Dtype, Metadata, SafeTensors};
use std::path::{Path, PathBuf};

/// A safetensors file mapped into memory. Float32 tensors are handed out
/// without copying (they borrow the mapping); float16 and bfloat16 ones are
/// converted to float32 when asked.
pub struct SafetensorsFile {
    path: PathBuf,
    bytes: Bytes,
    data_start: usize,
    metadata: Metadata,
}

impl SafetensorsFile {
    /// Maps and validates `path` (header, offsets and total size).
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        // SAFETY: the mapping is read-only; like every mmap-based loader we
        // assume the file is not truncated by another process while mapped.
        let map =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        let bytes = Bytes::from_owner(map);
        let (header_len, metadata) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| Error::Safetensors { path: path.to_path_buf(), message: e.to_string() })?;
        Ok(SafetensorsFile { path: path.to_path_buf(), data_start: 8 + header_len, metadata, bytes })
    }

    /// Whether a tensor of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.metadata.info(name).is_some()
    }

    /// Names of all tensors.
    pub fn names(&self) -> Vec<String> {
        self.metadata.offset_keys()
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tensor `name` as float32, checked against `expected_shape`.
    pub fn f32(&self, name: &str, expected_shape: &[usize]) -> Result<Tensor> {
        let info = self.metadata.info(name).ok_or_else(|| Error::Weight {
            name: name.to_string(),
            message: format!("not found in {}", self.path.display()),
        })?;
        if info.shape != expected_shape {
            return Err(Error::Weight {
                name: name.to_string(),
                message: format!("has shape {:?}, expected {:?}", info.shape, expected_shape),
            });
        }
        let (start, end) = info.data_offsets;
        let raw = self.bytes.slice(self.data_start + start..self.data_start + end);
        let shape = info.shape.clone();
        let tensor = match info.dtype {
            Dtype::F32 => Tensor::from_bytes(DType::Float32, shape, raw)?,
            Dtype::F16 => Tensor::from_bytes(DType::Float16, shape, raw)?.to_f32()?,
            Dtype::BF16 => {
                let values: Vec<f32> =
                    raw.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect();
                Tensor::from_f32(shape, &values)?
            }
            other => return Err(Error::WeightDType { name: name.to_string(), dtype: format!("{other:?}") }),
        };
        Ok(tensor)
    }
}
