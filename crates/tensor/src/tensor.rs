//! Tensors: a dtype, a shape and shared, immutable bytes.

use crate::{DType, Error, Result, Shape};
use bytes::Bytes;
use half::f16;
use serde::{Deserialize, Serialize};

/// An immutable n-dimensional array.
///
/// The bytes are shared (`bytes::Bytes`): cloning is cheap, and a tensor can
/// borrow a memory-mapped weights file without copying it. Data is always
/// aligned for its dtype, so typed views ([`Tensor::as_f32`], ...) never fail on
/// alignment.
#[derive(Clone, PartialEq)]
pub struct Tensor {
    dtype: DType,
    shape: Shape,
    data: Bytes,
}

/// An owned, 8-byte aligned buffer that `Bytes` can hold.
struct AlignedBytes {
    words: Vec<u64>,
    len: usize,
}

impl AsRef<[u8]> for AlignedBytes {
    fn as_ref(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }
}

fn aligned_copy(bytes: &[u8]) -> Bytes {
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
    Bytes::from_owner(AlignedBytes { words, len: bytes.len() })
}

impl Tensor {
    /// A tensor over `data`, which must hold exactly the bytes `dtype` and
    /// `shape` need (little-endian). Misaligned data is copied once.
    pub fn from_bytes(dtype: DType, shape: impl Into<Shape>, data: Bytes) -> Result<Self> {
        let shape = shape.into();
        let expected = dtype.storage_bytes(shape.numel()).ok_or_else(|| {
            Error::invalid(
                "tensor",
                format!("{} elements is not a whole number of {dtype} blocks of {}", shape.numel(), dtype.block_len()),
            )
        })?;
        if data.len() != expected {
            return Err(Error::DataSize { dtype, shape: shape.to_string(), expected, got: data.len() });
        }
        let data = if !(data.as_ptr() as usize).is_multiple_of(dtype.alignment()) { aligned_copy(&data) } else { data };
        Ok(Tensor { dtype, shape, data })
    }

    fn from_pod<T: bytemuck::Pod>(dtype: DType, shape: impl Into<Shape>, values: &[T]) -> Result<Self> {
        Tensor::from_bytes(dtype, shape, aligned_copy(bytemuck::cast_slice(values)))
    }

    /// A tensor holding a copy of `data`.
    pub fn copy_from_bytes(dtype: DType, shape: impl Into<Shape>, data: &[u8]) -> Result<Self> {
        Tensor::from_bytes(dtype, shape, aligned_copy(data))
    }

    /// A `float32` tensor.
    pub fn from_f32(shape: impl Into<Shape>, values: &[f32]) -> Result<Self> {
        Tensor::from_pod(DType::Float32, shape, values)
    }

    /// A `float16` tensor.
    pub fn from_f16(shape: impl Into<Shape>, values: &[f16]) -> Result<Self> {
        Tensor::from_pod(DType::Float16, shape, values)
    }

    /// An `int32` tensor.
    pub fn from_i32(shape: impl Into<Shape>, values: &[i32]) -> Result<Self> {
        Tensor::from_pod(DType::Int32, shape, values)
    }

    /// An `int64` tensor.
    pub fn from_i64(shape: impl Into<Shape>, values: &[i64]) -> Result<Self> {
        Tensor::from_pod(DType::Int64, shape, values)
    }

    /// A `uint8` tensor.
    pub fn from_u8(shape: impl Into<Shape>, values: &[u8]) -> Result<Self> {
        Tensor::from_pod(DType::Uint8, shape, values)
    }

    /// A `float32` scalar (shape `[]`).
    pub fn scalar_f32(value: f32) -> Self {
        Tensor::from_f32(Shape::default(), &[value]).expect("one element fits a scalar")
    }

    /// The data type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The raw little-endian bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The shared bytes (cheap to clone).
    pub fn bytes(&self) -> &Bytes {
        &self.data
    }

