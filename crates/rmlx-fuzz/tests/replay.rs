//! Replays the committed fuzz corpora (hand-made seeds plus inputs the fuzzers found, see
//! `corpus/README.md`) through every harness: each input must give Ok or Err, never a panic,
//! hang or broken invariant. Every target's own seeds must get past parsing somewhere, so the
//! corpus really reaches the code behind the parser.

use std::path::Path;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no corpus in {}", dir.display());
    out
}

fn replay(target: &str) {
    let (_, harness) = rmlx_fuzz::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no target {target}"));
    let inputs = corpus(target);
    let accepted = inputs
        .iter()
        .filter(|(name, bytes)| {
            eprintln!("{target}: {name}");
            let accepted = harness(bytes);
            eprintln!("  {}", if accepted { "accepted" } else { "rejected" });
            accepted
        })
        .count();
    eprintln!("{target}: {accepted}/{} inputs accepted", inputs.len());
    assert!(accepted > 0, "{target}: no input got past parsing");
}

#[test]
fn every_target_has_a_corpus_and_a_fuzz_target() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets");
    for (name, _) in rmlx_fuzz::TARGETS {
        assert!(
            fuzz.join(format!("{name}.rs")).is_file(),
            "fuzz/fuzz_targets/{name}.rs"
        );
        corpus(name);
    }
}

#[test]
fn safetensors_header() {
    replay("safetensors_header");
}

#[test]
fn safetensors_index() {
    replay("safetensors_index");
}

#[test]
fn gguf_parse() {
    replay("gguf_parse");
}

#[test]
fn model_config() {
    replay("model_config");
}

#[test]
fn tokenizer_json() {
    replay("tokenizer_json");
}

#[test]
fn tokenizer_text() {
    replay("tokenizer_text");
}

#[test]
fn gguf_vocab() {
    replay("gguf_vocab");
}

#[test]
fn chat_template() {
    replay("chat_template");
}

#[test]
fn harmony() {
    replay("harmony");
}
