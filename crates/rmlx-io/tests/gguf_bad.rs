//! GGUF parsing: a valid file round-trips; malformed ones give a clear error, never a panic
//! and never an allocation sized by the file.

mod common;
use common::*;
use rmlx_core::{DType, GgmlType, QuantFormat};
use rmlx_io::{GgufFile, MetaValue};
use std::sync::Arc;

fn open(bytes: Vec<u8>) -> rmlx_core::Result<GgufFile> {
    GgufFile::from_bytes("t.gguf", Arc::new(bytes))
}

fn err(bytes: Vec<u8>) -> String {
    match open(bytes) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn assert_has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "'{msg}' should mention '{p}'");
    }
}

fn valid() -> Gguf {
    let mut g = Gguf::default();
    g.kv_str("general.architecture", "llama")
        .kv_u32("llama.block_count", 2)
        .kv_f32("llama.rope.freq_base", 10000.0)
        .kv_str_array("tokenizer.ggml.tokens", &["a", "b", "c"]);
    g.tensor("w", &[2, 3], 0, &f32_bytes(&[1., 2., 3., 4., 5., 6.]))
        .tensor("q", &[32, 2], 8, &[0u8; 68]);
    g
}

#[test]
fn valid_file_and_getters() {
    for version in [2, 3] {
        let mut g = valid();
        g.version = version;
        let f = open(g.build()).unwrap();
        assert_eq!(f.version(), version);
        assert_eq!(f.architecture(), Some("llama"));
        let m = f.metadata();
        assert_eq!(m.get_u32("llama.block_count").unwrap(), 2);
        assert_eq!(m.get_u64("llama.block_count").unwrap(), 2);
        assert_eq!(m.get_f32("llama.rope.freq_base").unwrap(), 10000.0);
        assert_eq!(
            m.get_str_array("tokenizer.ggml.tokens").unwrap(),
            vec!["a", "b", "c"]
        );
        assert!(m
            .get_str("llama.block_count")
            .unwrap_err()
            .to_string()
            .contains("expected a string, found u32"));
        assert!(m
            .get_u32("nope")
            .unwrap_err()
            .to_string()
            .contains("missing key 'nope'"));
        // GGUF dims are innermost-first: [2, 3] is a 3×2 row-major tensor.
        let w = f.get("w").unwrap();
        assert_eq!((w.shape(), w.dtype()), (&[3usize, 2][..], DType::F32));
        assert_eq!(w.to_vec::<f32>().unwrap(), vec![1., 2., 3., 4., 5., 6.]);
        let q = f.get_quantized("q").unwrap();
        assert_eq!(q.format, QuantFormat::Gguf(GgmlType::Q8_0));
        assert_eq!(q.shape, vec![2, 32]);
        assert_eq!(q.packed.shape(), &[2, 34]);
        assert!(f
            .get("q")
            .unwrap_err()
            .to_string()
            .contains("use get_quantized"));
    }
}

#[test]
fn nested_arrays_and_all_scalar_types() {
    let mut g = Gguf::default();
    // array of 2 arrays of u8: [[1, 2], [3]]
    let mut v = 9u32.to_le_bytes().to_vec();
    v.extend_from_slice(&2u64.to_le_bytes());
    for items in [&[1u8, 2][..], &[3u8][..]] {
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&(items.len() as u64).to_le_bytes());
        v.extend_from_slice(items);
    }
    g.kv_raw("nested", 9, &v)
        .kv_raw("i8", 1, &[0xff])
        .kv_raw("i16", 3, &(-2i16).to_le_bytes())
        .kv_raw("i64", 11, &(-5i64).to_le_bytes())
        .kv_raw("f64", 12, &1.5f64.to_le_bytes())
        .kv_raw("b", 7, &[1]);
    let f = open(g.build()).unwrap();
    let m = f.metadata();
    let nested = m.get_array("nested").unwrap();
    assert_eq!(
        nested[0],
        MetaValue::Array(vec![MetaValue::U8(1), MetaValue::U8(2)])
    );
    assert_eq!(m.get_i32("i8").unwrap(), -1);
    assert_eq!(m.get_i64("i16").unwrap(), -2);
    assert!(m
        .get_u32("i64")
        .unwrap_err()
        .to_string()
        .contains("out of range"));
    assert_eq!(m.get_f64("f64").unwrap(), 1.5);
    assert!(m.get_bool("b").unwrap());
}

#[test]
fn truncated_everywhere() {
    let full = valid().build();
    // Cut inside the header at every length: always an error, never a panic.
    let header_end = full.len() - 24 - 68 - 8;
    for n in 0..header_end {
        let e = err(full[..n].to_vec());
        assert!(e.starts_with("t.gguf: gguf:"), "{e}");
    }
    assert_has(
        &err(full[..full.len() - 1].to_vec()),
        &["tensor 'q'", "past the end of the data section"],
    );
    assert_has(&err(full[..10].to_vec()), &["truncated", "tensor count"]);
}

#[test]
fn bad_magic_and_version() {
    assert_has(
        &err(b"GGML\x03\0\0\0".to_vec()),
        &["expected magic \"GGUF\""],
    );
    let mut g = valid();
    g.version = 1;
    assert_has(&err(g.build()), &["version 1 is not supported"]);
    g.version = 3u32.swap_bytes();
    assert_has(&err(g.build()), &["big-endian"]);
    g.version = 7;
    assert_has(&err(g.build()), &["expected version 2 or 3, found 7"]);
}

