//! GGUF (versions 2 and 3): the single-file model format of llama.cpp.
//!
//! A file is a header, typed metadata key/value pairs, tensor infos, then
//! the tensor data, each tensor at an offset aligned to `general.alignment`
//! (default 32). [`GgufFile::open`] memory-maps a file and validates all of
//! it up front — every count, length, type id and tensor placement — so the
//! accessors afterwards cannot fail on a corrupt file, and no allocation is
//! ever sized by a field before that field is checked against the bytes left.
//!
//! ```no_run
//! use ipfs_accelerate_models::gguf::GgufFile;
//! let file = GgufFile::open("model.gguf".as_ref())?;
//! let arch = file.get_str("general.architecture");
//! let embeddings = file.tensor_f32("token_embd.weight")?;
//! # Ok::<(), ipfs_accelerate_models::Error>(())
//! ```

mod dtype;
mod header;
mod metadata;
mod reader;
mod tensors;

pub use dtype::{dequantize, GgmlDType};
pub use header::Header;
pub use metadata::{MetadataValue, ValueType};
pub use tensors::TensorInfo;

use crate::error::{Error, Result};
use bytes::Bytes;
use reader::{invalid, Reader};
use std::collections::HashMap;
use std::path::Path;

/// Tensor data alignment when the file does not set `general.alignment`.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// A parsed, validated GGUF file; tensor data stays in the mapping (or the
/// buffer) until asked for.
pub struct GgufFile {
    bytes: Bytes,
    header: Header,
    metadata: Vec<(String, MetadataValue)>,
    metadata_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: u64,
    data_start: u64,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The bytes are left out: they are the whole model.
        f.debug_struct("GgufFile")
            .field("header", &self.header)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("alignment", &self.alignment)
            .field("data_start", &self.data_start)
            .finish()
    }
}

impl GgufFile {
    /// Memory-maps and validates the GGUF file at `path`.
    pub fn open(path: &Path) -> Result<GgufFile> {
        let file = std::fs::File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        // SAFETY: the mapping is read-only; like every mmap-based loader we
        // assume the file is not truncated by another process while mapped.
        let map =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        GgufFile::from_bytes(Bytes::from_owner(map)).map_err(|e| match e {
            Error::Gguf { offset, message, .. } => Error::Gguf { path: path.to_path_buf(), offset, message },
            other => other,
        })
    }

    /// Parses and validates a GGUF file held in memory (copied, so the result
    /// does not borrow `bytes`).
    pub fn parse(bytes: &[u8]) -> Result<GgufFile> {
        GgufFile::from_bytes(Bytes::copy_from_slice(bytes))
    }

