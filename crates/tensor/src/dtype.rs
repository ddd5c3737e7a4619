//! Element data types, named as WebNN's `MLOperandDataType`, plus block-quantized types.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The data type of a tensor or graph operand.
///
/// Plain types use WebNN's names (`float32`, `int64`, ...). Block-quantized
/// types (GGML's `q8_0`, `q4_0`, `q4_1`) store `block_len()` elements in
/// `block_bytes()` bytes; they exist so weights can be carried as stored, and
/// each backend says which ops it can run on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// IEEE 754 binary32.
    Float32,
    /// IEEE 754 binary16 (`half::f16`).
    Float16,
    /// Signed 32-bit integer.
    Int32,
    /// Unsigned 32-bit integer.
    Uint32,
    /// Signed 64-bit integer.
    Int64,
    /// Signed 8-bit integer.
    Int8,
    /// Unsigned 8-bit integer; also the type of boolean masks (0 or 1).
    Uint8,
    /// 32 elements: an f16 scale and 32 signed 8-bit values (34 bytes).
    #[serde(rename = "q8_0")]
    Q8_0,
    /// 32 elements: an f16 scale and 32 4-bit values (18 bytes).
    #[serde(rename = "q4_0")]
    Q4_0,
    /// 32 elements: f16 scale and minimum and 32 4-bit values (20 bytes).
    #[serde(rename = "q4_1")]
    Q4_1,
}

impl DType {
    /// Elements per storage block: 1 for plain types, 32 for the quantized ones.
    pub fn block_len(self) -> usize {
        match self {
            DType::Q8_0 | DType::Q4_0 | DType::Q4_1 => 32,
            _ => 1,
        }
    }

    /// Bytes per storage block (per element for plain types).
    pub fn block_bytes(self) -> usize {
        match self {
            DType::Float32 | DType::Int32 | DType::Uint32 => 4,
            DType::Float16 => 2,
            DType::Int64 => 8,
            DType::Int8 | DType::Uint8 => 1,
            DType::Q8_0 => 34,
            DType::Q4_0 => 18,
            DType::Q4_1 => 20,
        }
    }

    /// Byte alignment a typed view of this dtype needs.
    pub fn alignment(self) -> usize {
        match self {
            DType::Int64 => 8,
            DType::Float32 | DType::Int32 | DType::Uint32 => 4,
            DType::Int8 | DType::Uint8 => 1,
            DType::Float16 | DType::Q8_0 | DType::Q4_0 | DType::Q4_1 => 2,
        }
    }

    /// Bytes needed for `elements` values, or `None` when a quantized tensor's
    /// element count is not a whole number of blocks or the size overflows.
    pub fn storage_bytes(self, elements: usize) -> Option<usize> {
        let block = self.block_len();
        if !elements.is_multiple_of(block) {
            return None;
        }
        (elements / block).checked_mul(self.block_bytes())
    }

    /// True for `float32` and `float16`.
    pub fn is_float(self) -> bool {
        matches!(self, DType::Float32 | DType::Float16)
    }

    /// True for the integer types.
    pub fn is_integer(self) -> bool {
        matches!(self, DType::Int32 | DType::Uint32 | DType::Int64 | DType::Int8 | DType::Uint8)
    }

    /// True for the block-quantized types.
    pub fn is_quantized(self) -> bool {
        self.block_len() > 1
    }

    /// The WebNN name (`float32`, ...) or GGML name (`q4_0`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::Float32 => "float32",
            DType::Float16 => "float16",
            DType::Int32 => "int32",
            DType::Uint32 => "uint32",
            DType::Int64 => "int64",
            DType::Int8 => "int8",
            DType::Uint8 => "uint8",
            DType::Q8_0 => "q8_0",
            DType::Q4_0 => "q4_0",
            DType::Q4_1 => "q4_1",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_sizes_follow_blocks() {
        assert_eq!(DType::Float32.storage_bytes(10), Some(40));
        assert_eq!(DType::Float16.storage_bytes(3), Some(6));
        assert_eq!(DType::Q4_0.storage_bytes(64), Some(36));
        assert_eq!(DType::Q8_0.storage_bytes(33), None);
        assert_eq!(DType::Float32.storage_bytes(usize::MAX / 2), None, "overflow is None, not a wrapped size");
    }

    #[test]
    fn serde_uses_webnn_names() {
        assert_eq!(serde_json::to_string(&DType::Float32).unwrap(), "\"float32\"");
        assert_eq!(serde_json::to_string(&DType::Q4_1).unwrap(), "\"q4_1\"");
        let d: DType = serde_json::from_str("\"uint8\"").unwrap();
        assert_eq!(d, DType::Uint8);
    }
}
