//! The GGUF reader: files written by a small writer in this test (covering
//! every metadata type and the dequantized dtypes with exactly known values),
//! a bad-input matrix asserting on each error message, and seeded mutations
//! of a valid file that must never panic, allocate hugely or hang.

use half::f16;
use ipfs_accelerate_models::gguf::{GgmlDType, GgufFile, MetadataValue, ValueType};
use ipfs_accelerate_models::Error;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Records the largest single allocation made on the current thread, so the
/// mutation test can prove no allocation is sized by a corrupt length field.
struct TrackingAlloc;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; only records sizes in a const
// thread-local Cell, which never allocates.
unsafe impl GlobalAlloc for TrackingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|m| m.set(m.get().max(layout.size())));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|m| m.set(m.get().max(new_size)));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: TrackingAlloc = TrackingAlloc;

// ---------------------------------------------------------------- writer --

#[path = "common/gguf_writer.rs"]
mod gguf_writer;
use gguf_writer::{write_gguf, T};

// -------------------------------------------------- known tensor values --

fn h(x: f32) -> [u8; 2] {
    f16::from_f32(x).to_le_bytes()
}

/// Two q8_0 blocks (scales 0.5 and -2) of q = -16..16, and their values.
fn q8_0() -> (Vec<u8>, Vec<f32>) {
    let (mut bytes, mut want) = (Vec::new(), Vec::new());
    for d in [0.5f32, -2.0] {
        bytes.extend(h(d));
        for q in -16i8..16 {
            bytes.push(q as u8);
            want.push(f32::from(q) * d);
        }
    }
    (bytes, want)
}

/// Two q4_0 blocks: low nibble of byte j is j (value j of the block), high
/// nibble is 15 - j (value 16 + j); x = (q - 8) * d.
fn q4_0() -> (Vec<u8>, Vec<f32>) {
    let (mut bytes, mut want) = (Vec::new(), vec![]);
    for d in [0.25f32, 3.0] {
        bytes.extend(h(d));
        bytes.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        want.extend((0..16).map(|j| (j as f32 - 8.0) * d));
        want.extend((0..16).map(|j| ((15 - j) as f32 - 8.0) * d));
    }
    (bytes, want)
}

/// Two q4_1 blocks, same nibbles as q4_0; x = q * d + m.
fn q4_1() -> (Vec<u8>, Vec<f32>) {
    let (mut bytes, mut want) = (Vec::new(), vec![]);
    for (d, m) in [(0.5f32, -1.0f32), (0.125, 4.0)] {
        bytes.extend(h(d));
        bytes.extend(h(m));
        bytes.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        want.extend((0..16).map(|j| j as f32 * d + m));
        want.extend((0..16).map(|j| (15 - j) as f32 * d + m));
    }
    (bytes, want)
}

fn f16_values() -> (Vec<u8>, Vec<f32>) {
    let want = vec![0.0, 1.5, -2.25, 65504.0, 0.099975586, -0.0];
    (want.iter().flat_map(|&x| h(x)).collect(), want)
}

fn f32_values() -> (Vec<u8>, Vec<f32>) {
    let want = vec![1.0, -3.5, 1e-20, 123456.78, f32::MAX, 0.1];
    (want.iter().flat_map(|x| x.to_le_bytes()).collect(), want)
}

/// One value of every metadata type, an array of each kind, and a nested array.
fn all_metadata() -> Vec<(&'static str, MetadataValue)> {
    use MetadataValue as V;
    let s = |x: &str| V::String(x.to_string());
    vec![
        ("general.architecture", s("llama")),
        ("t.u8", V::U8(200)),
        ("t.i8", V::I8(-100)),
        ("t.u16", V::U16(60000)),
        ("t.i16", V::I16(-30000)),
        ("t.u32", V::U32(4_000_000_000)),
        ("t.i32", V::I32(-2_000_000_000)),
        ("t.f32", V::F32(1.25)),
        ("t.bool", V::Bool(true)),
        ("t.string", s("héllo ✓")),
        ("t.u64", V::U64(u64::MAX)),
        ("t.i64", V::I64(i64::MIN)),
        ("t.f64", V::F64(-0.1)),
        ("t.empty_string", s("")),
        ("tokenizer.ggml.tokens", V::Array { elem: ValueType::String, items: vec![s("<s>"), s("a"), s("ab")] }),
        ("t.f32s", V::Array { elem: ValueType::F32, items: vec![V::F32(0.5), V::F32(-1.0)] }),
        ("t.i32s", V::Array { elem: ValueType::I32, items: vec![V::I32(1), V::I32(-2), V::I32(3)] }),
        ("t.bools", V::Array { elem: ValueType::Bool, items: vec![V::Bool(false), V::Bool(true)] }),
        ("t.empty", V::Array { elem: ValueType::U8, items: vec![] }),
        (
            "t.nested",
            V::Array {
                elem: ValueType::Array,
                items: vec![
                    V::Array { elem: ValueType::U64, items: vec![V::U64(7)] },
                    V::Array { elem: ValueType::String, items: vec![s("x")] },
                ],
            },
        ),
    ]
}

