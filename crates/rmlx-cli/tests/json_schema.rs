//! `rmlx generate --json-schema FILE` / `--json-object`: stdout is the JSON the grammar forced
//! (the tiny random model alone would write noise), a bad schema is one error line and a
//! non-zero exit.

#[path = "../../rmlx-lm/tests/support/tiny_chat.rs"]
mod tiny_chat;

use serde_json::Value as Json;
use std::process::Command;

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
    let v: Json = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out:?}"));
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
    assert!(serde_json::from_str::<Json>(&closed).is_ok(), "{closed:?}");

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
