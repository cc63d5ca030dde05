//! Our GGUF tokenizers against llama.cpp on its own test vocabularies (expected ids from
//! scripts/reference/llamacpp_vocabs.py). The vocab-only GGUFs come from llama.cpp's source
//! tree (`models/ggml-vocab-*.gguf`, MIT): the four smallest are committed under
//! `fixtures/vocabs/gguf/` and always run; the others are `#[ignore]`d (too large to commit,
//! and llama.cpp's tree is not reachable from a package registry without building it): run
//! them with `RMLX_LLAMA_VOCABS=/path/to/llama.cpp/models cargo test --release -p rmlx-lm
//! --test tokenizer_vocabs -- --include-ignored`; without the file they fail, naming it.

use std::path::{Path, PathBuf};

use rmlx_lm::Tokenizer;
use serde_json::Value;

fn vocab_file(name: &str) -> PathBuf {
    let file = format!("ggml-vocab-{name}.gguf");
    let committed = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/vocabs/gguf")
        .join(&file);
    if committed.exists() {
        return committed;
    }
    let dir = std::env::var_os("RMLX_LLAMA_VOCABS").unwrap_or_else(|| {
        panic!("{file} is not committed: set RMLX_LLAMA_VOCABS to llama.cpp's models/ directory")
    });
    let p = PathBuf::from(dir).join(&file);
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
#[ignore = "needs llama.cpp's ggml-vocab file: set RMLX_LLAMA_VOCABS (see the file doc)"]
fn llama_bpe() {
    check("llama-bpe");
}
#[test]
fn llama_spm() {
    check("llama-spm");
}
#[test]
#[ignore = "needs llama.cpp's ggml-vocab file: set RMLX_LLAMA_VOCABS (see the file doc)"]
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
#[ignore = "needs llama.cpp's ggml-vocab file: set RMLX_LLAMA_VOCABS (see the file doc)"]
fn starcoder() {
    check("starcoder");
}
#[test]
#[ignore = "needs llama.cpp's ggml-vocab file: set RMLX_LLAMA_VOCABS (see the file doc)"]
fn refact() {
    check("refact");
}
#[test]
#[ignore = "needs llama.cpp's ggml-vocab file: set RMLX_LLAMA_VOCABS (see the file doc)"]
fn command_r() {
    check("command-r");
}
#[test]
#[ignore = "needs llama.cpp's ggml-vocab file: set RMLX_LLAMA_VOCABS (see the file doc)"]
fn falcon() {
    check("falcon");
}
#[test]
#[ignore = "needs llama.cpp's ggml-vocab file: set RMLX_LLAMA_VOCABS (see the file doc)"]
fn mpt() {
    check("mpt");
}
#[test]
fn deepseek_coder() {
    check("deepseek-coder");
}