/// Five tensors, one per dequantized dtype, with their expected values.
fn all_tensors() -> (Vec<T>, Vec<Vec<f32>>) {
    let mut tensors = vec![];
    let mut wants = vec![];
    for (name, dims, type_id, (bytes, want)) in [
        ("f32", vec![3, 2], 0, f32_values()),
        ("f16", vec![6], 1, f16_values()),
        ("q4_0", vec![32, 2], 2, q4_0()),
        ("q4_1", vec![64], 3, q4_1()),
        ("q8_0", vec![32, 1, 2], 8, q8_0()),
    ] {
        tensors.push(T { name, dims, type_id, data: bytes });
        wants.push(want);
    }
    (tensors, wants)
}

fn valid_file(version: u32) -> Vec<u8> {
    write_gguf(version, &all_metadata(), &all_tensors().0, 32)
}

// ----------------------------------------------------------------- tests --

#[test]
fn round_trip_metadata_and_tensors() {
    for version in [2, 3] {
        let bytes = valid_file(version);
        let file = GgufFile::parse(&bytes).unwrap();
        assert_eq!(file.version(), version);
        assert_eq!(file.alignment(), 32);
        assert_eq!(file.data_offset() % 32, 0);
        let got: Vec<(String, MetadataValue)> =
            file.metadata_entries().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let want: Vec<(String, MetadataValue)> = all_metadata().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        assert_eq!(got, want);

        let (tensors, wants) = all_tensors();
        assert_eq!(file.tensors().len(), tensors.len());
        for (t, want) in tensors.iter().zip(&wants) {
            let info = file.tensor(t.name).unwrap();
            assert_eq!(info.dims, t.dims);
            assert_eq!(info.dtype.id(), t.type_id);
            assert_eq!(info.offset % 32, 0);
            assert_eq!(info.n_elements as usize, want.len());
            assert_eq!(file.tensor_bytes(t.name).unwrap(), &t.data[..], "{}", t.name);
            let got = file.tensor_f32(t.name).unwrap();
            // Exact: every expectation is representable and computed the same way.
            assert_eq!(
                got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                "{}",
                t.name
            );
        }
        assert_eq!(file.tensor("q8_0").unwrap().shape(), vec![2, 1, 32]);
    }
}

#[test]
fn typed_getters() {
    let file = GgufFile::parse(&valid_file(3)).unwrap();
    assert_eq!(file.get_str("general.architecture"), Some("llama"));
    assert_eq!(file.get_u32("t.u8"), Some(200));
    assert_eq!(file.get_u32("t.u32"), Some(4_000_000_000));
    assert_eq!(file.get_u32("t.u64"), None, "u64::MAX does not fit a u32");
    assert_eq!(file.get_u64("t.u64"), Some(u64::MAX));
    assert_eq!(file.get_u32("t.i8"), None, "negative");
    assert_eq!(file.get_i64("t.i64"), Some(i64::MIN));
    assert_eq!(file.get_i64("t.i16"), Some(-30000));
    assert_eq!(file.get_f32("t.f32"), Some(1.25));
    assert_eq!(file.get_f32("t.f64"), Some(-0.1f64 as f32));
    assert_eq!(file.get_bool("t.bool"), Some(true));
    assert_eq!(file.get_str("t.u8"), None, "wrong type");
    assert_eq!(file.get_str("missing"), None);
    assert_eq!(file.get_str_array("tokenizer.ggml.tokens"), Some(vec!["<s>", "a", "ab"]));
    assert_eq!(file.get_str_array("t.f32s"), None);
    assert_eq!(file.get_array("t.i32s").unwrap()[1], MetadataValue::I32(-2));
    assert_eq!(file.metadata("t.nested").unwrap().as_array().unwrap()[1].as_array().unwrap()[0].as_str(), Some("x"));
    assert_eq!(file.metadata("t.empty").unwrap().value_type(), ValueType::Array);
}

