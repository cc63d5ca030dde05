//! Malformed safetensors files give a clear error, never a panic.

mod common;
use common::*;
use rmlx_io::SafetensorsFile;
use std::sync::Arc;

fn err(bytes: Vec<u8>) -> String {
    match SafetensorsFile::from_bytes("t.safetensors", Arc::new(bytes)) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn assert_has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "'{msg}' should mention '{p}'");
    }
}

#[test]
fn valid_file_loads_zero_copy_values() {
    let data = f32_bytes(&[1.0, 2.0, 3.0, 4.0]);
    let f = SafetensorsFile::from_bytes(
        "ok",
        Arc::new(st_file(
            &[("a", "F32", &[2, 2], &data), ("b", "U8", &[3], &[1, 2, 3])],
            Some("{\"format\":\"pt\"}"),
        )),
    )
    .unwrap();
    assert_eq!(f.metadata().get("format").map(String::as_str), Some("pt"));
    let a = f.get("a").unwrap();
    assert_eq!(a.shape(), &[2, 2]);
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
    assert_eq!(f.get("b").unwrap().to_vec::<u8>().unwrap(), vec![1, 2, 3]);
    assert!(f
        .get("c")
        .unwrap_err()
        .to_string()
        .contains("no tensor named 'c'"));
}

#[test]
fn truncated_file() {
    assert_has(
        &err(vec![1, 2, 3]),
        &[
            "t.safetensors",
            "expected at least 8 bytes",
            "found a file of 3 bytes",
        ],
    );
    assert_has(&err(vec![]), &["found a file of 0 bytes"]);
}

#[test]
fn truncated_file_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = st_file(&[("a", "F32", &[4], &f32_bytes(&[0.0; 4]))], None);
    write(dir.path(), "m.safetensors", &bytes[..bytes.len() - 3]);
    let e = SafetensorsFile::open(dir.path().join("m.safetensors"))
        .err()
        .unwrap()
        .to_string();
    assert_has(
        &e,
        &[
            "m.safetensors",
            "tensor 'a'",
            "past the end of the data section",
        ],
    );
}

#[test]
fn header_length_past_end() {
    let mut b = 1000u64.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    assert_has(
        &err(b),
        &["header length 1000 runs past the end", "2 bytes"],
    );
    assert_has(
        &err(u64::MAX.to_le_bytes().to_vec()),
        &["header length 18446744073709551615"],
    );
}

#[test]
fn bad_json() {
    assert_has(&err(st_bytes("{\"a\": {", &[])), &["invalid JSON header"]);
    assert_has(&err(st_bytes("[1, 2]", &[])), &["invalid JSON header"]);
    assert_has(
        &err(st_bytes("{\"a\": {\"dtype\": \"F32\"}}", &[])),
        &["invalid JSON header", "shape"],
    );
    assert_has(
        &err(st_bytes("\u{ff}\u{fe}", &[])),
        &["invalid JSON header"],
    );
}

#[test]
fn unknown_and_unsupported_dtypes() {
    let h =
        |dt: &str| format!("{{\"x\":{{\"dtype\":\"{dt}\",\"shape\":[1],\"data_offsets\":[0,8]}}}}");
    assert_has(
        &err(st_bytes(&h("I64"), &[0; 8])),
        &["tensor 'x'", "unsupported dtype I64"],
    );
    assert_has(
        &err(st_bytes(&h("F64"), &[0; 8])),
        &["unsupported dtype F64"],
    );
    assert_has(
        &err(st_bytes(&h("Q9"), &[0; 8])),
        &["tensor 'x'", "unknown dtype 'Q9'"],
    );
}

#[test]
fn offsets_out_of_range_reversed_overlapping() {
    let e = err(st_bytes(
        "{\"x\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}",
        &[0; 2],
    ));
    assert_has(
        &e,
        &[
            "tensor 'x'",
            "[0, 4]",
            "past the end of the data section (2 bytes)",
        ],
    );
    let e = err(st_bytes(
        "{\"x\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,0]}}",
        &[0; 8],
    ));
    assert_has(&e, &["tensor 'x'", "reversed", "[4, 0]"]);
    let e = err(st_bytes(
        "{\"x\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},\"y\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}",
        &[0; 8],
    ));
    assert_has(&e, &["'x' [0, 4)", "'y' [2, 6)", "overlap"]);
    let e = err(st_bytes(
        "{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}",
        &[0; 8],
    ));
    assert_has(&e, &["invalid JSON header"]);
}

#[test]
fn numel_overflow_and_byte_length_mismatch() {
    let big = usize::MAX / 2;
    let e = err(st_bytes(
        &format!("{{\"x\":{{\"dtype\":\"F32\",\"shape\":[{big},4],\"data_offsets\":[0,0]}}}}"),
        &[],
    ));
    assert_has(&e, &["tensor 'x'", "overflows the element count"]);
    // Zero-sized, but the other dims overflow any partial product.
    let e = err(st_bytes(
        &format!("{{\"x\":{{\"dtype\":\"U8\",\"shape\":[0,{big},4],\"data_offsets\":[0,0]}}}}"),
        &[],
    ));
    assert_has(&e, &["tensor 'x'", "overflows the element count"]);
    let e = err(st_bytes(
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
        &[0; 8],
    ));
    assert_has(
        &e,
        &[
            "tensor 'x'",
            "expected 12 bytes",
            "found data_offsets spanning 8",
        ],
    );
}

#[test]
fn duplicate_names() {
    let e = err(st_bytes(
        "{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
        &[0; 2],
    ));
    assert_has(&e, &["duplicate entry 'x'"]);
}

#[test]
fn metadata_must_be_strings() {
    let e = err(st_bytes("{\"__metadata__\":{\"a\":1}}", &[]));
    assert_has(&e, &["invalid JSON header"]);
}
