//! Logits of tiny random checkpoints against Hugging Face transformers (float32, eager), made
//! by scripts/reference/transformers_logits.py: all at once and through the KV cache in chunks.

use rmlx_lm::npy;
use std::path::{Path, PathBuf};

#[path = "support/reference.rs"]
mod reference;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf")
}

/// Relative L2 error allowed against transformers, on every device. The Llama family runs in
/// f32 on both sides (we reach ~1e-6; cuBLAS in f32 compute mode, no TF32). gpt-oss experts are computed from MXFP4 with activations quantized to
/// 8 bits per block, as llama.cpp does (we reach ~5e-3; the bound is 1e-2). Rows of
/// 288–320 inputs (`gpt_oss_long_rows`) reach 1.16e-2 from that rounding alone: with the
/// experts dequantized and multiplied in f32 (an experiment, not shipped) every gpt-oss
/// fixture, this one included, matches to under 1e-6, and the kernels equal the scalar
/// reference on the same 8-bit activations (`avx2_tiles_match_scalar`).
fn tolerance(name: &str) -> f64 {
    match name {
        "gpt_oss_long_rows" => 2e-2,
        n if n.starts_with("gpt_oss") => 1e-2,
        _ => 1e-4,
    }
}

fn check(name: &str) {
    reference::check(&fixtures().join(name), tolerance(name));
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

/// Expert rows of 9 and 10 MXFP4 blocks: the CPU kernels' paired runs of 8 and lone blocks.
#[test]
fn gpt_oss_long_rows_match_transformers() {
    check("gpt_oss_long_rows");
}

/// Our MXFP4 decoder equals transformers' dequantized expert weights exactly.
#[test]
fn mxfp4_decoder_matches_transformers_dequantization() {
    for name in ["gpt_oss_tiny_sharded", "gpt_oss_gqa3", "gpt_oss_wide"] {
        let dir = fixtures().join(name);
        let files = rmlx_io::ModelFiles::open(&dir).unwrap();
        for proj in ["gate_up_proj", "down_proj"] {
            let q = files
                .get_quantized(&format!("model.layers.0.mlp.experts.{proj}"))
                .unwrap();
            let w = rmlx_lm::load::to_weight(q).unwrap();
            let ours = w.dequantize().unwrap().to_vec::<f32>().unwrap(); // (E, N, K)
            let (shape, theirs) =
                npy::read_f32(&dir.join(format!("experts_l0_{proj}.npy"))).unwrap(); // (E, K, N)
            let (e, k, n) = (shape[0], shape[1], shape[2]);
            assert_eq!((e, n, k), (w.experts.unwrap(), w.n, w.k), "{name} {proj}");
            for x in 0..e {
                for r in 0..n {
                    for c in 0..k {
                        let (a, b) = (ours[(x * n + r) * k + c], theirs[(x * k + c) * n + r]);
                        assert_eq!(a, b, "{name} {proj} expert {x} row {r} col {c}");
                    }
                }
            }
        }
    }
}