#[test]
fn open_maps_a_file_and_errors_name_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, valid_file(3)).unwrap();
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.tensor_f32("q4_0").unwrap(), all_tensors().1[2]);

    let bad = dir.path().join("bad.gguf");
    std::fs::write(&bad, b"GGUF\x09\0\0\0").unwrap();
    let msg = GgufFile::open(&bad).unwrap_err().to_string();
    assert!(msg.contains("bad.gguf") && msg.contains("unsupported GGUF version 9"), "{msg}");
    assert!(matches!(GgufFile::open(&dir.path().join("none.gguf")), Err(Error::Io { .. })));
}

#[test]
fn custom_alignment_and_missing_or_undequantizable_tensors() {
    let mut md = all_metadata();
    md.push(("general.alignment", MetadataValue::U32(64)));
    let (mut tensors, wants) = all_tensors();
    // A Q4_K tensor parses (its layout is known) but is not dequantized yet.
    tensors.push(T { name: "q4k", dims: vec![256], type_id: 12, data: vec![0; 144] });
    let file = GgufFile::parse(&write_gguf(3, &md, &tensors, 64)).unwrap();
    assert_eq!(file.alignment(), 64);
    assert_eq!(file.data_offset() % 64, 0);
    for (t, want) in tensors.iter().zip(&wants) {
        assert_eq!(&file.tensor_f32(t.name).unwrap(), want);
    }
    assert_eq!(file.tensor("q4k").unwrap().dtype, GgmlDType::Q4K);
    assert_eq!(file.tensor_bytes("q4k").unwrap().len(), 144);
    let msg = file.tensor_f32("q4k").unwrap_err().to_string();
    assert!(msg.contains("q4k") && msg.contains("Q4K"), "{msg}");
    let msg = file.tensor_bytes("nope").unwrap_err().to_string();
    assert!(msg.contains("nope") && msg.contains("not found"), "{msg}");
}

/// Parses `bytes`, expecting a GGUF error whose message holds `want`.
fn expect_err(bytes: &[u8], want: &str) {
    match GgufFile::parse(bytes) {
        Ok(_) => panic!("parsed a file that should fail with {want:?}"),
        Err(e @ Error::Gguf { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(want), "expected {want:?} in: {msg}");
            assert!(msg.contains("at byte offset"), "{msg}");
        }
        Err(e) => panic!("expected a GGUF error with {want:?}, got {e}"),
    }
}

/// A header (version 3) followed by `rest`.
fn with_header(tensors: u64, kvs: u64, rest: &[u8]) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend(tensors.to_le_bytes());
    out.extend(kvs.to_le_bytes());
    out.extend(rest);
    out.resize(out.len().max(200), 0);
    out
}

fn one_tensor(name: &str, dims: &[u64], type_id: u32, offset: u64, data_len: usize) -> Vec<u8> {
    let t =
        T { name: Box::leak(name.to_string().into_boxed_str()), dims: dims.to_vec(), type_id, data: vec![0; data_len] };
    let mut bytes = write_gguf(3, &[], &[t], 32);
    // Patch the offset field: the 8 bytes right after the type id.
    let at = 24 + 8 + name.len() + 4 + 8 * dims.len() + 4;
    bytes[at..at + 8].copy_from_slice(&offset.to_le_bytes());
    bytes
}