    /// The same data viewed with another shape of the same element count.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if shape.numel() != self.shape.numel() {
            return Err(Error::shape(
                "reshape",
                format!("cannot view {} elements of {} as {}", self.shape.numel(), self.shape, shape),
            ));
        }
        Ok(Tensor { dtype: self.dtype, shape, data: self.data.clone() })
    }

    /// The values as `f32`, without copying, when the dtype is `float32`.
    pub fn as_f32(&self) -> Option<&[f32]> {
        (self.dtype == DType::Float32).then(|| bytemuck::cast_slice(&self.data))
    }

    /// The values as `i32`, without copying, when the dtype is `int32`.
    pub fn as_i32(&self) -> Option<&[i32]> {
        (self.dtype == DType::Int32).then(|| bytemuck::cast_slice(&self.data))
    }

    /// The values as `i64`, without copying, when the dtype is `int64`.
    pub fn as_i64(&self) -> Option<&[i64]> {
        (self.dtype == DType::Int64).then(|| bytemuck::cast_slice(&self.data))
    }

    /// The values converted to `f32` (from any plain dtype).
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        let b = &self.data[..];
        Ok(match self.dtype {
            DType::Float32 => bytemuck::cast_slice::<u8, f32>(b).to_vec(),
            DType::Float16 => bytemuck::cast_slice::<u8, f16>(b).iter().map(|v| v.to_f32()).collect(),
            DType::Int32 => bytemuck::cast_slice::<u8, i32>(b).iter().map(|&v| v as f32).collect(),
            DType::Uint32 => bytemuck::cast_slice::<u8, u32>(b).iter().map(|&v| v as f32).collect(),
            DType::Int64 => bytemuck::cast_slice::<u8, i64>(b).iter().map(|&v| v as f32).collect(),
            DType::Int8 => b.iter().map(|&v| v as i8 as f32).collect(),
            DType::Uint8 => b.iter().map(|&v| v as f32).collect(),
            q => {
                return Err(Error::invalid(
                    "tensor",
                    format!("converting {q} data to float32 needs a dequantizing backend"),
                ))
            }
        })
    }

    /// A `float32` copy of this tensor (itself when already `float32`).
    pub fn to_f32(&self) -> Result<Tensor> {
        if self.dtype == DType::Float32 {
            return Ok(self.clone());
        }
        Tensor::from_f32(self.shape.clone(), &self.to_f32_vec()?)
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({}, {}, {} bytes)", self.dtype, self.shape, self.data.len())
    }
}

/// The serialized form of a tensor: dtype, shape and the raw bytes.
#[derive(Serialize, Deserialize)]
struct TensorRepr {
    dtype: DType,
    shape: Shape,
    data: Vec<u8>,
}

impl Serialize for Tensor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        TensorRepr { dtype: self.dtype, shape: self.shape.clone(), data: self.data.to_vec() }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Tensor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let r = TensorRepr::deserialize(d)?;
        Tensor::from_bytes(r.dtype, r.shape, Bytes::from(r.data)).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_size_is_a_clear_error() {
        let err = Tensor::from_bytes(DType::Float32, [2, 2], Bytes::from(vec![0u8; 12])).unwrap_err();
        assert!(err.to_string().contains("needs 16"), "{err}");
    }

    #[test]
    fn misaligned_bytes_are_realigned() {
        let raw = Bytes::from(vec![0u8; 17]);
        let t = Tensor::from_bytes(DType::Float32, [4], raw.slice(1..)).unwrap();
        assert_eq!(t.as_f32().unwrap(), &[0.0; 4]);
    }

    #[test]
    fn f16_converts_to_f32() {
        let t = Tensor::from_f16([2], &[f16::from_f32(1.5), f16::from_f32(-2.0)]).unwrap();
        assert_eq!(t.to_f32_vec().unwrap(), vec![1.5, -2.0]);
    }

    #[test]
    fn serde_round_trip() {
        let t = Tensor::from_i32([3], &[1, 2, 3]).unwrap();
        let json = serde_json::to_string(&t).unwrap();
        let back: Tensor = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
    }
}
