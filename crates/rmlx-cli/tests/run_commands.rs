//! The contracts other tools rely on: `rmlx logits` writes float32 [T, vocab] .npy whatever
//! the chunk size, `rmlx bench --json` has its keys, `rmlx generate` prints only generated
//! text on stdout (with `--json-schema`: the JSON the grammar forced, which the tiny random
//! model alone would never write); bad input is one clear error line and a non-zero exit.

#[path = "../../rmlx-lm/tests/support/tiny_chat.rs"]
mod tiny_chat;

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../rmlx-lm/tests/fixtures")
        .join(rel)
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
fn logits_shape_and_chunk_invariance() {
    let d = tempfile::tempdir().unwrap();
    let model = fixture("hf/gpt_oss_tiny_sharded");
    let m = model.to_str().unwrap();
    let toks = "1,5,9,200,17,3,3,80,41,7,12";
    let mut outs = vec![];
    for chunk in ["", "1", "3"] {
        let out = d.path().join(format!("l{chunk}.npy"));
        let mut args = vec![
            "logits",
            "--model",
            m,
            "--tokens",
            toks,
            "--out",
            out.to_str().unwrap(),
        ];
        if !chunk.is_empty() {
            args.extend(["--chunk", chunk]);
        }
        let (ok, _, err) = rmlx(&args);
        assert!(ok, "{err}");
        let (shape, v) = rmlx_lm::npy::read_f32(&out).unwrap();
        assert_eq!(shape, vec![11, 256]);
        outs.push(v);
    }
    for o in &outs[1..] {
        let d: f32 = o
            .iter()
            .zip(&outs[0])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(d < 1e-4, "chunked logits differ by {d}");
    }
}

#[test]
fn bench_json_has_its_keys() {
    let (ok, out, err) = rmlx(&[
        "bench",
        "--model",
        fixture("hf/llama").to_str().unwrap(),
        "-p",
        "8",
        "-n",
        "4",
        "--json",
        "-t",
        "1",
    ]);
    assert!(ok, "{err}");
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for k in [
        "prefill_tok_s",
        "decode_tok_s",
        "load_s",
        "prompt_tokens",
        "gen_tokens",
        "threads",
        "device",
        "model",
        "kv_bytes_per_token",
    ] {
        assert!(j.get(k).is_some(), "missing {k} in {j}");
    }
    assert_eq!(j["prompt_tokens"], 8);
    assert_eq!(j["threads"], 1);
    assert!(j["decode_tok_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn generate_prints_only_generated_text() {
    let (ok, out, err) = rmlx(&[
        "generate",
        "--model",
        fixture("harmony").to_str().unwrap(),
        "--prompt",
        "hi",
        "--no-chat-template",
        "--max-tokens",
        "5",
        "--temperature",
        "0",
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("generated"), "timings go to stderr: {err}");
    assert!(!out.contains("tok/s"), "stdout has only the text: {out}");
}

#[test]
fn bad_input_is_one_clear_error() {
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "logits".into(),
                "--model".into(),
                "/nonexistent/model".into(),
                "--tokens".into(),
                "1".into(),
                "--out".into(),
                "/tmp/x.npy".into(),
            ],
            "nonexistent",
        ),
        (
            vec![
                "logits".into(),
                "--model".into(),
                fixture("hf/llama").display().to_string(),
                "--tokens".into(),
                "1,x".into(),
                "--out".into(),
                "/tmp/x.npy".into(),
            ],
            "not a token id",
        ),
        (
            vec![
                "logits".into(),
                "--model".into(),
                fixture("hf/llama").display().to_string(),
                "--tokens".into(),
                "1,999999".into(),
                "--out".into(),
                "/tmp/x.npy".into(),
            ],
            "outside the vocabulary",
        ),
        (
            vec![
                "bench".into(),
                "--model".into(),
                fixture("hf/llama").display().to_string(),
                "--kv-cache".into(),
                "q7".into(),
            ],
            "kv cache",
        ),
        (
            vec![
                "bench".into(),
                "--model".into(),
                fixture("hf/llama").display().to_string(),
                "-p".into(),
                "500".into(),
                "-n".into(),
                "100".into(),
            ],
            "context of 512",
        ),
    ];
    for (args, want) in cases {
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let (ok, _, err) = rmlx(&a);
        assert!(!ok, "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn generate_json_schema_and_json_object() {
    let chat = tiny_chat::llama_chat(512);
    let model = chat.path().to_str().unwrap();
    let schema = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        schema.path(),
        r#"{"type": "object", "properties": {"ok": {"type": "boolean"},
            "n": {"type": "integer", "minimum": 1, "maximum": 9}},
            "required": ["ok", "n"], "additionalProperties": false}"#,
    )
    .unwrap();
    let base = [
        "generate",
        "--model",
        model,
        "--prompt",
        "hi",
        "--temperature",
        "0",
    ];
    let with = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend(extra);
        rmlx(&a)
    };

    let (ok, out, err) = with(&["--json-schema", schema.path().to_str().unwrap()]);
    assert!(ok, "{err}");
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    let o = v.as_object().unwrap();
    assert_eq!(o.len(), 2, "{out}");
    assert!(o["ok"].is_boolean(), "{out}");
    assert!((1..=9).contains(&o["n"].as_i64().unwrap()), "{out}");
    assert!(err.contains("| Eos"), "the grammar ended it: {err}");

    // Any object: this random model opens a key and repeats one letter in it until
    // max_tokens (SmolLM2 closes its objects: tests/structured_output.rs in rmlx-lm); what it
    // wrote is the start of an object.
    let (ok, out, err) = with(&["--json-object", "--max-tokens", "40"]);
    assert!(ok, "{err}");
    assert!(err.contains("| Length"), "{err}");
    assert!(out.trim_start().starts_with("{"), "{out:?}");
    let closed = format!("{}\": 0}}", out.trim_end_matches('\n'));
    assert!(
        serde_json::from_str::<serde_json::Value>(&closed).is_ok(),
        "{closed:?}"
    );

    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), r#"{"type": 7}"#).unwrap();
    let (ok, out, err) = with(&["--json-schema", bad.path().to_str().unwrap()]);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("error: constraint: "), "{err}");

    std::fs::write(bad.path(), "not json").unwrap();
    let (ok, _, err) = with(&["--json-schema", bad.path().to_str().unwrap()]);
    assert!(!ok && err.contains("is not JSON"), "{err}");

    let (ok, _, err) = with(&["--json-object", "--json-schema", "x.json"]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");
}