#[test]
fn bad_input_matrix() {
    let huge = 1u64 << 60;
    expect_err(b"GGUX\x03\0\0\0", "bad magic");
    expect_err(b"GG", "truncated: magic");
    expect_err(b"GGUF\x01\0\0\0", "unsupported GGUF version 1");
    expect_err(b"GGUF\0\0\0\x03", "big-endian");
    expect_err(b"GGUF\x03\0\0\0\x01", "truncated: tensor count");
    expect_err(&with_header(huge, 0, &[]), "cannot fit");
    expect_err(&with_header(0, huge, &[]), "cannot fit");
    expect_err(&with_header(u64::MAX, u64::MAX, &[]), "cannot fit");

    // A key whose length is 2^60: an error, not a 2^60-byte allocation.
    expect_err(&with_header(0, 1, &huge.to_le_bytes()), "truncated: metadata key needs 1152921504606846976 bytes");
    let kv = |ty: u32, value: &[u8]| {
        let mut v = 1u64.to_le_bytes().to_vec();
        v.push(b'k');
        v.extend(ty.to_le_bytes());
        v.extend(value);
        v
    };
    expect_err(&with_header(0, 1, &kv(8, &huge.to_le_bytes())), "truncated: string value needs");
    expect_err(&with_header(0, 1, &kv(13, &[])), "unknown value type id 13");
    let mut arr = 99u32.to_le_bytes().to_vec();
    arr.extend(1u64.to_le_bytes());
    expect_err(&with_header(0, 1, &kv(9, &arr)), "unknown array element type id 99");
    let mut arr = 4u32.to_le_bytes().to_vec();
    arr.extend(huge.to_le_bytes());
    expect_err(&with_header(0, 1, &kv(9, &arr)), "array of 1152921504606846976 U32 values cannot fit");
    let nested: Vec<u8> = (0..6).flat_map(|_| [9u8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]).collect();
    expect_err(&with_header(0, 1, &kv(9, &nested)), "nested deeper");
    expect_err(&with_header(0, 1, &kv(7, &[2])), "bool value must be 0 or 1");
    let mut bad_utf8 = 2u64.to_le_bytes().to_vec();
    bad_utf8.extend([0xff, 0xfe]);
    expect_err(&with_header(0, 1, &kv(8, &bad_utf8)), "not valid UTF-8");

    // Duplicates and alignment.
    let md = [("a", MetadataValue::U8(1)), ("a", MetadataValue::U8(2))];
    expect_err(&write_gguf(3, &md, &[], 32), "duplicate metadata key \"a\"");
    let t = |name| T { name, dims: vec![4], type_id: 0, data: vec![0; 16] };
    expect_err(&write_gguf(3, &[], &[t("w"), t("w")], 32), "duplicate tensor name \"w\"");
    for bad in [MetadataValue::U32(3), MetadataValue::U32(0), MetadataValue::String("32".into())] {
        expect_err(&write_gguf(3, &[("general.alignment", bad)], &[], 32), "general.alignment must be a power-of-two");
    }

    // Tensor infos.
    expect_err(&one_tensor("w", &[4], 99, 0, 16), "unknown or unsupported ggml type id 99");
    expect_err(&one_tensor("w", &[4], 4, 0, 16), "unknown or unsupported ggml type id 4");
    expect_err(&one_tensor("w", &[1 << 32, 1 << 32, 1 << 32], 0, 0, 0), "overflow");
    expect_err(&one_tensor("w", &[1 << 62], 0, 0, 0), "overflow: too many bytes");
    expect_err(&one_tensor("w", &[1, 1, 1, 1, 1], 0, 0, 4), "5 dimensions; at most 4");
    expect_err(&one_tensor("w", &[16], 8, 0, 34), "inner dimension 16, not a multiple of its block size 32");
    expect_err(&one_tensor("w", &[4], 0, 4, 16), "data offset 4 is not a multiple of the alignment 32");
    expect_err(&one_tensor("w", &[4], 0, 32, 16), "runs past the end of the file");
    expect_err(&one_tensor("w", &[4], 0, u64::MAX - 31, 16), "runs past the end of the file");
    expect_err(&one_tensor("w", &[5], 0, 0, 16), "runs past the end of the file");
    expect_err(&with_header(1, 0, &huge.to_le_bytes()), "truncated: tensor name needs 1152921504606846976 bytes");

    // Every truncation of a valid file is an error, never a panic.
    let valid = valid_file(3);
    for len in 0..valid.len() {
        assert!(matches!(GgufFile::parse(&valid[..len]), Err(Error::Gguf { .. })), "prefix of {len} bytes parsed");
    }
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One random corruption: bit flips, a truncation, a length-like field
/// overwritten with a boundary value, or a span deleted or duplicated.
fn mutate(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let mut b = valid.to_vec();
    for _ in 0..1 + rng.below(3) {
        match rng.below(5) {
            0 => {
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(b.len().max(1));
                    if let Some(x) = b.get_mut(i) {
                        *x ^= 1 << rng.below(8);
                    }
                }
            }
            1 => b.truncate(rng.below(b.len() + 1)),
            2 if b.len() >= 8 => {
                let values = [0, 1, 31, 32, 255, u32::MAX as u64, 1 << 32, 1 << 60, u64::MAX - 7, u64::MAX, rng.next()];
                let v = values[rng.below(values.len())];
                let i = rng.below(b.len() - 7);
                // Half the time a u32-sized write (type ids, dim counts).
                let n = if rng.below(2) == 0 { 8 } else { 4 };
                b[i..i + n].copy_from_slice(&v.to_le_bytes()[..n]);
            }
            3 if !b.is_empty() => {
                let i = rng.below(b.len());
                let n = rng.below(b.len() - i + 1).min(64);
                b.drain(i..i + n);
            }
            _ if !b.is_empty() => {
                let i = rng.below(b.len());
                let n = rng.below(b.len() - i + 1).min(64);
                let span = b[i..i + n].to_vec();
                b.splice(i..i, span);
            }
            _ => {}
        }
    }
    b
}

