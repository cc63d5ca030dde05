//! Tiny chat models with a small context, assembled in a temp dir from committed fixtures (shared
//! by the rmlx-lm and rmlx-cli tests; the path works from either crate).
//!
//! - `llama_chat`: the random Llama of `fixtures/hf/llama` (vocab 256, full attention, so its
//!   KV cache can rewind to any prefix) with the byte-level tokenizer of `fixtures/harmony`
//!   (one token per byte, ids 0–255 = the model's vocabulary; its special tokens, ids 256+,
//!   never occur in this template's text and are never sampled, so replies run to max_tokens)
//!   and a plain-text chat template.
//! - `harmony_chat`: `fixtures/harmony` (gpt-oss, sliding window of 4, harmony template).
//!
//! Both with `max_position_embeddings` set to `context`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub const LLAMA_TEMPLATE: &str = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n\
{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}";

pub fn fixtures() -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../rmlx-lm/tests/fixtures"
    ))
    .to_path_buf()
}

fn copy(from: &Path, to: &Path, name: &str) {
    std::fs::copy(from.join(name), to.join(name))
        .unwrap_or_else(|e| panic!("fixture {}: {e}", from.join(name).display()));
}

/// `config.json` of `from` with `max_position_embeddings` = `context`, written into `to`.
fn config_with_context(from: &Path, to: &Path, context: usize) {
    let text = std::fs::read_to_string(from.join("config.json")).expect("fixture config.json");
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("config.json is JSON");
    v["max_position_embeddings"] = serde_json::json!(context);
    std::fs::write(to.join("config.json"), v.to_string()).expect("write config.json");
}

pub fn llama_chat(context: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let (llama, harmony) = (fixtures().join("hf/llama"), fixtures().join("harmony"));
    copy(&llama, dir.path(), "model.safetensors");
    config_with_context(&llama, dir.path(), context);
    copy(&harmony, dir.path(), "tokenizer.json");
    copy(&harmony, dir.path(), "tokenizer_config.json");
    std::fs::write(dir.path().join("chat_template.jinja"), LLAMA_TEMPLATE).expect("template");
    dir
}

pub fn harmony_chat(context: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let harmony = fixtures().join("harmony");
    for name in [
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "chat_template.jinja",
    ] {
        copy(&harmony, dir.path(), name);
    }
    config_with_context(&harmony, dir.path(), context);
    dir
}
