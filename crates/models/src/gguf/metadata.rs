//! GGUF metadata values: the twelve scalar/string types and (nested) arrays.

use super::reader::{invalid, Reader};
use crate::error::Result;

/// Arrays of arrays are legal GGUF; real files nest at most once, and a cap
/// keeps a hostile file from recursing the parser off the stack.
const MAX_ARRAY_DEPTH: usize = 4;

/// The type tag of a metadata value, as numbered by the GGUF specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// 0: unsigned 8-bit integer.
    U8,
    /// 1: signed 8-bit integer.
    I8,
    /// 2: unsigned 16-bit integer.
    U16,
    /// 3: signed 16-bit integer.
    I16,
    /// 4: unsigned 32-bit integer.
    U32,
    /// 5: signed 32-bit integer.
    I32,
    /// 6: 32-bit float.
    F32,
    /// 7: boolean, one byte holding 0 or 1.
    Bool,
    /// 8: length-prefixed UTF-8 string.
    String,
    /// 9: typed array.
    Array,
    /// 10: unsigned 64-bit integer.
    U64,
    /// 11: signed 64-bit integer.
    I64,
    /// 12: 64-bit float.
    F64,
}

impl ValueType {
    /// The type for a GGUF type id, if it is one.
    pub fn from_id(id: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The GGUF type id.
    pub fn id(self) -> u32 {
        use ValueType::*;
        match self {
            U8 => 0,
            I8 => 1,
            U16 => 2,
            I16 => 3,
            U32 => 4,
            I32 => 5,
            F32 => 6,
            Bool => 7,
            String => 8,
            Array => 9,
            U64 => 10,
            I64 => 11,
            F64 => 12,
        }
    }

    /// The fewest bytes one value of this type occupies; an array length is
    /// checked against `remaining / min_size` before the array is allocated.
    fn min_size(self) -> u64 {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 | String => 8,
            Array => 12,
        }
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    /// Unsigned 8-bit integer.
    U8(u8),
    /// Signed 8-bit integer.
    I8(i8),
    /// Unsigned 16-bit integer.
    U16(u16),
    /// Signed 16-bit integer.
    I16(i16),
    /// Unsigned 32-bit integer.
    U32(u32),
    /// Signed 32-bit integer.
    I32(i32),
    /// 32-bit float.
    F32(f32),
    /// Boolean.
    Bool(bool),
    /// UTF-8 string.
    String(String),
    /// Array whose elements all have type `elem` (possibly itself `Array`).
    Array {
        /// The declared element type.
        elem: ValueType,
        /// The elements.
        items: Vec<MetadataValue>,
    },
    /// Unsigned 64-bit integer.
    U64(u64),
    /// Signed 64-bit integer.
    I64(i64),
    /// 64-bit float.
    F64(f64),
}

impl MetadataValue {
    /// The type tag of this value.
    pub fn value_type(&self) -> ValueType {
        match self {
            MetadataValue::U8(_) => ValueType::U8,
            MetadataValue::I8(_) => ValueType::I8,
            MetadataValue::U16(_) => ValueType::U16,
            MetadataValue::I16(_) => ValueType::I16,
            MetadataValue::U32(_) => ValueType::U32,
            MetadataValue::I32(_) => ValueType::I32,
            MetadataValue::F32(_) => ValueType::F32,
            MetadataValue::Bool(_) => ValueType::Bool,
            MetadataValue::String(_) => ValueType::String,
            MetadataValue::Array { .. } => ValueType::Array,
            MetadataValue::U64(_) => ValueType::U64,
            MetadataValue::I64(_) => ValueType::I64,
            MetadataValue::F64(_) => ValueType::F64,
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetadataValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// Any integer value as u64, if it is non-negative. Writers disagree on
    /// integer widths (`general.alignment` is u32, counts are often u64), so
    /// readers accept every width that holds the value exactly.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetadataValue::U8(v) => Some(v.into()),
            MetadataValue::U16(v) => Some(v.into()),
            MetadataValue::U32(v) => Some(v.into()),
            MetadataValue::U64(v) => Some(v),
            MetadataValue::I8(v) => u64::try_from(v).ok(),
            MetadataValue::I16(v) => u64::try_from(v).ok(),
            MetadataValue::I32(v) => u64::try_from(v).ok(),
            MetadataValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer value as i64, if it fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            MetadataValue::I8(v) => Some(v.into()),
            MetadataValue::I16(v) => Some(v.into()),
            MetadataValue::I32(v) => Some(v.into()),
            MetadataValue::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }

    /// Any integer value as u32, if it fits.
    pub fn as_u32(&self) -> Option<u32> {
        self.as_u64().and_then(|v| u32::try_from(v).ok())
    }

    /// A float value (either width) as f64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetadataValue::F32(v) => Some(v.into()),
            MetadataValue::F64(v) => Some(v),
            _ => None,
        }
    }

