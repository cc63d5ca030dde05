//! Logits of tiny random checkpoints against Hugging Face transformers (float32, eager), made
//! by scripts/reference/transformers_logits.py: all at once and through the KV cache in chunks.

use rmlx_lm::{load_model, npy, Logits};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf")
}

fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}

/// Our logits for `tokens`, fed `chunk` at a time (None: all at once).
pub fn run(dir: &Path, tokens: &[u32], chunk: Option<usize>) -> Vec<f32> {
    let m = load_model(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut cache = m.model.make_cache();
    let mut out = vec![];
    for c in tokens.chunks(chunk.unwrap_or(tokens.len())) {
        let l = m.model.forward(c, &mut cache, Logits::All).unwrap();
        out.extend(l.to_vec::<f32>().unwrap());
    }
    out
}

fn check(name: &str) {
    let dir = fixtures().join(name);
    let tokens: Vec<u32> = serde_json::from_str(&std::fs::read_to_string(dir.join("tokens.json")).unwrap()).unwrap();
    let (shape, want) = npy::read_f32(&dir.join("logits.npy")).unwrap();
    assert_eq!(shape[0], tokens.len());
    for chunk in [None, Some(1), Some(5)] {
        let got = run(&dir, &tokens, chunk);
        let err = rel_l2(&got, &want);
        eprintln!("{name} chunk {chunk:?}: relative L2 error {err:.2e}");
        // f32 throughout on both sides: we reach ~1e-6; 1e-4 leaves room for summation order.
        assert!(err < 1e-4, "{name} chunk {chunk:?}: relative L2 error {err:.3e}");
    }
}

#[test]
fn llama_matches_transformers() {
    check("llama");
}

#[test]
fn llama3_rope_scaling_matches_transformers() {
    check("llama3");
}

#[test]
fn qwen2_matches_transformers() {
    check("qwen2");
}

#[test]
fn qwen3_matches_transformers() {
    check("qwen3");
}

#[test]
fn mistral_sliding_window_matches_transformers() {
    check("mistral");
}

#[test]
fn gpt_oss_sharded_matches_transformers() {
    check("gpt_oss_tiny_sharded");
}

#[test]
fn gpt_oss_gqa3_matches_transformers() {
    check("gpt_oss_gqa3");
}

#[test]
fn gpt_oss_wide_matches_transformers() {
    check("gpt_oss_wide");
}
