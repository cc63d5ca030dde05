//! Our GGUF tokenizers against llama.cpp on its own test vocabularies (fixtures from
//! scripts/reference/llamacpp_vocabs.py). Vocab dumps live in /tmp/rmlx_vocabs; a vocab whose
//! dump is absent is skipped with a message.

use std::path::{Path, PathBuf};

use rmlx_lm::{GgufVocab, Tokenizer};
use serde_json::Value;

fn check(name: &str) {
    let dump = std::env::var_os("RMLX_VOCAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/rmlx_vocabs"))
        .join(format!("{name}.json"));
    let Ok(text) = std::fs::read_to_string(&dump) else {
        eprintln!(
            "skipping {name}: {} absent (scripts/reference/llamacpp_vocabs.py)",
            dump.display()
        );
        return;
    };
    let v: GgufVocab = serde_json::from_str(&text).unwrap();
    let tk = Tokenizer::from_gguf_vocab(&v).unwrap();
    let fx =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/vocabs/{name}.json"));
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(fx).unwrap()).unwrap();
    let mut bad = Vec::new();
    let cases = fx["cases"].as_array().unwrap();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        let got = tk.encode(text, false).unwrap();
        if got != want {
            bad.push(format!(
                "  {text:?}\n    ours      {got:?}\n    llama.cpp {want:?}"
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{name}: {}/{} mismatches\n{}",
        bad.len(),
        cases.len(),
        bad.join("\n")
    );
}

#[test]
fn llama_bpe() {
    check("llama-bpe");
}
#[test]
fn llama_spm() {
    check("llama-spm");
}
#[test]
fn qwen2() {
    check("qwen2");
}
#[test]
fn gpt2() {
    check("gpt-2");
}
#[test]
fn phi3() {
    check("phi-3");
}
#[test]
fn starcoder() {
    check("starcoder");
}
#[test]
fn refact() {
    check("refact");
}
#[test]
fn command_r() {
    check("command-r");
}
#[test]
fn falcon() {
    check("falcon");
}
#[test]
fn mpt() {
    check("mpt");
}
#[test]
fn deepseek_coder() {
    check("deepseek-coder");
}
