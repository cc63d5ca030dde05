//! Model directories with hostile `config.json` values (zero or huge sizes, wrong types,
//! sizes that disagree with the tensors): loading and running a token is an error naming
//! what is wrong, never a panic, a hang or an allocation of what the file claims.

use rmlx_lm::{load_model, Logits};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hf")
        .join(name)
}

/// A copy of fixture `name` with `key` set to `value` in its config (null removes it).
fn with_config(name: &str, key: &str, value: &Value) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixture(name)).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, t.path().join(p.file_name().unwrap())).unwrap();
    }
    let p = t.path().join("config.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    let obj = v.as_object_mut().unwrap();
    if value.is_null() {
        obj.remove(key);
    } else {
        obj.insert(key.to_string(), value.clone());
    }
    std::fs::write(p, serde_json::to_string(&v).unwrap()).unwrap();
    t
}

/// Loads the directory and runs two tokens; Ok(()) or the error's text. A panic fails the
/// test with the case named.
fn load_and_run(dir: &Path, what: &str) -> Result<(), String> {
    let r = std::panic::catch_unwind(|| -> rmlx_core::Result<()> {
        let m = load_model(dir)?;
        let mut cache = m.model.make_cache();
        m.model.forward(&[1, 2], &mut cache, Logits::All)?.eval()
    });
    match r {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => panic!("{what}: panicked instead of returning an error"),
    }
}

const HUGE: u64 = 1 << 40;

/// Values no checkpoint of the fixture's tensors can have: each must be an error.
#[test]
fn impossible_sizes_are_errors() {
    for model in ["llama", "qwen3", "gpt_oss_wide"] {
        for (key, value) in [
            ("hidden_size", json!(0)),
            ("hidden_size", json!(HUGE)),
            ("hidden_size", json!(63)),
            ("num_attention_heads", json!(0)),
            ("num_attention_heads", json!(HUGE)),
            ("num_attention_heads", json!(3)),
            ("num_key_value_heads", json!(0)),
            ("num_key_value_heads", json!(3)),
            ("num_key_value_heads", json!(HUGE)),
            ("head_dim", json!(0)),
            ("head_dim", json!(HUGE)),
            ("head_dim", json!(7)),
            ("num_hidden_layers", json!(HUGE)),
            ("num_hidden_layers", json!(99)),
            ("vocab_size", json!(0)),
            ("vocab_size", json!(HUGE)),
            ("intermediate_size", json!(HUGE)),
            ("hidden_size", json!(-64)),
            ("hidden_size", json!("64")),
            ("num_attention_heads", json!(4.5)),
            ("hidden_size", Value::Null),
            ("vocab_size", Value::Null),
        ] {
            let what = format!("{model}: {key} = {value}");
            let d = with_config(model, key, &value);
            let e = load_and_run(d.path(), &what)
                .err()
                .unwrap_or_else(|| panic!("{what}: loaded and ran"));
            assert!(!e.is_empty(), "{what}: empty error");
        }
    }
}

/// Values that are odd but not contradicted by the tensors (context length, rope, norms):
/// either an error or a model that runs; never a panic.
#[test]
fn odd_values_never_panic() {
    for model in ["llama", "qwen3", "gpt_oss_wide"] {
        for (key, value) in [
            ("max_position_embeddings", json!(0)),
            ("max_position_embeddings", json!(1)),
            ("max_position_embeddings", json!(HUGE)),
            ("rms_norm_eps", json!(-1.0)),
            ("rms_norm_eps", json!(1e300)),
            ("rope_theta", json!(0)),
            ("rope_theta", json!(-1.0)),
            ("rope_scaling", json!({"rope_type": "yarn", "factor": 0})),
            ("rope_scaling", json!({"rope_type": "yarn", "factor": -4.0})),
            ("rope_scaling", json!({"rope_type": "llama3", "factor": 0})),
            ("rope_scaling", json!({"rope_type": "linear", "factor": 0})),
            ("rope_scaling", json!({"rope_type": "warp", "factor": 2})),
            ("rope_scaling", json!("yarn")),
            (
                "rope_parameters",
                json!({"rope_theta": -5, "rope_type": "default"}),
            ),
            ("sliding_window", json!(0)),
            ("sliding_window", json!(HUGE)),
            ("layer_types", json!(["sliding_attention"])),
            ("layer_types", json!("full")),
            ("experts_per_token", json!(0)),
            ("num_experts_per_tok", json!(0)),
            ("num_local_experts", json!(0)),
            ("tie_word_embeddings", json!("yes")),
            ("model_type", json!(7)),
            ("swiglu_limit", json!(-1)),
        ] {
            let what = format!("{model}: {key} = {value}");
            let d = with_config(model, key, &value);
            let _ = load_and_run(d.path(), &what);
        }
    }
}