#[test]
fn huge_counts_are_rejected_before_allocating() {
    let mut g = valid();
    g.n_tensors = u64::MAX;
    assert_has(
        &err(g.build()),
        &["tensor count 18446744073709551615 cannot fit"],
    );
    let mut g = valid();
    g.n_kv = 1 << 60;
    assert_has(&err(g.build()), &["metadata key/value count", "cannot fit"]);

    let mut g = Gguf::default();
    let mut v = Vec::new();
    v.extend_from_slice(&(u64::MAX - 3).to_le_bytes());
    g.kv_raw("s", 8, &v);
    assert_has(&err(g.build()), &["length of value of 's'", "cannot fit"]);

    let mut g = Gguf::default();
    let mut v = 4u32.to_le_bytes().to_vec();
    v.extend_from_slice(&(1u64 << 40).to_le_bytes());
    g.kv_raw("arr", 9, &v);
    assert_has(
        &err(g.build()),
        &["array 'arr'", "count 1099511627776 cannot fit"],
    );

    let mut g = Gguf::default();
    g.kv.extend_from_slice(&(1u64 << 50).to_le_bytes());
    g.kv.extend_from_slice(&[0; 64]);
    g.n_kv = 1;
    assert_has(
        &err(g.build()),
        &["length of metadata key #0", "cannot fit"],
    );

    let mut g = Gguf::default();
    g.tensor_at("t", &[1; 9], 0, 0);
    assert_has(
        &err(g.build()),
        &["tensor 't'", "at most 4 dimensions, found 9"],
    );
}

#[test]
fn deep_nesting_is_rejected() {
    let mut g = Gguf::default();
    let mut v = Vec::new();
    for _ in 0..100 {
        v.extend_from_slice(&9u32.to_le_bytes());
        v.extend_from_slice(&1u64.to_le_bytes());
    }
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes());
    g.kv_raw("deep", 9, &v);
    assert_has(&err(g.build()), &["key 'deep'", "nested deeper"]);
}

#[test]
fn tensor_offsets() {
    let mut g = Gguf::default();
    g.tensor_at("t", &[4], 0, 4);
    g.data = vec![0; 64];
    assert_has(
        &err(g.build()),
        &["tensor 't'", "aligned to 32 bytes, found 4"],
    );

    let mut g = Gguf::default();
    g.tensor_at("t", &[64], 0, 32);
    g.data = vec![0; 64];
    assert_has(
        &err(g.build()),
        &["tensor 't'", "past the end of the data section (64 bytes)"],
    );

    let mut g = Gguf::default();
    g.tensor_at("t", &[4], 0, u64::MAX - 31);
    assert_has(&err(g.build()), &["tensor 't'", "past the end"]);

    let mut g = Gguf::default();
    g.tensor_at("a", &[16], 0, 0).tensor_at("b", &[16], 0, 32);
    g.data = vec![0; 128];
    assert_has(&err(g.build()), &["'a'", "'b'", "overlap"]);

    let mut g = Gguf::default();
    g.kv_u32("general.alignment", 64)
        .tensor_at("t", &[4], 0, 32);
    g.data = vec![0; 128];
    assert_has(&err(g.build()), &["aligned to 64 bytes, found 32"]);

    let mut g = Gguf::default();
    g.kv_u32("general.alignment", 24);
    assert_has(&err(g.build()), &["general.alignment", "power of two"]);
}

#[test]
fn duplicates_types_and_sizes() {
    let mut g = Gguf::default();
    g.tensor("t", &[4], 0, &[0; 16])
        .tensor("t", &[4], 0, &[0; 16]);
    assert_has(&err(g.build()), &["duplicate tensor name 't'"]);

    let mut g = Gguf::default();
    g.kv_u32("k", 1).kv_u32("k", 2);
    assert_has(&err(g.build()), &["duplicate metadata key 'k'"]);

    let mut g = Gguf::default();
    g.tensor("t", &[4], 4, &[0; 16]);
    assert_has(
        &err(g.build()),
        &["tensor 't'", "unknown or unsupported type id 4"],
    );

    let mut g = Gguf::default();
    g.tensor_at("t", &[u64::MAX / 2, 4], 0, 0);
    assert_has(
        &err(g.build()),
        &["tensor 't'", "overflow the element count"],
    );

    // Found by fuzzing: zero-sized, but the other dims overflow any partial product.
    let mut g = Gguf::default();
    g.tensor_at("t", &[0, 1 << 40, 1 << 40], 39, 0);
    assert_has(
        &err(g.build()),
        &["tensor 't'", "overflow the element count"],
    );

    let mut g = Gguf::default();
    g.tensor("t", &[33, 1], 8, &[0; 64]);
    assert_has(
        &err(g.build()),
        &[
            "tensor 't'",
            "33 elements is not a multiple of the block size 32",
        ],
    );

    let mut g = Gguf::default();
    g.kv_raw("v", 13, &[0; 8]);
    assert_has(
        &err(g.build()),
        &["key 'v'", "expected a value type 0..=12, found 13"],
    );

    let mut g = Gguf::default();
    g.kv_raw("b", 7, &[2]);
    assert_has(&err(g.build()), &["key 'b'", "bool", "found 2"]);
}