#[test]
fn seeded_mutations_never_panic_allocate_hugely_or_hang() {
    let start = std::time::Instant::now();
    let seeds = [valid_file(3), valid_file(2)];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut parsed, mut rejected) = (0, 0);
    for i in 0..4000 {
        let input = mutate(&mut rng, &seeds[i % 2]);
        LARGEST.with(|m| m.set(0));
        let outcome = std::panic::catch_unwind(|| match GgufFile::parse(&input) {
            Ok(file) => {
                for t in file.tensors() {
                    let _ = file.tensor_f32(&t.name);
                }
                true
            }
            Err(e) => {
                assert!(matches!(e, Error::Gguf { .. }), "non-GGUF error {e}");
                false
            }
        });
        match outcome {
            Ok(true) => parsed += 1,
            Ok(false) => rejected += 1,
            Err(_) => panic!(
                "mutation {i} panicked; input (hex): {}",
                input.iter().map(|b| format!("{b:02x}")).collect::<String>()
            ),
        }
        // Values (32 bytes each) and dequantized floats can exceed the input
        // size by a small factor; never by a length field's worth.
        let largest = LARGEST.with(|m| m.get());
        assert!(
            largest <= 64 * input.len() + 4096,
            "mutation {i}: a {largest}-byte allocation for {} input bytes",
            input.len()
        );
    }
    assert!(parsed > 0 && rejected > 1000, "parsed {parsed}, rejected {rejected}");
    assert!(start.elapsed().as_secs() < 60, "4000 parses took {:?}", start.elapsed());
}

/// A file written by llama.cpp's own Python writer (`gguf` 0.19.0, by
/// scripts/make-gguf-fixtures.py), with gguf-py's own dequantized values.
#[test]
fn reads_a_file_written_by_llama_cpp_gguf_py() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/gguf");
    let file = GgufFile::open(&dir.join("llamacpp-tiny.gguf")).unwrap();
    assert_eq!(file.version(), 3);
    assert_eq!(file.get_str("general.architecture"), Some("llama"));
    assert_eq!(file.get_str("general.name"), Some("tiny"));
    assert_eq!(file.get_u32("llama.block_count"), Some(2));
    assert_eq!(file.get_f32("llama.attention.layer_norm_rms_epsilon"), Some(1e-5));
    assert_eq!(file.get_bool("tokenizer.ggml.add_bos_token"), Some(true));
    assert_eq!(file.get_i64("test.i8"), Some(-5));
    assert_eq!(file.get_u64("test.u64"), Some(1 << 40));
    assert_eq!(file.metadata("test.f64"), Some(&MetadataValue::F64(0.25)));
    assert_eq!(file.get_str_array("tokenizer.ggml.tokens"), Some(vec!["<s>", "</s>", "hello", "▁world"]));
    let scores: Vec<f32> =
        file.get_array("tokenizer.ggml.scores").unwrap().iter().map(|v| v.as_f32().unwrap()).collect();
    assert_eq!(scores, [0.0, -1.0, -2.5, -3.0]);
    let ints: Vec<i64> = file.get_array("test.ints").unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(ints, [1, -2, 3]);

    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("llamacpp-tiny.json")).unwrap()).unwrap();
    let tensors = golden["tensors"].as_object().unwrap();
    assert_eq!(file.tensors().len(), tensors.len());
    for (name, want) in tensors {
        let info = file.tensor(name).unwrap();
        let dims: Vec<u64> = want["dims"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
        assert_eq!(info.dims, dims, "{name}");
        assert_eq!(u64::from(info.dtype.id()), want["type_id"].as_u64().unwrap(), "{name}");
        let want: Vec<f32> = want["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!(file.tensor_f32(name).unwrap(), want, "{name}");
    }
}
