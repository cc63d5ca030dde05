//! Our GGUF tokenizers against llama.cpp on its own test vocabularies (expected ids from
//! scripts/reference/llamacpp_vocabs.py). The vocab-only GGUFs come from llama.cpp's source
//! tree (`models/ggml-vocab-*.gguf`, MIT): the four smallest are committed under
//! `fixtures/vocabs/gguf/`; the others are fetched once into the rmlx cache from PyPI's
//! llama-cpp-python sdist (`support/llama_vocabs.rs`; `RMLX_LLAMA_VOCABS=/path/to/llama.cpp/models`
//! reads them from a llama.cpp checkout instead). A vocabulary that cannot be had fails its
//! test, naming the file and why.

use std::path::{Path, PathBuf};

use rmlx_lm::Tokenizer;
use serde_json::Value;

#[path = "support/llama_vocabs.rs"]
mod llama_vocabs;

fn vocab_file(name: &str) -> PathBuf {
    let file = format!("ggml-vocab-{name}.gguf");
    let committed = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/vocabs/gguf")
        .join(&file);
    if committed.exists() {
        return committed;
    }
    let dir = match std::env::var_os("RMLX_LLAMA_VOCABS") {
        Some(d) => PathBuf::from(d),
        None => {
            assert!(
                llama_vocabs::FETCHED.contains(&name),
                "{file}: neither committed nor fetched"
            );
            llama_vocabs::dir().unwrap_or_else(|e| panic!("{file} is missing: {e}"))
        }
    };
    let p = dir.join(&file);
    assert!(p.exists(), "{} is missing", p.display());
    p
}

fn check(name: &str) {
    let path = vocab_file(name);
    let f = rmlx_io::GgufFile::open(&path).unwrap();
    let v = rmlx_lm::engine::gguf_vocab(f.metadata()).unwrap();
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
