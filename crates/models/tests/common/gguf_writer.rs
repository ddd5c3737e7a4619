//! A small GGUF writer shared by the tests that need GGUF files made to
//! order (the reader's tests in `gguf.rs`, the loader's hostile-input tests
//! in `llm_hostile_gguf.rs`). Included with `#[path]`, so each test crate
//! compiles only what it uses.
#![allow(dead_code)]

use ipfs_accelerate_models::gguf::MetadataValue;

/// A tensor for the writer: name, ggml dims, type id and raw bytes.
pub struct T {
    pub name: &'static str,
    pub dims: Vec<u64>,
    pub type_id: u32,
    pub data: Vec<u8>,
}

pub fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

pub fn put_value(out: &mut Vec<u8>, v: &MetadataValue) {
    match v {
        MetadataValue::U8(x) => out.push(*x),
        MetadataValue::I8(x) => out.push(*x as u8),
        MetadataValue::U16(x) => out.extend(x.to_le_bytes()),
        MetadataValue::I16(x) => out.extend(x.to_le_bytes()),
        MetadataValue::U32(x) => out.extend(x.to_le_bytes()),
        MetadataValue::I32(x) => out.extend(x.to_le_bytes()),
        MetadataValue::F32(x) => out.extend(x.to_le_bytes()),
        MetadataValue::Bool(x) => out.push(u8::from(*x)),
        MetadataValue::String(s) => put_str(out, s),
        MetadataValue::Array { elem, items } => {
            out.extend(elem.id().to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            items.iter().for_each(|i| put_value(out, i));
        }
        MetadataValue::U64(x) => out.extend(x.to_le_bytes()),
        MetadataValue::I64(x) => out.extend(x.to_le_bytes()),
        MetadataValue::F64(x) => out.extend(x.to_le_bytes()),
    }
}

/// Writes a GGUF file: tensors laid out in order, each at the next multiple
/// of `alignment` in the data section, no padding after the last one.
pub fn write_gguf(version: u32, metadata: &[(&str, MetadataValue)], tensors: &[T], alignment: usize) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend(version.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        put_str(&mut out, k);
        out.extend(v.value_type().id().to_le_bytes());
        put_value(&mut out, v);
    }
    let mut data = Vec::new();
    for t in tensors {
        data.resize(data.len().next_multiple_of(alignment), 0);
        put_str(&mut out, t.name);
        out.extend((t.dims.len() as u32).to_le_bytes());
        t.dims.iter().for_each(|d| out.extend(d.to_le_bytes()));
        out.extend(t.type_id.to_le_bytes());
        out.extend((data.len() as u64).to_le_bytes());
        data.extend(&t.data);
    }
    out.resize(out.len().next_multiple_of(alignment), 0);
    out.extend(data);
    out
}
