//! The same weights in every format rmlx loads give the same logits: GGUF (llama.cpp names,
//! permuted q/k) against transformers on the original safetensors; Q8_0 GGUF and MLX 4-bit
//! safetensors against transformers on the identically dequantized weights.

use rmlx_lm::{load_model, npy, Logits};
use std::path::{Path, PathBuf};

fn dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}

fn logits(model: &Path, tokens: &[u32], chunk: usize) -> Vec<f32> {
    let m = load_model(model).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    let mut cache = m.model.make_cache();
    let mut out = vec![];
    for c in tokens.chunks(chunk) {
        out.extend(
            m.model
                .forward(c, &mut cache, Logits::All)
                .unwrap()
                .to_vec::<f32>()
                .unwrap(),
        );
    }
    out
}

fn tokens(d: &Path) -> Vec<u32> {
    serde_json::from_str(&std::fs::read_to_string(d.join("tokens.json")).unwrap()).unwrap()
}

fn argmax(r: &[f32]) -> usize {
    (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b })
}

fn check(model: &Path, reference: &Path, tol: f64) {
    let toks = tokens(model.parent().filter(|_| model.is_file()).unwrap_or(model));
    let (shape, want) = npy::read_f32(reference).unwrap();
    let v = shape[1];
    for chunk in [toks.len(), 5] {
        let got = logits(model, &toks, chunk);
        let err = rel_l2(&got, &want);
        let same = (0..toks.len())
            .filter(|&t| argmax(&got[t * v..(t + 1) * v]) == argmax(&want[t * v..(t + 1) * v]))
            .count();
        eprintln!(
            "{} (chunk {chunk}): relative L2 {err:.2e}, top-1 {same}/{}",
            model.display(),
            toks.len()
        );
        assert!(err < tol, "{}: {err:.3e} >= {tol:.0e}", model.display());
        assert!(
            same * 10 >= toks.len() * 9,
            "{}: top-1 agrees at {same}/{} positions",
            model.display(),
            toks.len()
        );
    }
}

/// GGUF quantized weights: our kernels round activations to 8 bits per block of 32 before the
/// integer dot product (as llama.cpp does); over the 15 matmuls of these models that moves
/// logits by ~1.7e-2 relative L2 (measured) against transformers' float32 on the same weights.
const QUANTIZED_TOL: f64 = 3e-2;
/// MLX affine weights multiply float activations (as MLX does): f32 all the way (~1e-6).
const MLX_TOL: f64 = 1e-4;

#[test]
fn f32_gguf_equals_transformers() {
    for m in ["llama", "qwen2"] {
        // Exact f32 on both sides.
        check(
            &dir(&format!("formats/{m}-gguf/model.gguf")),
            &dir(&format!("hf/{m}/logits.npy")),
            1e-4,
        );
    }
}

#[test]
fn q8_0_gguf_equals_transformers_on_dequantized_weights() {
    for m in ["llama", "qwen2"] {
        check(
            &dir(&format!("formats/{m}-q8/model.gguf")),
            &dir(&format!("formats/{m}-q8/reference_logits.npy")),
            QUANTIZED_TOL,
        );
    }
}

#[test]
fn mlx_affine_4bit_equals_transformers_on_dequantized_weights() {
    for m in ["llama", "qwen2"] {
        check(
            &dir(&format!("formats/{m}-mlx4")),
            &dir(&format!("formats/{m}-mlx4/reference_logits.npy")),
            MLX_TOL,
        );
    }
}
