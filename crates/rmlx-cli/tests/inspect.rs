//! `rmlx inspect` end to end: JSON fields on a small model directory, one-line errors.

use std::process::Command;

fn safetensors(tensors: &[(&str, &str, &[usize], usize)]) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut len = 0;
    for (name, dtype, shape, nbytes) in tensors {
        entries.push(format!(
            "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[{len},{}]}}",
            len + nbytes
        ));
        len += nbytes;
    }
    let header = format!("{{{}}}", entries.join(","));
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.resize(out.len() + len, 0);
    out
}

fn rmlx(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rmlx"))
        .args(args)
        .output()
        .expect("run rmlx");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn inspect_json_on_a_quantized_directory() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("config.json"),
        r#"{"model_type": "gpt_oss", "quantization_config": {"quant_method": "mxfp4"}}"#,
    )
    .unwrap();
    let st = safetensors(&[
        ("e_blocks", "U8", &[2, 3, 2, 16], 192),
        ("e_scales", "U8", &[2, 3, 2], 12),
        ("norm", "BF16", &[8], 16),
    ]);
    std::fs::write(d.path().join("model.safetensors"), st).unwrap();
    let (ok, out, err) = rmlx(&["-t", "1", "inspect", d.path().to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["format"], "safetensors");
    assert_eq!(v["architecture"], "gpt_oss");
    assert_eq!(v["tensor_count"], 3);
    assert_eq!(v["logical_tensor_count"], 2);
    assert_eq!(v["parameter_count"], 2 * 3 * 64 + 8);
    assert_eq!(v["bytes_by_type"]["mxfp4"], 204);
    assert_eq!(v["bytes_by_type"]["bf16"], 16);
    assert_eq!(v["metadata"]["config"]["model_type"], "gpt_oss");

    let (ok, out, _) = rmlx(&["inspect", d.path().to_str().unwrap()]);
    assert!(
        ok && out.contains("architecture:  gpt_oss") && out.contains("mxfp4"),
        "{out}"
    );
}

#[test]
fn inspect_errors_are_one_line() {
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("bad.gguf");
    std::fs::write(&bad, b"GGUF\x03\0\0\0").unwrap();
    let (ok, out, err) = rmlx(&["inspect", bad.to_str().unwrap()]);
    assert!(!ok && out.is_empty());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: inspect: ")
            && err.contains("bad.gguf")
            && err.contains("tensor count"),
        "{err}"
    );

    // A directory of safetensors without config.json.
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("m.safetensors"),
        safetensors(&[("a", "U8", &[1], 1)]),
    )
    .unwrap();
    let (ok, _, err) = rmlx(&["inspect", d.path().to_str().unwrap()]);
    assert!(!ok && err.contains("expected a config.json in"), "{err}");
}