    /// A float value as f32 (f64 values are rounded).
    pub fn as_f32(&self) -> Option<f32> {
        self.as_f64().map(|v| v as f32)
    }

    /// The boolean, if this is a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetadataValue::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[MetadataValue]> {
        match self {
            MetadataValue::Array { items, .. } => Some(items),
            _ => None,
        }
    }

    /// Reads one value of type `ty` at the cursor.
    pub(crate) fn read(r: &mut Reader<'_>, ty: ValueType, depth: usize) -> Result<MetadataValue> {
        use MetadataValue as V;
        let at = r.pos();
        Ok(match ty {
            ValueType::U8 => V::U8(r.u8("u8 value")?),
            ValueType::I8 => V::I8(r.u8("i8 value")? as i8),
            ValueType::U16 => V::U16(r.u16("u16 value")?),
            ValueType::I16 => V::I16(r.u16("i16 value")? as i16),
            ValueType::U32 => V::U32(r.u32("u32 value")?),
            ValueType::I32 => V::I32(r.u32("i32 value")? as i32),
            ValueType::F32 => V::F32(f32::from_bits(r.u32("f32 value")?)),
            ValueType::U64 => V::U64(r.u64("u64 value")?),
            ValueType::I64 => V::I64(r.u64("i64 value")? as i64),
            ValueType::F64 => V::F64(f64::from_bits(r.u64("f64 value")?)),
            ValueType::Bool => match r.u8("bool value")? {
                0 => V::Bool(false),
                1 => V::Bool(true),
                b => return Err(invalid(at, format!("bool value must be 0 or 1, found {b}"))),
            },
            ValueType::String => V::String(r.string("string value")?),
            ValueType::Array => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(invalid(at, format!("arrays nested deeper than {MAX_ARRAY_DEPTH} levels")));
                }
                let elem_id = r.u32("array element type")?;
                let elem = ValueType::from_id(elem_id)
                    .ok_or_else(|| invalid(at, format!("unknown array element type id {elem_id}")))?;
                let len_at = r.pos();
                let len = r.u64("array length")?;
                // Checked before allocating: a length of 2^60 is an error here,
                // never a 2^60-element Vec.
                if len > r.remaining() as u64 / elem.min_size() {
                    return Err(invalid(
                        len_at,
                        format!("array of {len} {elem:?} values cannot fit in the {} bytes left", r.remaining()),
                    ));
                }
                let mut items = Vec::with_capacity(len as usize);
                for _ in 0..len {
                    items.push(MetadataValue::read(r, elem, depth + 1)?);
                }
                V::Array { elem, items }
            }
        })
    }
}

/// Reads one key/value pair: key string, type id, value.
pub(crate) fn read_entry(r: &mut Reader<'_>) -> Result<(String, MetadataValue)> {
    let key = r.string("metadata key")?;
    let at = r.pos();
    let id = r.u32("metadata value type")?;
    let ty = ValueType::from_id(id)
        .ok_or_else(|| invalid(at, format!("metadata {key:?} has unknown value type id {id}")))?;
    let value = MetadataValue::read(r, ty, 0)?;
    Ok((key, value))
}