    /// Parses and validates a GGUF file held in `bytes`, without copying.
    pub fn from_bytes(bytes: Bytes) -> Result<GgufFile> {
        let mut r = Reader::new(&bytes);
        let header = Header::read(&mut r)?;

        // The header check bounds both counts by the file size, so these
        // capacities are at most a fraction of the file length.
        let mut metadata = Vec::with_capacity(header.metadata_count as usize);
        let mut metadata_index = HashMap::with_capacity(header.metadata_count as usize);
        // Where `general.alignment` was read, for its error.
        let mut alignment_at = 0;
        for _ in 0..header.metadata_count {
            let at = r.pos();
            let (key, value) = metadata::read_entry(&mut r)?;
            if key == "general.alignment" {
                alignment_at = at;
            }
            if metadata_index.insert(key.clone(), metadata.len()).is_some() {
                return Err(invalid(at, format!("duplicate metadata key {key:?}")));
            }
            metadata.push((key, value));
        }
        let alignment = match metadata_index.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(&i) => match metadata[i].1.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() => a,
                _ => {
                    return Err(invalid(
                        alignment_at,
                        format!("general.alignment must be a power-of-two integer, found {:?}", metadata[i].1),
                    ))
                }
            },
        };

        let mut tensors = Vec::with_capacity(header.tensor_count as usize);
        let mut tensor_index = HashMap::with_capacity(header.tensor_count as usize);
        let mut info_offsets = Vec::with_capacity(header.tensor_count as usize);
        for _ in 0..header.tensor_count {
            let at = r.pos();
            let info = TensorInfo::read(&mut r)?;
            if tensor_index.insert(info.name.clone(), tensors.len()).is_some() {
                return Err(invalid(at, format!("duplicate tensor name {:?}", info.name)));
            }
            info_offsets.push(at);
            tensors.push(info);
        }

        // The data section starts at the next multiple of the alignment.
        let data_start = (r.pos() as u64).next_multiple_of(alignment);
        let file_len = bytes.len() as u64;
        for (info, &at) in tensors.iter().zip(&info_offsets) {
            tensors::check_placement(info, at, alignment, data_start, file_len)?;
        }
        Ok(GgufFile { bytes, header, metadata, metadata_index, tensors, tensor_index, alignment, data_start })
    }

    /// The header (version and counts).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The format version, 2 or 3.
    pub fn version(&self) -> u32 {
        self.header.version
    }

    /// The tensor data alignment in bytes.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Byte offset of the data section from the start of the file.
    pub fn data_offset(&self) -> u64 {
        self.data_start
    }

    /// All metadata entries, in file order.
    pub fn metadata_entries(&self) -> impl Iterator<Item = (&str, &MetadataValue)> {
        self.metadata.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The metadata value under `key`.
    pub fn metadata(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// The string under `key`, if present and a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.metadata(key)?.as_str()
    }

    /// The integer under `key` as u32, if present, an integer and in range.
    pub fn get_u32(&self, key: &str) -> Option<u32> {
        self.metadata(key)?.as_u32()
    }

    /// The integer under `key` as u64, if present, an integer and non-negative.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.metadata(key)?.as_u64()
    }

    /// The integer under `key` as i64, if present, an integer and in range.
    pub fn get_i64(&self, key: &str) -> Option<i64> {
        self.metadata(key)?.as_i64()
    }

    /// The float under `key` as f32, if present and a float.
    pub fn get_f32(&self, key: &str) -> Option<f32> {
        self.metadata(key)?.as_f32()
    }

    /// The boolean under `key`, if present and a bool.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.metadata(key)?.as_bool()
    }

    /// The array under `key`, if present and an array.
    pub fn get_array(&self, key: &str) -> Option<&[MetadataValue]> {
        self.metadata(key)?.as_array()
    }

    /// The array of strings under `key` (e.g. `tokenizer.ggml.tokens`), if
    /// present and every element is a string.
    pub fn get_str_array(&self, key: &str) -> Option<Vec<&str>> {
        self.get_array(key)?.iter().map(MetadataValue::as_str).collect()
    }

    /// All tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The info of tensor `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The info of tensor `name`, or an error naming it.
    fn require(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor(name)
            .ok_or_else(|| Error::Weight { name: name.to_string(), message: "not found in the GGUF file".into() })
    }

    /// The stored bytes of tensor `name` (still quantized), borrowed from the
    /// mapping.
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8]> {
        let info = self.require(name)?;
        // In bounds: checked for every tensor when the file was parsed.
        let start = (self.data_start + info.offset) as usize;
        Ok(&self.bytes[start..start + info.n_bytes as usize])
    }

    /// The stored bytes of tensor `name` (still quantized) as a shared slice
    /// of the mapping: no copy, and it keeps the mapping alive.
    pub fn tensor_data(&self, name: &str) -> Result<Bytes> {
        let info = self.require(name)?;
        let start = (self.data_start + info.offset) as usize;
        Ok(self.bytes.slice(start..start + info.n_bytes as usize))
    }

    /// Tensor `name` dequantized to f32, in storage order (`dims[0]` fastest).
    pub fn tensor_f32(&self, name: &str) -> Result<Vec<f32>> {
        let info = self.require(name)?;
        if !info.dtype.can_dequantize() {
            return Err(Error::WeightDType { name: name.to_string(), dtype: format!("GGUF {:?}", info.dtype) });
        }
        dequantize(info.dtype, self.tensor_bytes(name)?, info.n_elements as usize)
    }
}
